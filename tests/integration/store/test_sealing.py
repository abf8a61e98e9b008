"""Sealing at the store boundary, on real Postgres: what the columns hold, what the controller
gets back, what a key it lacks does (nothing is overwritten, the row says why), rotation, and
that sealing costs the "zero writes when nothing changed" rule nothing."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from federation.errors import SealingUnavailableError
from federation.sealing import KeyRing, Sealer, new_key
from federation.store import ClusterDecision, DesiredWork, ResourceRow, ResourceWork, Store
from federation.store.sealing import SEALED
from federation.translate import SensitiveFields
from federation.translate.sensitive import parse_all
from tests.storehelpers import query

PASSWORD = "s3cr3t-value-that-must-not-leak"
B64 = base64.b64encode(PASSWORD.encode()).decode()
K1, K2 = new_key("k1"), new_key("k2")


def keys(*ks: Any) -> KeyRing:
    return KeyRing(keys=tuple(ks), source="test.keys")


def secret(*, name: str = "db", value: str = B64) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "shop"},
        "type": "Opaque",
        "data": {"password": value},
    }


def config(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}}


def config_row(name: str) -> ResourceRow:
    return ResourceRow("", "v1", "ConfigMap", "shop", name, f"uid-{name}", 1, "1", config(name))


def secret_row(doc: dict[str, Any], *, rv: str = "1") -> ResourceRow:
    meta = doc["metadata"]
    return ResourceRow(
        api_group="",
        api_version="v1",
        kind="Secret",
        namespace=meta["namespace"],
        name=meta["name"],
        uid=f"uid-{meta['name']}",
        generation=1,
        resource_version=rv,
        template=doc,
    )


async def open_store(url: str, sealer: Sealer | None) -> Store:
    return await Store.connect(url, sealer=sealer)


@pytest.fixture
async def sealed_store(database_url: str) -> AsyncIterator[Store]:
    store = await open_store(database_url, Sealer(keys=keys(K1)))
    try:
        yield store
    finally:
        await store.close()


async def dump(url: str) -> str:
    """Every row of both manifest tables, as text (what a reader of the database sees)."""
    rows = await query(url, "SELECT row_to_json(t)::text AS j FROM works t UNION ALL "
                            "SELECT row_to_json(t)::text FROM resources t")  # fmt: skip
    return "\n".join(r["j"] for r in rows)


async def place(
    store: Store, doc: dict[str, Any], *, clusters: tuple[str, ...] = ("m1",), h: str = "h1"
) -> int:
    rid, _ = await store.register_resource(secret_row(doc))
    await store.save_placement(
        rid,
        policy_id=None,
        decisions=[ClusterDecision(c, True) for c in clusters],
        desired_works=[DesiredWork(c, doc, h) for c in clusters],
    )
    return rid


async def test_the_columns_hold_ciphertext_and_the_controller_gets_the_secret_back(
    sealed_store: Store, database_url: str
) -> None:
    rid = await place(sealed_store, secret(), clusters=("m1", "m2"))
    text = await dump(database_url)
    assert PASSWORD not in text and B64 not in text
    assert text.count('"kid": "k1"') == 3, "two works and the template"
    (claimed,) = await sealed_store.claim_due_works("m1", holder="w", limit=5, lease_seconds=30)
    assert claimed.desired == secret() and claimed.sealing_error is None and claimed.resource_id == rid
    (indexed,) = await sealed_store.work_index("m2")
    assert indexed.desired == secret() and indexed.sealing_error is None
    # A dashboard's view still works: identity and counts are in the clear.
    (view,) = await query(database_url, "SELECT kind, name FROM fleet_work_status WHERE cluster = 'm1'")
    assert (view["kind"], view["name"]) == ("Secret", "db")
    assert await sealed_store.sealed_key_usage() == {"k1": {"works": 2, "resources": 1}}


async def test_bulk_upserts_are_sealed_too(sealed_store: Store, database_url: str) -> None:
    rid, _ = await sealed_store.register_resource(secret_row(secret()))
    written = await sealed_store.upsert_desired_works([ResourceWork(rid, "m1", secret(), "h1")])
    assert written == 1 and B64 not in await dump(database_url)
    (claimed,) = await sealed_store.claim_due_works("m1", holder="w", limit=5, lease_seconds=30)
    assert claimed.desired == secret()


async def test_marked_fields_are_sealed_and_other_objects_are_stored_as_they_are(database_url: str) -> None:
    fields = SensitiveFields(extra=parse_all(["ConfigMap:/data/password"]))
    store = await open_store(database_url, Sealer(keys=keys(K1), fields=fields))
    try:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"},
              "data": {"password": PASSWORD, "user": "app"}}  # fmt: skip
        plain = {**cm, "metadata": {"name": "p", "namespace": "shop"}, "data": {"user": "app"}}
        for doc in (cm, plain):
            rid, _ = await store.register_resource(
                ResourceRow("", "v1", "ConfigMap", "shop", doc["metadata"]["name"], "u", 1, "1", doc)
            )
            await store.save_placement(
                rid,
                policy_id=None,
                decisions=[ClusterDecision("m1", True)],
                desired_works=[DesiredWork("m1", doc, "h")],
            )
        assert PASSWORD not in await dump(database_url)
        rows = await query(database_url, "SELECT desired FROM works ORDER BY id")
        stored = [orjson.loads(r["desired"]) for r in rows]
        assert stored[0]["data"]["user"] == "app" and SEALED in stored[0]
        assert stored[1] == plain, "nothing sensitive: stored exactly as given"
        assert sorted(w.desired["metadata"]["name"] for w in await store.work_index("m1")) == ["c", "p"]
        assert {w.desired["metadata"]["name"]: w.desired for w in await store.work_index("m1")}["c"] == cm
    finally:
        await store.close()


async def test_without_a_key_nothing_sensitive_is_written(database_url: str) -> None:
    store = await open_store(database_url, Sealer(keys=None))
    try:
        with pytest.raises(
            SealingUnavailableError, match=r"resources Secret shop/db: holds sensitive values"
        ):
            await store.register_resource(secret_row(secret()))
        rid, _ = await store.register_resource(config_row("c"))
        with pytest.raises(
            SealingUnavailableError, match=r"works resource_id=\d+ cluster=m1 \(Secret shop/db\)"
        ):
            await store.save_placement(
                rid,
                policy_id=None,
                decisions=[ClusterDecision("m1", True)],
                desired_works=[DesiredWork("m1", secret(), "h")],
            )
        assert (await query(database_url, "SELECT count(*) AS n FROM works"))[0]["n"] == 0
        assert (await query(database_url, "SELECT count(*) AS n FROM placements"))[0]["n"] == 0
        assert B64 not in await dump(database_url)
    finally:
        await store.close()


async def test_a_work_sealed_with_a_key_the_store_lacks_opens_per_row_and_is_never_overwritten(
    database_url: str,
) -> None:
    first = await open_store(database_url, Sealer(keys=keys(K1)))
    try:
        rid = await place(first, secret(), clusters=("m1",))
        other, _ = await first.register_resource(config_row("plain"))
        await first.save_placement(
            other,
            policy_id=None,
            decisions=[ClusterDecision("m1", True)],
            desired_works=[DesiredWork("m1", config("plain"), "h")],
        )
    finally:
        await first.close()
    before = await query(database_url, "SELECT id, desired::text AS d, version FROM works ORDER BY id")
    wrong = await open_store(database_url, Sealer(keys=keys(K2)))
    try:
        # Claimed: the work that does not open comes back with the reason, the other as it is.
        claimed = {
            w.resource_id: w for w in await wrong.claim_due_works("m1", holder="w", limit=5, lease_seconds=1)
        }
        bad, good = claimed[rid], claimed[other]
        assert good.sealing_error is None and good.desired["metadata"]["name"] == "plain"
        assert bad.sealing_error is not None and "'k1'" in bad.sealing_error
        assert f"works resource_id={rid} cluster=m1 (Secret shop/db)" in bad.sealing_error
        assert bad.desired["metadata"] == {"name": "db", "namespace": "shop"} and "data" not in bad.desired
        (indexed,) = [w for w in await wrong.work_index("m1") if w.resource_id == rid]
        assert indexed.sealing_error == bad.sealing_error
        # The hub recomputes it (a new hash under the new key): the row is left alone, and said so.
        change = await wrong.save_placement(
            rid,
            policy_id=None,
            decisions=[ClusterDecision("m1", True)],
            desired_works=[DesiredWork("m1", secret(), "h2")],
        )
        assert change.works_held == (("m1", "k1"),) and not change.works_updated
        assert await wrong.upsert_desired_works([ResourceWork(rid, "m1", secret(), "h3")]) == 0
        after = await query(database_url, "SELECT id, desired::text AS d, version FROM works ORDER BY id")
        assert [r["d"] for r in after] == [r["d"] for r in before], "the ciphertext is untouched"
        assert B64 not in await dump(database_url)
    finally:
        await wrong.close()
    # Given the key again (behind a new active one), it opens, and its next rewrite re-seals it.
    fixed = await open_store(database_url, Sealer(keys=keys(K2, K1)))
    try:
        (work,) = [w for w in await fixed.work_index("m1") if w.resource_id == rid]
        assert work.desired == secret() and work.sealing_error is None
        change = await fixed.save_placement(
            rid,
            policy_id=None,
            decisions=[ClusterDecision("m1", True)],
            desired_works=[DesiredWork("m1", secret(), "h4")],
        )
        assert change.works_updated == ("m1",) and not change.works_held
        usage = await fixed.sealed_key_usage()
        assert usage["k2"]["works"] == 1
    finally:
        await fixed.close()


async def test_rotation_reseals_templates_when_registered_again(database_url: str) -> None:
    first = await open_store(database_url, Sealer(keys=keys(K1)))
    try:
        await first.register_resource(secret_row(secret()))
    finally:
        await first.close()
    rotated = await open_store(database_url, Sealer(keys=keys(K2, K1)))
    try:
        await rotated.register_resource(secret_row(secret()))  # same resourceVersion
        assert await rotated.sealed_key_usage() == {"k2": {"resources": 1}}
        # Registered again with the same key: nothing to rewrite.
        (before,) = await query(database_url, "SELECT xmin::text AS x FROM resources")
        await rotated.register_resource(secret_row(secret()))
        (after,) = await query(database_url, "SELECT xmin::text AS x FROM resources")
        assert before["x"] == after["x"]
    finally:
        await rotated.close()


async def test_an_unchanged_sealed_placement_writes_nothing(sealed_store: Store, database_url: str) -> None:
    """Each save seals afresh (new nonces), but rows are compared by hash: a restart that
    recomputes every placement rewrites no sealed row."""
    rid = await place(sealed_store, secret(), clusters=("m1", "m2"))
    before = await query(database_url, "SELECT cluster, xmin::text AS x, version FROM works ORDER BY cluster")
    change = await sealed_store.save_placement(
        rid,
        policy_id=None,
        decisions=[ClusterDecision("m1", True), ClusterDecision("m2", True)],
        desired_works=[DesiredWork("m1", secret(), "h1"), DesiredWork("m2", secret(), "h1")],
    )
    assert not change.changed
    after = await query(database_url, "SELECT cluster, xmin::text AS x, version FROM works ORDER BY cluster")
    assert [tuple(r) for r in after] == [tuple(r) for r in before]


async def test_a_store_without_a_sealer_returns_sealed_rows_as_stored(
    sealed_store: Store, database_url: str
) -> None:
    """Tools that open no values (the CLI's status and events) see ciphertext, never values."""
    await place(sealed_store, secret(), clusters=("m1",))
    tool = await open_store(database_url, None)
    try:
        (w,) = await tool.work_index("m1")
        assert SEALED in w.desired and B64 not in orjson.dumps(w.desired).decode()
    finally:
        await tool.close()
