"""The dashboard API and the status page of a running controller (`federation run --api-token`)
over a real fleet: a healthy Deployment (its member status written by the test, playing the
members' deployment controller), a ConfigMap in conflict, and a Deployment a member rejects.

Then schemathesis fuzzes the live API from its OpenAPI document, and Debian's headless Chromium
renders the status page: the DOM after its scripts ran is checked, and screenshots are saved
under artifacts/ (gitignored).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest

from federation.devfleet import HUB, LocalFleet
from tests.apihelpers import dump_dom, parse_html, run_schemathesis, screenshot
from tests.controllerhelpers import ControllerProcess, apply, get, policy_seen, register_members
from tests.integration.test_propagation import MEMBER_LABELS, deployment, policy, write_member_status
from tests.kubehelpers import create_namespace, delete_namespace, delete_policies, eventually
from tests.storehelpers import create_database, drop_database

TOKEN = "api-test-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Seeded:
    controller: ControllerProcess
    namespace: str
    members: list[str]

    @property
    def url(self) -> str:
        return self.controller.url

    @property
    def conflict_cluster(self) -> str:
        return self.members[0]

    @property
    def failed_cluster(self) -> str:
        return self.members[-1]


async def get_json(
    url: str, *, headers: dict[str, str] | None = AUTH, method: str = "GET"
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.request(method, url, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp


async def api(seeded: Seeded, path: str) -> Any:
    status, body, _ = await get_json(seeded.url + "/api/v1" + path)
    assert status == 200, (path, body)
    return body


@pytest.fixture(scope="module")
async def seeded(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Seeded]:
    """A controller with a token, and three templates in their end states (one namespace)."""
    members = sorted(name for name in fleet.clusters if name != HUB)
    db = f"api_{secrets.token_hex(4)}"
    url = await create_database(fleet.database_url, db)
    labels = {name: MEMBER_LABELS.get(name, {}) for name in members}
    await anyio.to_thread.run_sync(register_members, fleet, labels)
    controller = ControllerProcess(
        fleet,
        database_url=url,
        hub_id="api-hub",
        log_path=tmp_path_factory.mktemp("api-controller") / "run.log",
        extra_args=["--api-token", TOKEN],
    )
    namespace = f"t-api-{secrets.token_hex(3)}"
    for cluster in fleet.clusters.values():
        await create_namespace(cluster, namespace)
    await anyio.to_thread.run_sync(controller.start)
    seeded = Seeded(controller, namespace, members)
    try:
        await _seed(fleet, seeded)
        yield seeded
    finally:
        await anyio.to_thread.run_sync(controller.stop)
        print(f"controller log: {controller.log_path}")
        await delete_policies(fleet.clusters[HUB], namespace)
        for cluster in fleet.clusters.values():
            await delete_namespace(cluster, namespace)
        await drop_database(fleet.database_url, db)


async def _seed(fleet: LocalFleet, s: Seeded) -> None:
    ns = s.namespace
    # A ConfigMap that already exists in a member, not created by this hub: a conflict.
    theirs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": ns}}
    apply(fleet, s.conflict_cluster, {**theirs, "data": {"owner": "member"}})
    apply(
        fleet,
        HUB,
        deployment("web", ns, replicas=2),
        policy("web", ns, [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]),
        {**theirs, "data": {"owner": "hub"}},
        policy(
            "shared",
            ns,
            [{"apiVersion": "v1", "kind": "ConfigMap", "name": "shared"}],
            placement={"clusterNames": [s.conflict_cluster]},
        ),
        # Valid on the hub; the override breaks it for one member (selector ≠ template labels).
        deployment("bad", ns, replicas=1),
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "OverridePolicy",
            "metadata": {"name": "break", "namespace": ns},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "bad"}],
                "rules": [
                    {
                        "overriders": {
                            "jsonPatch": [
                                {
                                    "op": "replace",
                                    "path": "/spec/template/metadata/labels/app",
                                    "value": "other",
                                }
                            ]
                        }
                    }
                ],
            },
        },
    )
    # `bad` must never have a good copy: one applied before the override reached the controller
    # would report a status (its health would not be Unknown). Policies and overrides come
    # through separate watches, in no order: the propagation policy is created only once the
    # controller holds the override (it has written its status).
    await policy_seen(fleet, "overridepolicy", ns, "break")
    apply(
        fleet,
        HUB,
        policy(
            "bad",
            ns,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "bad"}],
            placement={"clusterNames": [s.failed_cluster]},
        ),
    )

    async def web_everywhere() -> bool:
        return all(get(fleet, m, "deployment", "web", ns) is not None for m in s.members)

    await eventually(web_everywhere, timeout=60, what="web in every member")
    for member in s.members:
        write_member_status(fleet, member, "web", ns, ready=2)

    async def settled() -> bool:
        rows = {r["name"]: r for r in (await api(s, f"/resources?namespace={ns}"))["items"]}
        assert set(rows) == {"web", "shared", "bad"}, rows
        assert rows["web"]["clusters_healthy"] == len(s.members), rows["web"]
        assert rows["shared"]["clusters_conflicted"] == 1, rows["shared"]
        assert rows["bad"]["clusters_failed"] == 1, rows["bad"]
        return True

    await eventually(settled, timeout=60, what="healthy, conflict and failed through the API")


async def test_rows_per_resource_and_per_cluster(seeded: Seeded) -> None:
    s, ns = seeded, seeded.namespace
    clusters = {c["cluster"]: c for c in (await api(s, "/clusters"))["items"]}
    assert set(s.members) <= set(clusters)
    assert all(clusters[m]["ready"] for m in s.members)
    one = await api(s, f"/clusters/{s.conflict_cluster}")
    assert one["cluster"] == s.conflict_cluster and one["works_conflict"] >= 1

    web = await api(s, f"/resources/apps/Deployment/{ns}/web")
    assert (web["worst_health"], web["clusters_desired"], web["replicas_ready"]) == (
        "Healthy",
        len(s.members),
        2 * len(s.members),
    )
    assert web["path"] == f"/api/v1/resources/apps/Deployment/{ns}/web"

    works = (await api(s, f"/resources/apps/Deployment/{ns}/web/clusters"))["items"]
    assert [w["cluster"] for w in works] == s.members
    for w in works:
        assert (w["state"], w["health"], w["phase"], w["in_sync"]) == ("applied", "Healthy", "healthy", True)
        assert (w["replicas_ready"], w["replicas_desired"]) == (2, 2)
        assert w["applied_at"] and w["status_collected_at"] and w["last_error"] is None
        # The member's health interpreter's words, stored with its status, are the reason.
        assert w["health_reason"] == "2/2 replicas available"
        assert w["reason"] == "applied, Healthy; 2/2 replicas available"

    (conflict,) = (await api(s, f"/resources/core/ConfigMap/{ns}/shared/clusters"))["items"]
    assert (conflict["cluster"], conflict["state"], conflict["phase"]) == (
        s.conflict_cluster,
        "conflict",
        "conflict",
    )
    assert "not created by this hub" in conflict["last_error"] and conflict["reason"].startswith("conflict: ")

    (failed,) = (await api(s, f"/resources/apps/Deployment/{ns}/bad/clusters"))["items"]
    assert (failed["cluster"], failed["state"], failed["phase"]) == (s.failed_cluster, "failed", "failed")
    assert "selector" in failed["last_error"] and failed["attempts"] == 1
    assert failed["reason"].startswith("apply failed: ")


async def test_filters_the_matrix_and_events(seeded: Seeded) -> None:
    s, ns = seeded, seeded.namespace

    async def names(query: str) -> list[str]:
        return [r["name"] for r in (await api(s, f"/resources?namespace={ns}&{query}"))["items"]]

    assert await names("health=Healthy") == ["web"]
    # No status comes back from a conflicted or failed work: their worst health is Unknown.
    assert await names("health=Unknown") == ["shared", "bad"]  # by group (core first), kind, name
    assert sorted(await names("health=Degraded,Unknown")) == ["bad", "shared"]
    assert await names("kind=ConfigMap") == ["shared"]
    assert await names("group=core") == ["shared"]
    assert await names("kind=Deployment") == ["bad", "web"]
    page = await api(s, f"/resources?namespace={ns}&limit=1&offset=1")
    assert (len(page["items"]), page["total"], page["limit"], page["offset"]) == (1, 3, 1, 1)

    matrix = await api(s, f"/matrix?namespace={ns}")
    assert matrix["total"] == 3
    order = [r["name"] for r in matrix["resources"]]
    assert order[-1] == "web" and set(order[:2]) == {"bad", "shared"}, "problems first"
    assert set(s.members) <= {c["name"] for c in matrix["clusters"]}
    rows = {r["name"]: r["cells"] for r in matrix["resources"]}
    assert {c: cell["phase"] for c, cell in rows["web"].items()} == dict.fromkeys(s.members, "healthy")
    assert {c: cell["phase"] for c, cell in rows["shared"].items()} == {s.conflict_cluster: "conflict"}
    assert {c: cell["phase"] for c, cell in rows["bad"].items()} == {s.failed_cluster: "failed"}

    conflicts = (await api(s, f"/events?namespace={ns}&type=Conflict"))["items"]
    assert [(e["cluster"], e["name"], e["kind"]) for e in conflicts] == [
        (s.conflict_cluster, "shared", "ConfigMap")
    ]
    failures = (await api(s, f"/events?namespace={ns}&type=ApplyFailed&since=1h"))["items"]
    assert len(failures) == 1 and "selector" in failures[0]["message"]
    assert (await api(s, f"/events?namespace={ns}&since=2999-01-01T00:00:00Z"))["items"] == []
    newest_first = (await api(s, f"/events?namespace={ns}&limit=50"))["items"]
    assert [e["time"] for e in newest_first] == sorted((e["time"] for e in newest_first), reverse=True)


async def test_errors_and_the_token_gate(seeded: Seeded) -> None:
    base, ns = seeded.url + "/api/v1", seeded.namespace
    cases = [
        (f"/resources?health=Sick&namespace={ns}", 400, "health"),
        ("/resources?limit=many", 400, "limit"),
        ("/events?since=last-tuesday", 400, "since"),
        ("/clusters/no-such-cluster", 404, "name"),
        (f"/resources/apps/Deployment/{ns}/no-such-thing/clusters", 404, "name"),
    ]
    for path, status, field in cases:
        got, body, resp = await get_json(base + path)
        assert (got, body["field"]) == (status, field), (path, body)
        assert resp.content_type == "application/json"
    _, body, _ = await get_json(base + "/clusters/no-such-cluster")
    assert body["error"] == "no cluster named 'no-such-cluster' is registered"
    _, body, _ = await get_json(base + f"/resources/apps/Deployment/{ns}/no-such-thing")
    assert body["error"] == f"no resource Deployment.apps {ns}/no-such-thing on this hub"

    for method in ("POST", "PUT", "PATCH", "DELETE"):
        got, body, resp = await get_json(base + "/resources", method=method)
        assert got == 405 and resp.headers["Allow"] == "GET, HEAD" and method in body["error"]

    got, body, resp = await get_json(base + "/clusters", headers=None)
    assert (got, body["field"]) == (401, "Authorization") and "--api-token" in body["error"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    got, body, _ = await get_json(base + "/matrix", headers={"Authorization": "Bearer not-the-token"})
    assert (got, body["error"]) == (401, "the bearer token is not valid")
    for path in ("/healthz", "/readyz", "/", "/static/app.js", "/metrics"):
        got, _, _ = await get_json(seeded.url + path, headers=None)
        assert got == 200, path


async def test_schemathesis_against_the_live_api(seeded: Seeded) -> None:
    """From the document the controller serves: no 5xx, no response off its schema, every
    invalid request refused, every valid one accepted, and auth not ignored."""
    code, output = await run_schemathesis(seeded.url, headers=AUTH, max_examples=25)
    print(output)
    assert code == 0, output[-6000:]


async def test_the_status_page_in_headless_chromium(seeded: Seeded) -> None:
    s, ns = seeded, seeded.namespace
    url = f"{s.url}/?token={TOKEN}#/?namespace={ns}"
    dom = parse_html(await anyio.to_thread.run_sync(dump_dom, url))
    body = dom.find("body")
    assert body is not None and body.attrs.get("data-state") == "ready", (
        body.attrs if body else dom.text[:2000]
    )
    table = dom.find("table", id="matrix")
    assert table is not None, dom.text[:3000]

    columns = [th.attrs["data-cluster"] for th in table.find_all("th", data_cluster=True)]
    assert set(s.members) <= set(columns)
    for th in table.find_all("th", data_cluster=True):
        if th.attrs["data-cluster"] in s.members:
            assert "ready" in th.classes and ": Ready" in th.attrs["title"], th.attrs

    rows = {tr.attrs["data-resource"]: tr for tr in table.find_all("tr", data_resource=True)}
    assert set(rows) == {
        f"apps/Deployment/{ns}/web",
        f"core/ConfigMap/{ns}/shared",
        f"apps/Deployment/{ns}/bad",
    }

    def cells(key: str) -> dict[str, tuple[set[str], str]]:
        return {
            td.attrs["data-cluster"]: (td.classes, td.attrs.get("title", ""))
            for td in rows[key].find_all("td")
        }

    for key in rows:
        assert list(cells(key)) == columns, "one cell per cluster column"
    web = cells(f"apps/Deployment/{ns}/web")
    for member in s.members:
        assert "p-healthy" in web[member][0] and "2/2 replicas available" in web[member][1]
    shared = cells(f"core/ConfigMap/{ns}/shared")
    assert "p-conflict" in shared[s.conflict_cluster][0]
    assert "not created by this hub" in shared[s.conflict_cluster][1], "the reason on hover"
    bad = cells(f"apps/Deployment/{ns}/bad")
    assert "p-failed" in bad[s.failed_cluster][0] and "selector" in bad[s.failed_cluster][1]
    for member in s.members:
        if member != s.failed_cluster:
            assert "p-absent" in bad[member][0]
    link = rows[f"apps/Deployment/{ns}/web"].find("a")
    assert link is not None and link.attrs["href"] == f"#/resources/apps/Deployment/{ns}/web"

    shot = await anyio.to_thread.run_sync(screenshot, url, "status-page-matrix.png")
    print(f"status page screenshot: {shot}")
    assert shot.stat().st_size > 20_000, "a blank page is a few kB"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The click-through: one resource, a row per cluster, and its events.
    detail_url = f"{s.url}/?token={TOKEN}#/resources/core/ConfigMap/{ns}/shared"
    detail = parse_html(await anyio.to_thread.run_sync(dump_dom, detail_url))
    works = detail.find("table", id="works")
    assert works is not None, detail.text[:3000]
    (row,) = works.find_all("tr", data_cluster=s.conflict_cluster)
    phase = row.find("td", data_phase="conflict")
    assert phase is not None and "not created by this hub" in phase.attrs["title"]
    assert "Conflict" in detail.text, "the Conflict event is listed"
    shot = await anyio.to_thread.run_sync(screenshot, detail_url, "status-page-detail.png")
    print(f"status page detail screenshot: {shot}")
    assert shot.stat().st_size > 20_000


async def test_the_status_page_asks_for_the_token(seeded: Seeded) -> None:
    dom = parse_html(await anyio.to_thread.run_sync(dump_dom, seeded.url + "/"))
    body = dom.find("body")
    assert body is not None and body.attrs.get("data-state") == "unauthorized"
    form = dom.find("form", id="login")
    assert form is not None and "hidden" not in form.attrs
    banner = dom.find("div", id="banner")
    assert banner is not None and "--api-token" in banner.text
    assert dom.find("table", id="matrix") is None
