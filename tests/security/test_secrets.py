"""Secrets stay secret (issue 10): against the real fleet and a real `federation run`, after a
full propagation with drift, no Secret value — nor a field marked sensitive — is anywhere in
the controller's database, its API answers or its log; the drift events still say which path
drifted, with keyed hashes. A restart with the same key reads its sealed rows; a wrong key is
reported clearly, and neither loses nor rewrites a row; without a key nothing sensitive is
stored at all.

The attack reproduced (issue 10, finding 4): edit a propagated Secret in a member; the
DriftCorrected event used to carry both base64 values into `events` and `/api/v1/events`, and
`works.desired` / `resources.template` held the data in plaintext.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from federation.devfleet import LocalFleet
from federation.sealing import load_key_file, write_new_key_file
from tests.controllerhelpers import ControllerProcess, apply, events, get, kubectl, running_controller
from tests.kubehelpers import eventually

pytestmark = pytest.mark.security

MEMBERS = {"member-1": {"region": "eu"}, "member-2": {"region": "us"}, "member-3": {"region": "ap"}}
TARGETS = ["member-1", "member-2"]
SENSITIVE = "ConfigMap:/data/password"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret_value(what: str) -> str:
    """A value no other text could contain by chance (random, 37 characters)."""
    return f"{what}-{secrets.token_hex(16)}"


def forms(values: Iterable[str]) -> list[str]:
    """What must not appear: each value raw and in base64, and every 8-character piece of both."""
    out: set[str] = set()
    for value in values:
        for form in (value, b64(value)):
            out |= {form[i : i + 8] for i in range(len(form) - 7)}
    return sorted(out)


def leaks(text: str, values: Iterable[str]) -> list[str]:
    return [piece for piece in forms(values) if piece in text]


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    """`federation run` with a key of its own (the helper's default), a ConfigMap field marked
    sensitive, and debug logs: the most talkative the controller gets."""
    log_dir = tmp_path_factory.mktemp("security-secrets")
    async with running_controller(
        fleet,
        hub_id="sec-hub",
        log_dir=log_dir,
        labels=MEMBERS,
        extra_args=["--sensitive-field", SENSITIVE, "--log-level", "debug"],
    ) as proc:
        yield proc


def secret(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: b64(v) for k, v in data.items()},
    }


def configmap(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def policy(name: str, namespace: str, *selected: tuple[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": "v1", "kind": kind, "name": n} for kind, n in selected],
            "placement": {"clusterNames": TARGETS},
        },
    }


def member_value(
    fleet: LocalFleet, cluster: str, kind: str, name: str, namespace: str, key: str
) -> str | None:
    obj = get(fleet, cluster, kind, name, namespace)
    if obj is None:
        return None
    value = (obj.get("data") or {}).get(key)
    if value is None:
        return None
    return base64.b64decode(value).decode() if kind == "secret" else str(value)


async def arrived(
    fleet: LocalFleet, cluster: str, kind: str, name: str, namespace: str, key: str, want: str
) -> None:
    async def there() -> bool:
        return member_value(fleet, cluster, kind, name, namespace, key) == want

    await eventually(
        there, timeout=45, what=f"{kind} {namespace}/{name} in {cluster} holding the hub's value"
    )


async def dump_database(url: str) -> dict[str, str]:
    """Every row of every table of the controller's database, all columns, as JSON text."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        out = {}
        for t in tables:
            rows = await conn.fetch(
                f'SELECT row_to_json(t)::text AS j FROM "{t["table_schema"]}"."{t["table_name"]}" t'
            )
            out[t["table_name"]] = "\n".join(r["j"] for r in rows)
        return out
    finally:
        await conn.close()


def api(proc: ControllerProcess, path: str) -> str:
    with urllib.request.urlopen(proc.url + path, timeout=10) as resp:
        assert resp.status == 200, path
        return str(resp.read().decode())


async def drift_events(proc: ControllerProcess, namespace: str, name: str) -> list[dict[str, Any]]:
    found = []
    for e in await events(proc.database_url, namespace):
        if e["type"] == "DriftCorrected" and e["name"] == name:
            details = e["details"] if isinstance(e["details"], dict) else json.loads(e["details"])
            found.append({**e, "details": details})
    return found


def entry(event: dict[str, Any], path: str) -> dict[str, Any]:
    matching = [d for d in event["details"]["diff"] if d["path"] == path]
    assert matching, f"no diff entry for {path}: {event['details']}"
    return dict(matching[0])


def since_last_start(proc: ControllerProcess) -> str:
    """The controller's log since its last start (`ControllerProcess` marks each start)."""
    return proc.log_path.read_text(errors="replace").rsplit(f"==== start {proc.starts} ====", 1)[-1]


async def settled_works(proc: ControllerProcess, namespace: str, name: str, n: int) -> list[dict[str, Any]]:
    """The works of one template once all ``n`` are applied (results are recorded in batches)."""

    async def applied() -> list[dict[str, Any]]:
        found = await works_of(proc.database_url, namespace, name)
        return found if len(found) == n and all(w["state"] == "applied" for w in found) else []

    return await eventually(applied, timeout=30, what=f"the {n} works of {namespace}/{name} applied")


async def restart(proc: ControllerProcess, *, key_file: Path | None) -> None:
    await anyio.to_thread.run_sync(proc.stop)
    proc.encryption_key_file = key_file
    await anyio.to_thread.run_sync(proc.start)


async def works_of(url: str, namespace: str, name: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT w.id, w.cluster, w.desired::text AS desired, w.desired_hash, w.version, "
            "w.state::text AS state, w.last_error FROM works w JOIN resources r ON r.id = w.resource_id "
            "WHERE r.namespace = $1 AND r.name = $2 ORDER BY w.cluster",
            namespace,
            name,
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


# -- the attack: drift on a propagated Secret, then read everything ----------------------------


async def test_no_secret_value_is_in_the_database_the_api_or_the_log_after_propagation_with_drift(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    password, api_key = secret_value("Pa55word"), secret_value("ApiKey")
    cm_password = secret_value("CmPass")
    drifted, cm_drifted = secret_value("MemberEdit"), secret_value("CmEdit")
    values = [password, api_key, cm_password, drifted, cm_drifted]
    # kubectl apply (client-side) also copies the whole object, values included, into the
    # last-applied annotation of the hub template; stringData arrives as data.
    db = secret("db", namespace, password=password)
    db["stringData"] = {"api-key": api_key}
    apply(
        fleet,
        "hub",
        db,
        configmap("settings", namespace, password=cm_password, user="app"),
        policy("secrets", namespace, ("Secret", "db"), ("ConfigMap", "settings")),
    )
    for cluster in TARGETS:
        await arrived(fleet, cluster, "secret", "db", namespace, "password", password)
        await arrived(fleet, cluster, "configmap", "settings", namespace, "password", cm_password)

    # A member admin edits both copies: the hub wins, and the drift is recorded.
    kubectl(fleet, "member-1", "-n", namespace, "patch", "secret", "db", "--type=merge",
            "-p", json.dumps({"data": {"password": b64(drifted)}}))  # fmt: skip
    kubectl(fleet, "member-1", "-n", namespace, "patch", "configmap", "settings", "--type=merge",
            "-p", json.dumps({"data": {"password": cm_drifted, "user": "intruder"}}))  # fmt: skip
    await arrived(fleet, "member-1", "secret", "db", namespace, "password", password)
    await arrived(fleet, "member-1", "configmap", "settings", namespace, "password", cm_password)
    (secret_drift,) = await eventually(
        lambda: drift_events(controller, namespace, "db"),
        timeout=30,
        what="the Secret's DriftCorrected event",
    )
    (cm_drift,) = await eventually(
        lambda: drift_events(controller, namespace, "settings"), timeout=30, what="the ConfigMap's event"
    )

    # The events still say what drifted, where: the path, and keyed hashes of both sides.
    assert secret_drift["cluster"] == "member-1"
    for event, path in ((secret_drift, "/data/password"), (cm_drift, "/data/password")):
        e = entry(event, path)
        assert e["sensitive"] is True
        assert e["hub"].startswith("hmac-sha256:") and e["member"].startswith("hmac-sha256:")
        assert e["hub"] != e["member"]
    # A field not marked sensitive stays readable.
    assert entry(cm_drift, "/data/user") == {"path": "/data/user", "hub": "app", "member": "intruder"}

    # Nowhere in the database: every table, every column.
    tables = await dump_database(controller.database_url)
    assert {"events", "works", "resources", "member_status", "policies", "placements"} <= set(tables)
    everything = "\n".join(tables.values())
    assert namespace in everything and "$sealed" in everything, "the dump holds the rows in question"
    for table, text in tables.items():
        assert not leaks(text, values), f"table {table} holds a secret value"

    # Nowhere in the API's answers (events, resources, works, clusters, matrix) or the page.
    secret_path = f"/api/v1/resources/core/Secret/{namespace}/db"
    cm_path = f"/api/v1/resources/core/ConfigMap/{namespace}/settings"
    answers = {
        path: api(controller, path)
        for path in (
            "/api/v1/events?limit=1000",
            f"/api/v1/events?namespace={namespace}&type=DriftCorrected",
            f"/api/v1/resources?namespace={namespace}",
            secret_path,
            f"{secret_path}/clusters",
            f"{cm_path}/clusters",
            "/api/v1/clusters",
            f"/api/v1/matrix?namespace={namespace}",
            "/",
        )
    }
    assert "hmac-sha256:" in answers[f"/api/v1/events?namespace={namespace}&type=DriftCorrected"]
    assert "/data/password" in answers[f"/api/v1/events?namespace={namespace}&type=DriftCorrected"]
    for path, text in answers.items():
        assert not leaks(text, values), f"GET {path} shows a secret value"

    # Nowhere in the controller's log (at debug level).
    log = controller.log_path.read_text(errors="replace")
    assert "db" in log and namespace in log, "the log speaks of the Secret"
    assert not leaks(log, values), "the controller's log holds a secret value"


# -- restarts: the same key, a wrong key, no key ------------------------------------------------


async def test_a_restart_with_the_same_key_reads_its_sealed_rows_without_rewriting_them(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    password, first_edit, second_edit = (secret_value(w) for w in ("Keep", "EditOne", "EditTwo"))
    apply(fleet, "hub", secret("db", namespace, password=password), policy("p", namespace, ("Secret", "db")))
    for cluster in TARGETS:
        await arrived(fleet, cluster, "secret", "db", namespace, "password", password)
    kubectl(fleet, "member-2", "-n", namespace, "patch", "secret", "db", "--type=merge",
            "-p", json.dumps({"data": {"password": b64(first_edit)}}))  # fmt: skip
    await arrived(fleet, "member-2", "secret", "db", namespace, "password", password)
    (before_event,) = await eventually(
        lambda: drift_events(controller, namespace, "db"), what="the first drift"
    )
    before = await settled_works(controller, namespace, "db", len(TARGETS))

    await restart(controller, key_file=controller.encryption_key_file)

    # Started again, it writes nothing (same ciphertext, hash and version)...
    async def settled() -> bool:
        return await works_of(controller.database_url, namespace, "db") == before

    await eventually(settled, timeout=20, what="the sealed works unchanged after the restart")
    # ...and opens its rows: drift in the member is corrected from the sealed desired state.
    kubectl(fleet, "member-2", "-n", namespace, "patch", "secret", "db", "--type=merge",
            "-p", json.dumps({"data": {"password": b64(second_edit)}}))  # fmt: skip
    await arrived(fleet, "member-2", "secret", "db", namespace, "password", password)

    async def second_drift() -> list[dict[str, Any]]:
        found = await drift_events(controller, namespace, "db")
        return found if len(found) >= 2 else []

    events_now = await eventually(second_drift, what="the drift after the restart")
    # The same key gives the same keyed hash of the hub's value: comparable across restarts.
    assert entry(events_now[-1], "/data/password")["hub"] == entry(before_event, "/data/password")["hub"]
    tables = await dump_database(controller.database_url)
    assert not leaks("\n".join(tables.values()), [password, first_edit, second_edit])


async def test_a_wrong_key_is_reported_and_loses_or_rewrites_nothing(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str, tmp_path: Path
) -> None:
    right = controller.encryption_key_file
    assert right is not None
    right_id = load_key_file(right).active.id
    password, changed = secret_value("Original"), secret_value("ChangedOnHub")
    apply(fleet, "hub", secret("db", namespace, password=password), policy("p", namespace, ("Secret", "db")))
    for cluster in TARGETS:
        await arrived(fleet, cluster, "secret", "db", namespace, "password", password)
    before = await settled_works(controller, namespace, "db", len(TARGETS))
    wrong = tmp_path / "wrong.keys"
    write_new_key_file(wrong, key_id="k-wrong")
    try:
        await restart(controller, key_file=wrong)
        # It runs (ready), and says which rows it cannot open and which key they need.
        rid_clusters = [f"cluster={w['cluster']} (Secret {namespace}/db)" for w in before]

        async def reported() -> bool:
            log = since_last_start(controller)
            return all(
                any(
                    rc in line and f"sealed with encryption key '{right_id}'" in line
                    for line in log.splitlines()
                )
                for rc in rid_clusters
            )

        await eventually(reported, timeout=30, what="an error naming each row and the key it needs")
        # The hub changes the Secret: the new value is not sealed over rows it cannot read.
        apply(fleet, "hub", secret("db", namespace, password=changed))

        async def held() -> bool:
            log = since_last_start(controller)
            return all(
                any(
                    f"cluster={c}: not rewritten" in line and f"'{right_id}'" in line
                    for line in log.splitlines()
                )
                for c in TARGETS
            )

        await eventually(held, timeout=30, what="the works held back, said in the log")
        assert await works_of(controller.database_url, namespace, "db") == before, "no row rewritten or lost"
        # The members keep the last good copy (never placeholders), and the rest of the fleet works.
        for cluster in TARGETS:
            assert member_value(fleet, cluster, "secret", "db", namespace, "password") == password
        apply(
            fleet,
            "hub",
            configmap("plain", namespace, user="app"),
            policy("q", namespace, ("ConfigMap", "plain")),
        )
        for cluster in TARGETS:
            await arrived(fleet, cluster, "configmap", "plain", namespace, "user", "app")
        assert controller.ready()
        # A copy deleted in a member is due again, but what is left of its row (no values) is
        # never applied: the work waits, its last error naming the key, shown by the API.
        kubectl(fleet, "member-2", "-n", namespace, "delete", "secret", "db")

        async def waiting() -> dict[str, Any] | None:
            rows = {w["cluster"]: w for w in await works_of(controller.database_url, namespace, "db")}
            error = rows["member-2"]["last_error"] or ""
            return rows["member-2"] if f"sealed with encryption key '{right_id}'" in error else None

        await eventually(waiting, timeout=30, what="the work retried, its last error naming the key")
        assert get(fleet, "member-2", "secret", "db", namespace) is None, "never recreated without its values"
        shown = api(controller, f"/api/v1/resources/core/Secret/{namespace}/db/clusters")
        assert f"encryption key '{right_id}'" in shown and not leaks(shown, [password, changed])
    finally:
        await restart(controller, key_file=right)
    # With the right key back, the held change goes through.
    for cluster in TARGETS:
        await arrived(fleet, cluster, "secret", "db", namespace, "password", changed)
    tables = await dump_database(controller.database_url)
    assert not leaks("\n".join(tables.values()), [password, changed])


async def test_without_a_key_a_secret_is_not_propagated_and_nothing_of_it_is_stored(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    right = controller.encryption_key_file
    password = secret_value("NoKey")
    try:
        await restart(controller, key_file=None)
        assert "no encryption key (--encryption-key-file)" in since_last_start(controller)
        apply(
            fleet,
            "hub",
            secret("db", namespace, password=password),
            configmap("plain", namespace, user="app"),
            policy("p", namespace, ("Secret", "db"), ("ConfigMap", "plain")),
        )
        for cluster in TARGETS:
            await arrived(fleet, cluster, "configmap", "plain", namespace, "user", "app")

        async def refused() -> list[dict[str, Any]]:
            return [
                e for e in await events(controller.database_url, namespace)
                if e["type"] == "ApplyFailed" and e["name"] == "db"
            ]  # fmt: skip

        (event,) = await eventually(refused, timeout=30, what="the Secret refused, said in an event")
        assert "--encryption-key-file" in event["message"] and "not propagated" in event["message"]
        assert await works_of(controller.database_url, namespace, "db") == []
        for cluster in TARGETS:
            assert get(fleet, cluster, "secret", "db", namespace) is None
        tables = await dump_database(controller.database_url)
        assert not leaks("\n".join(tables.values()), [password])
        assert not leaks(controller.log_path.read_text(errors="replace"), [password])
    finally:
        await restart(controller, key_file=right)
    # With a key, the same Secret goes out.
    for cluster in TARGETS:
        await arrived(fleet, cluster, "secret", "db", namespace, "password", password)
