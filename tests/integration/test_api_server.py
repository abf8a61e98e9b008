"""The dashboard API and the status page served in-process over a hand-built fleet in a real
Postgres (no apiservers): every route, the errors, the read-only rule, and access control with a
bearer token and with mutual TLS (real TLS handshakes, certificates from a throwaway CA)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from federation.devfleet.procs import free_port
from federation.server import ServerConfig, build_app, serve
from federation.store import Store
from tests.integration.store.factories import M1, M2, M3, build_fleet

# At collection time, so that parametrized coroutine tests keep their parameters.
pytestmark = pytest.mark.anyio


async def _ok() -> tuple[bool, str]:
    return True, "fine"


@pytest.fixture
async def fleet_store(store: Store) -> Store:
    await build_fleet(store)
    return store


@pytest.fixture
async def server(fleet_store: Store) -> AsyncIterator[str]:
    """The app without credentials, on a free port; yields its base URL."""
    config = ServerConfig(host="127.0.0.1", port=free_port())
    runner = await serve(build_app(checks={"db": _ok}, store=fleet_store, config=config), config)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        await runner.cleanup()


async def fetch(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, **kw) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp


async def test_every_route_answers_from_the_views(server: str) -> None:
    status, body, _ = await fetch(server + "/api/v1/clusters")
    assert status == 200
    clusters = {c["cluster"]: c for c in body["items"]}
    assert set(clusters) == {M1, M2, M3}
    assert clusters[M2]["ready"] is False and clusters[M2]["ready_reason"] == "probe timed out"
    assert clusters[M3]["lease_holder"] == "replica-a"
    assert clusters[M1]["taints"] == [] and clusters[M1]["kubernetes_version"] == "v1.36.3"

    status, body, _ = await fetch(server + f"/api/v1/clusters/{M2}")
    assert status == 200 and body["cluster"] == M2 and body["works_failed"] == 1

    status, body, _ = await fetch(server + "/api/v1/resources")
    assert status == 200 and body["total"] == 3
    by_name = {r["name"]: r for r in body["items"]}
    assert by_name["config"]["api_group"] == "" and by_name["config"]["worst_health"] == "Degraded"
    assert by_name["config"]["path"] == "/api/v1/resources/core/ConfigMap/default/config"
    assert by_name["web"]["clusters_conflicted"] == 1 and by_name["web"]["replicas_ready"] == 4
    assert by_name["lonely"]["worst_health"] is None

    status, body, _ = await fetch(server + "/api/v1/resources/apps/Deployment/default/web")
    assert status == 200 and body["name"] == "web" and body["clusters_applied"] == 2

    status, body, _ = await fetch(server + "/api/v1/resources/core/ConfigMap/default/config/clusters")
    assert status == 200 and body["resource"]["kind"] == "ConfigMap"
    works = {w["cluster"]: w for w in body["items"]}
    assert (works[M1]["state"], works[M1]["phase"]) == ("applied", "healthy")
    assert works[M2]["phase"] == "failed" and works[M2]["reason"].startswith(
        "apply failed: 500 from apiserver"
    )
    assert works[M3]["phase"] == "deleting" and works[M3]["desired_here"] is False

    status, body, _ = await fetch(server + "/api/v1/events?cluster=member-1&type=DriftCorrected&since=1h")
    assert status == 200
    assert [e["message"] for e in body["items"]] == ["replicas 5 -> 3", "image restored"]
    assert body["items"][0]["kind"] == "Deployment" and body["items"][0]["namespace"] == "default"


async def test_filters_and_paging(server: str) -> None:
    async def names(query: str) -> tuple[list[str], int]:
        status, body, _ = await fetch(server + "/api/v1/resources?" + query)
        assert status == 200, body
        return [r["name"] for r in body["items"]], body["total"]

    assert await names("kind=Deployment") == (["lonely", "web"], 2)
    assert await names("group=core") == (["config"], 1)
    assert await names("health=Degraded") == (["config"], 1)
    assert await names("health=Degraded,Unknown") == (["config", "web"], 2)
    assert await names("health=Degraded&health=Unknown") == (["config", "web"], 2)
    assert await names("namespace=default&limit=1&offset=1") == (["lonely"], 3)
    assert await names("namespace=_") == ([], 0)
    assert await names("kind=&namespace=") == (["config", "lonely", "web"], 3)  # empty = no filter
    assert await names("offset=10") == ([], 3)  # past the end: still the total


async def test_the_matrix_puts_problems_first(server: str) -> None:
    status, body, _ = await fetch(server + "/api/v1/matrix?limit=2")
    assert status == 200
    assert [c["name"] for c in body["clusters"]] == [M1, M2, M3]
    assert body["total"] == 3 and len(body["resources"]) == 2
    # Both have a conflicted or failed work; then worst health Degraded before Unknown.
    assert [r["name"] for r in body["resources"]] == ["config", "web"]
    web = body["resources"][1]
    assert {c: cell["phase"] for c, cell in web["cells"].items()} == {
        M1: "healthy",
        M2: "progressing",
        M3: "conflict",
    }
    assert web["cells"][M2]["reason"] == "applied, Progressing; 1/3 replicas ready"


ERROR_CASES = [
    ("/api/v1/resources?health=Sick", 400, "health", "Sick"),
    ("/api/v1/resources?limit=0", 400, "limit", "greater than or equal to 1"),
    ("/api/v1/resources?limit=2.0", 400, "limit", "expected an integer"),
    ("/api/v1/resources?offset=-1", 400, "offset", "greater than or equal to 0"),
    ("/api/v1/matrix?limit=501", 400, "limit", "less than or equal to 500"),
    ("/api/v1/events?type=Exploded", 400, "type", "Exploded"),
    ("/api/v1/events?since=yesterday", 400, "since", "RFC 3339"),
    ("/api/v1/events?since=2026-01-01T00:00:00", 400, "since", "UTC offset"),
    ("/api/v1/resources/apps/Deploy-ment/default/web", 400, "kind", "does not match"),
    ("/api/v1/resources/apps/Deployment/Default/web", 400, "namespace", "does not match"),
    ("/api/v1/clusters/nowhere", 404, "name", "no cluster named 'nowhere'"),
    ("/api/v1/resources/apps/Deployment/default/nothing", 404, "name", "Deployment.apps default/nothing"),
    ("/api/v1/resources/core/ConfigMap/_/config/clusters", 404, "name", "ConfigMap config"),
    ("/api/v1/nothing-here", 404, None, "no such API route"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c[0].removeprefix("/api/v1/"))
async def test_errors_are_json_naming_the_problem(
    server: str, case: tuple[str, int, str | None, str]
) -> None:
    path, status, field, words = case
    got, body, resp = await fetch(server + path)
    assert got == status, body
    assert resp.content_type == "application/json"
    assert body["field"] == field and words in body["error"], body


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_the_api_is_read_only(server: str, method: str) -> None:
    paths = (
        "/api/v1/clusters",
        "/api/v1/resources/apps/Deployment/default/web",
        "/api/v1/watch",
        "/api/v1/anything",
    )
    for path in paths:
        status, body, resp = await fetch(server + path, method=method, json={"spec": {}})
        assert status == 405, (path, body)
        assert resp.headers["Allow"] == "GET, HEAD"
        assert body == {"error": f"the API is read-only: {method} is not allowed (use GET)", "field": None}


async def test_the_status_page_and_its_files(server: str) -> None:
    status, body, resp = await fetch(server + "/")
    assert status == 200 and resp.content_type == "text/html"
    assert (
        '<script src="/static/app.js"' in body
        and body.index('src="/static/live.js"') < body.index('src="/static/app.js"')  # app.js uses it
        and "default-src 'none'" in resp.headers["Content-Security-Policy"]
    )
    for name, kind in (
        ("app.js", "text/javascript"),
        ("live.js", "text/javascript"),
        ("style.css", "text/css"),
    ):
        status, _, resp = await fetch(server + "/static/" + name)
        assert status == 200 and resp.content_type == kind
    status, _, _ = await fetch(server + "/static/../app.py")
    assert status == 404


async def test_a_bearer_token_guards_the_api_but_not_the_probes(fleet_store: Store) -> None:
    config = ServerConfig(host="127.0.0.1", port=free_port(), api_token="s3cret-token", protect_metrics=True)
    runner = await serve(build_app(checks={"db": _ok}, store=fleet_store, config=config), config)
    base = f"http://127.0.0.1:{config.port}"
    good = {"Authorization": "Bearer s3cret-token"}
    try:
        # The watch stream too: it is exempt from the answer deadline, not from the credentials.
        for path in (
            "/api/v1/clusters",
            "/api/v1/openapi.json",
            "/api/v1/matrix",
            "/api/v1/watch",
            "/api/v1/nothing",
        ):
            status, body, resp = await fetch(base + path)
            assert status == 401 and body["field"] == "Authorization", (path, body)
            assert "--api-token" in body["error"]
            assert resp.headers["WWW-Authenticate"] == 'Bearer realm="federation"'
        status, body, _ = await fetch(base + "/api/v1/clusters", headers={"Authorization": "Bearer wrong"})
        assert (status, body["error"]) == (401, "the bearer token is not valid")
        status, body, _ = await fetch(base + "/api/v1/clusters", headers={"Authorization": "Basic eDp5"})
        assert status == 401 and "must be 'Bearer <token>'" in body["error"]
        status, body, _ = await fetch(base + "/api/v1/clusters", headers=good)
        assert status == 200 and len(body["items"]) == 3
        # Credentials first: a write without them learns nothing, not even that it is refused.
        status, _, _ = await fetch(base + "/api/v1/clusters", method="DELETE")
        assert status == 401
        status, _, _ = await fetch(base + "/api/v1/clusters", method="DELETE", headers=good)
        assert status == 405
        # The document says how to authenticate.
        status, doc, _ = await fetch(base + "/api/v1/openapi.json", headers=good)
        assert doc["security"] == [{"bearer": []}]
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        # Probes and the page shell stay open; /metrics is guarded when asked.
        for path in ("/healthz", "/readyz", "/", "/static/app.js"):
            status, _, _ = await fetch(base + path)
            assert status == 200, path
        status, _, _ = await fetch(base + "/metrics")
        assert status == 401
        status, text, _ = await fetch(base + "/metrics", headers=good)
        assert status == 200 and "python_info" in text
    finally:
        await runner.cleanup()


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Any]:
    ca, stranger = trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"cert": tmp_path / "tls.crt", "key": tmp_path / "tls.key", "ca_file": tmp_path / "ca.crt"}
    server_cert.cert_chain_pems[0].write_to_path(paths["cert"])
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(paths["cert"], append=True)
    server_cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca_file"])
    return {"ca": ca, "stranger": stranger, **paths}


def client_context(ca: trustme.CA, client_ca: trustme.CA | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if client_ca is not None:
        client_ca.issue_cert("dashboard@example.test").configure_cert(ctx)
    return ctx


async def test_mutual_tls_admits_client_certificates_of_the_ca_only(
    fleet_store: Store, certificates: dict[str, Any]
) -> None:
    config = ServerConfig(
        host="127.0.0.1",
        port=free_port(),
        tls_cert=certificates["cert"],
        tls_key=certificates["key"],
        client_ca=certificates["ca_file"],
    )
    runner = await serve(build_app(checks={"db": _ok}, store=fleet_store, config=config), config)
    base = f"https://127.0.0.1:{config.port}"
    ca = certificates["ca"]
    try:
        status, body, _ = await fetch(base + "/api/v1/clusters", ssl=client_context(ca, ca))
        assert status == 200 and len(body["items"]) == 3
        # No certificate: the TLS handshake succeeds (probes have none), the API refuses.
        status, body, _ = await fetch(base + "/api/v1/clusters", ssl=client_context(ca, None))
        assert status == 401 and "--client-ca" in body["error"]
        status, _, _ = await fetch(base + "/readyz", ssl=client_context(ca, None))
        assert status == 200
        # A certificate of another CA does not get through the handshake at all.
        with pytest.raises(aiohttp.ClientError):
            await fetch(base + "/api/v1/clusters", ssl=client_context(ca, certificates["stranger"]))
        status, doc, _ = await fetch(base + "/api/v1/openapi.json", ssl=client_context(ca, ca))
        assert doc["components"]["securitySchemes"]["mutualTLS"]["type"] == "mutualTLS"
    finally:
        await runner.cleanup()


async def test_without_a_store_only_the_probes_are_served() -> None:
    config = ServerConfig(host="127.0.0.1", port=free_port())
    runner = await serve(build_app(checks={"db": _ok}), config)
    try:
        status, _, _ = await fetch(f"http://127.0.0.1:{config.port}/readyz")
        assert status == 200
        status, body, _ = await fetch(f"http://127.0.0.1:{config.port}/api/v1/clusters")
        assert status == 404 and body["error"] == "no such API route: /api/v1/clusters"
    finally:
        await runner.cleanup()


def test_bad_server_configuration_names_the_flag(tmp_path: Path) -> None:
    from federation.errors import ConfigError

    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        ServerConfig(tls_cert=tmp_path / "a")
    with pytest.raises(ConfigError, match="--client-ca needs TLS"):
        ServerConfig(client_ca=tmp_path / "ca")
    with pytest.raises(ConfigError, match=r"--tls-cert .*: no such file"):
        ServerConfig(tls_cert=tmp_path / "a", tls_key=tmp_path / "b")
    # Whitespace is not "no token" (issue 10): the API would be served open by mistake.
    with pytest.raises(ConfigError, match="--api-token is only whitespace"):
        ServerConfig(api_token="  ")


async def test_schemathesis_finds_no_server_error_or_schema_violation(server: str) -> None:
    """Every operation, from the document: positive and negative data, every check."""
    from tests.apihelpers import run_schemathesis

    code, output = await run_schemathesis(server, max_examples=20)
    print(output)
    assert code == 0, output[-6000:]
