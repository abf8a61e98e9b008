"""save_placement: one statement, and not a single write when nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from federation.errors import StoreError
from federation.store import ApplyResult, ClusterDecision, DesiredWork, ResourceId, Store, WorkState
from federation.store.db import init_connection
from federation.store.repo import placements
from tests.integration.store.factories import deployment, desired, placed_resource, resource_row
from tests.storehelpers import query

CLUSTERS = ["member-1", "member-2", "member-3"]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A raw connection with the store's codecs, for calling the repository inside a transaction."""
    connection = await asyncpg.connect(database_url)
    await init_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()


async def row_versions(url: str, resource_id: ResourceId) -> dict[str, Any]:
    """Every physical row version (xmin) and timestamp of the resource's placement state."""
    works = await query(
        url,
        "SELECT cluster, xmin::text AS xmin, version, updated_at, state::text AS state, next_attempt_at "
        "FROM works WHERE resource_id = $1 ORDER BY cluster",
        resource_id,
    )
    decisions = await query(
        url,
        "SELECT cluster, xmin::text AS xmin FROM placement_decisions WHERE resource_id = $1 ORDER BY cluster",
        resource_id,
    )
    placement = await query(
        url,
        "SELECT xmin::text AS xmin, revision, decided_at FROM placements WHERE resource_id = $1",
        resource_id,
    )
    return {
        "works": [dict(r) for r in works],
        "decisions": [dict(r) for r in decisions],
        "placement": [dict(r) for r in placement],
    }


def all_chosen(replicas: int = 2) -> list[ClusterDecision]:
    return [ClusterDecision(cluster=c, chosen=True, replicas=replicas) for c in CLUSTERS]


async def test_first_save_creates_placement_decisions_and_works(store: Store, database_url: str) -> None:
    (rid,) = await store.upsert_resources([resource_row("web")])
    manifest = deployment("web")
    change = await store.save_placement(
        rid,
        policy_id=None,
        decisions=[
            *all_chosen()[:2],
            ClusterDecision(cluster="member-3", chosen=False, reason="taint NoSchedule"),
        ],
        desired_works=[desired(c, manifest) for c in CLUSTERS[:2]],
    )
    assert change.revision == 1 and change.placement_changed
    assert change.works_created == ("member-1", "member-2")
    assert change.works_updated == () and change.works_unplaced == ()

    state = await row_versions(database_url, rid)
    assert [w["cluster"] for w in state["works"]] == ["member-1", "member-2"]
    assert {w["state"] for w in state["works"]} == {"pending"}
    assert all(w["next_attempt_at"] is not None for w in state["works"])
    reasons = await query(
        database_url, "SELECT cluster, chosen, reason FROM placement_decisions WHERE resource_id = $1", rid
    )
    assert {r["cluster"]: (r["chosen"], r["reason"]) for r in reasons}["member-3"] == (
        False,
        "taint NoSchedule",
    )


async def test_an_identical_save_writes_nothing(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", CLUSTERS)
    before = await row_versions(database_url, rid)

    change = await store.save_placement(
        rid,
        policy_id=None,
        decisions=all_chosen(),
        desired_works=[desired(c, deployment("web")) for c in CLUSTERS],
    )

    assert not change.changed
    assert change.revision == 1
    # Same physical row versions (xmin), same versions and timestamps: nothing was rewritten.
    assert await row_versions(database_url, rid) == before


async def test_an_identical_save_takes_no_transaction_id(
    store: Store, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    # Stronger than comparing xmin: Postgres assigns a transaction id on the first write of any
    # kind (insert, update, delete, even a row lock). None assigned means not one byte written.
    rid = await placed_resource(store, "web", CLUSTERS)
    async with conn.transaction():
        await placements.save_placement(
            conn,
            rid,
            policy_id=None,
            decisions=all_chosen(),
            desired_works=[desired(c, deployment("web")) for c in CLUSTERS],
        )
        assert await conn.fetchval("SELECT pg_current_xact_id_if_assigned()") is None
    # And the probe itself is meaningful: a real change does take one.
    async with conn.transaction():
        await placements.save_placement(
            conn,
            rid,
            policy_id=None,
            decisions=all_chosen(),
            desired_works=[desired(c, deployment("web", image="nginx:2")) for c in CLUSTERS],
        )
        assert await conn.fetchval("SELECT pg_current_xact_id_if_assigned()") is not None


async def test_a_changed_manifest_rewrites_only_that_work(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", CLUSTERS)
    (claimed,) = await store.claim_due_works("member-2", holder="w", limit=1, lease_seconds=30)
    assert claimed.version == 2
    assert await store.record_apply_results([ApplyResult(claimed.id, 2, WorkState.APPLIED)]) == {
        claimed.id: 3
    }
    before = {w["cluster"]: w for w in (await row_versions(database_url, rid))["works"]}
    assert before["member-2"]["state"] == "applied" and before["member-2"]["next_attempt_at"] is None

    works = [desired(c, deployment("web")) for c in CLUSTERS]
    works[1] = desired("member-2", deployment("web", image="nginx:2"))
    change = await store.save_placement(rid, policy_id=None, decisions=all_chosen(), desired_works=works)

    assert change.works_updated == ("member-2",)
    assert change.works_created == () and change.works_unplaced == ()
    assert not change.placement_changed and change.revision == 1
    after = {w["cluster"]: w for w in (await row_versions(database_url, rid))["works"]}
    assert after["member-1"] == before["member-1"] and after["member-3"] == before["member-3"]
    assert after["member-2"]["state"] == "pending"
    assert after["member-2"]["version"] == before["member-2"]["version"] + 1
    assert after["member-2"]["next_attempt_at"] is not None


async def test_unchosen_clusters_are_unplaced_once(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", CLUSTERS)
    decisions = [
        *all_chosen()[:1],
        *(ClusterDecision(cluster=c, chosen=False, reason="gone") for c in CLUSTERS[1:]),
    ]
    manifest = deployment("web")

    change = await store.save_placement(
        rid, policy_id=None, decisions=decisions, desired_works=[desired("member-1", manifest)]
    )
    assert change.works_unplaced == ("member-2", "member-3")
    assert change.placement_changed and change.revision == 2  # the decisions changed
    states = {w["cluster"]: w["state"] for w in (await row_versions(database_url, rid))["works"]}
    assert states == {"member-1": "pending", "member-2": "deleting", "member-3": "deleting"}

    again = await store.save_placement(
        rid, policy_id=None, decisions=decisions, desired_works=[desired("member-1", manifest)]
    )
    assert not again.changed


async def test_orphan_policy_and_coming_back(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", CLUSTERS)
    manifest = deployment("web")
    only_first = [ClusterDecision(cluster="member-1", chosen=True)]
    change = await store.save_placement(
        rid, policy_id=None, decisions=only_first, desired_works=[desired("member-1", manifest)], orphan=True
    )
    assert change.works_unplaced == ("member-2", "member-3")
    states = {w["cluster"]: w["state"] for w in (await row_versions(database_url, rid))["works"]}
    assert states["member-2"] == states["member-3"] == "orphaning"

    # Chosen again with the same manifest: the work must come back (its object may be gone).
    back = await store.save_placement(
        rid, policy_id=None, decisions=all_chosen(), desired_works=[desired(c, manifest) for c in CLUSTERS]
    )
    assert back.works_updated == ("member-2", "member-3")
    states = {w["cluster"]: w["state"] for w in (await row_versions(database_url, rid))["works"]}
    assert set(states.values()) == {"pending"}


async def test_a_reason_change_bumps_the_revision_but_not_the_works(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", CLUSTERS)
    before = await row_versions(database_url, rid)
    decisions = [
        ClusterDecision(cluster=c, chosen=True, replicas=2, reason="spread by zone") for c in CLUSTERS
    ]
    change = await store.save_placement(
        rid,
        policy_id=None,
        decisions=decisions,
        desired_works=[desired(c, deployment("web")) for c in CLUSTERS],
    )
    assert change.placement_changed and change.revision == 2
    assert (change.works_created, change.works_updated, change.works_unplaced) == ((), (), ())
    assert (await row_versions(database_url, rid))["works"] == before["works"]


async def test_a_chosen_cluster_without_a_manifest_keeps_its_work(store: Store, database_url: str) -> None:
    # e.g. its translation failed this time: the old work must be neither rewritten nor deleted.
    rid = await placed_resource(store, "web", CLUSTERS)
    before = await row_versions(database_url, rid)
    change = await store.save_placement(
        rid,
        policy_id=None,
        decisions=all_chosen(),
        desired_works=[desired(c, deployment("web")) for c in CLUSTERS[:2]],
    )
    assert not change.changed
    assert await row_versions(database_url, rid) == before


async def test_a_refused_translation_is_a_failed_work_with_nothing_to_do(
    store: Store, database_url: str
) -> None:
    """An override refused for a cluster (say, it would change the copy's kind): its work is
    failed with the reason, never claimed, and written once, not on every reconcile; the fixed
    translation makes it pending again even when the manifest equals the one applied before."""
    rid = await placed_resource(store, "web", CLUSTERS[:2])
    manifest = deployment("web")
    stub = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
    }
    refused = DesiredWork("member-2", stub, "refused-abc", error="rule[0] changes kind: refused")
    fresh = DesiredWork("member-3", stub, "refused-abc", error="rule[0] changes kind: refused")
    change = await store.save_placement(
        rid,
        policy_id=None,
        decisions=all_chosen(),
        desired_works=[desired("member-1", manifest), refused, fresh],
    )
    assert (change.works_created, change.works_updated) == (("member-3",), ("member-2",))
    rows = {
        r["cluster"]: dict(r)
        for r in await query(
            database_url,
            "SELECT cluster, state::text AS state, last_error, next_attempt_at, desired FROM works "
            "WHERE resource_id = $1",
            rid,
        )
    }
    for cluster in ("member-2", "member-3"):
        assert rows[cluster]["state"] == "failed" and rows[cluster]["next_attempt_at"] is None
        assert rows[cluster]["last_error"] == "rule[0] changes kind: refused"
        assert '"kind": "Deployment"' in rows[cluster]["desired"]
    assert [
        w.cluster for w in await store.claim_due_works("member-2", holder="w", limit=9, lease_seconds=30)
    ] == []
    before = await row_versions(database_url, rid)
    again = await store.save_placement(
        rid,
        policy_id=None,
        decisions=all_chosen(),
        desired_works=[desired("member-1", manifest), refused, fresh],
    )
    assert not again.changed and await row_versions(database_url, rid) == before

    fixed = await store.save_placement(
        rid,
        policy_id=None,
        decisions=all_chosen(),
        desired_works=[desired(c, manifest) for c in CLUSTERS],
    )
    assert set(fixed.works_updated) == {"member-2", "member-3"}
    (work,) = await store.claim_due_works("member-2", holder="w", limit=9, lease_seconds=30)
    assert work.state is WorkState.PENDING and work.desired == manifest
    assert work.template is not None and (work.template.kind, work.template.name) == ("Deployment", "web")


async def test_bad_input_is_refused_with_the_resource_named(store: Store) -> None:
    rid = await placed_resource(store, "web", CLUSTERS[:1])
    with pytest.raises(StoreError, match=rf"placements resource_id={rid}: .*not chosen: member-2"):
        await store.save_placement(
            rid,
            policy_id=None,
            decisions=[
                ClusterDecision(cluster="member-1", chosen=True),
                ClusterDecision(cluster="member-2", chosen=False),
            ],
            desired_works=[desired("member-2", deployment("web"))],
        )
    with pytest.raises(StoreError, match=r"placements resource_id=987654: .*ForeignKeyViolation"):
        await store.save_placement(
            ResourceId(987654),
            policy_id=None,
            decisions=[ClusterDecision(cluster="member-1", chosen=True)],
            desired_works=[desired("member-1", deployment("web"))],
        )
