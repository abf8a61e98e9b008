"""Resources, clusters, policies, statuses, events, checkpoints and leases on real Postgres."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from federation.errors import StoreError, StoreUnavailableError
from federation.store import (
    ApplyResult,
    Checkpoint,
    ClusterRow,
    EventRow,
    EventType,
    Health,
    MemberStatusRow,
    ObjectRef,
    PolicyKind,
    PolicyRow,
    ResourceId,
    ResourceWork,
    Store,
    StoreSettings,
    WorkState,
)
from tests.integration.store.factories import placed_resource, resource_row
from tests.kubehelpers import eventually
from tests.storehelpers import query


async def xmins(url: str, table: str) -> list[str]:
    return [r["x"] for r in await query(url, f"SELECT xmin::text AS x FROM {table} ORDER BY 1")]


async def test_resources_upsert_returns_ids_in_order_and_skips_unchanged(
    store: Store, database_url: str
) -> None:
    rows = [resource_row(f"app-{i}") for i in range(5)]
    ids = await store.upsert_resources(rows)
    assert len(set(ids)) == 5
    before = await xmins(database_url, "resources")

    # Re-listing after a restart: same ids, nothing rewritten (even in another order).
    assert await store.upsert_resources(rows[::-1]) == ids[::-1]
    assert await xmins(database_url, "resources") == before

    changed = resource_row("app-2", resource_version="2", replicas=5)
    assert await store.register_resource(changed) == (ids[2], False)
    (row,) = await query(
        database_url, "SELECT resource_version, template FROM resources WHERE id = $1", ids[2]
    )
    assert row["resource_version"] == "2" and '"replicas": 5' in row["template"]

    with pytest.raises(StoreError, match=r"resources Deployment.apps default/app-0: given twice"):
        await store.upsert_resources([rows[0], rows[0]])


async def test_register_resource_tells_a_new_row_from_a_known_one(store: Store) -> None:
    """`new` lets the hub controller skip reading a placement that cannot exist yet; a template
    deleted and created again keeps its row (and its placement), so it is not new."""
    rid, new = await store.register_resource(resource_row("fresh"))
    assert new
    assert await store.register_resource(resource_row("fresh")) == (rid, False)  # unchanged
    assert await store.register_resource(resource_row("fresh", resource_version="9")) == (rid, False)
    ref = ObjectRef(api_group="apps", kind="Deployment", namespace="default", name="fresh")
    assert await store.mark_resource_deleted(ref) == rid
    assert await store.register_resource(resource_row("fresh", resource_version="10")) == (rid, False)


async def test_deleted_resources_are_purged_only_when_their_works_are_gone(store: Store) -> None:
    rid = await placed_resource(store, "web", ["member-1"])
    ref = ObjectRef(api_group="apps", kind="Deployment", namespace="default", name="web")
    assert await store.resource_id_of(ref) == rid
    assert await store.mark_resource_deleted(ref) == rid
    assert await store.mark_resource_deleted(ref) == rid  # idempotent
    assert await store.mark_resource_deleted(ObjectRef("apps", "Deployment", "default", "nope")) is None
    assert (await store.resource_status(rid)) is not None
    assert not await store.purge_resource(rid)  # a work is still in member-1

    await store.save_placement(rid, policy_id=None, decisions=[], desired_works=[])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    await store.finish_deletion(work.id, work.version)
    assert await store.purge_resource(rid)
    assert await store.resource_id_of(ref) is None


async def test_purge_deleted_resources_takes_every_finished_one_and_nothing_else(
    store: Store, database_url: str
) -> None:
    """Housekeeping's sweep: deleted (or ungoverned) templates whose works are done go, their
    templates with them; one still deleting in a member, or still governed, stays."""
    done = [await placed_resource(store, f"done-{i}", []) for i in range(3)]
    busy = await placed_resource(store, "busy", ["member-1"])
    live = await placed_resource(store, "live", [])
    for name in ("done-0", "done-1", "done-2", "busy"):
        await store.mark_resource_deleted(ObjectRef("apps", "Deployment", "default", name))
    await store.save_placement(busy, policy_id=None, decisions=[], desired_works=[])  # deleting
    assert await store.purge_deleted_resources(batch=2) == 3  # two batches
    left = {r["id"] for r in await query(database_url, "SELECT id FROM resources")}
    assert left == {busy, live}
    assert not set(done) & left
    assert await store.purge_deleted_resources() == 0

    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    await store.finish_deletion(work.id, work.version)
    assert await store.purge_deleted_resources() == 1
    assert {r["id"] for r in await query(database_url, "SELECT id FROM resources")} == {live}


async def test_clusters(store: Store) -> None:
    probe = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [
        ClusterRow(
            name="member-1",
            labels={"zone": "a"},
            taints=({"key": "maintenance", "effect": "NoSchedule"},),
            endpoint="https://127.0.0.1:6443",
            ready=True,
            last_probe_at=probe,
            kubernetes_version="v1.36.3",
            allocatable={"cpu": "8"},
        ),
        ClusterRow(name="member-2", ready=False, ready_reason="probe timed out"),
    ]
    assert await store.upsert_clusters(rows) == 2
    assert await store.list_clusters() == rows
    assert await store.upsert_clusters(rows) == 0  # unchanged: not rewritten
    assert await store.upsert_clusters([ClusterRow(name="member-2", ready=True)]) == 1
    assert [c.ready for c in await store.list_clusters()] == [True, True]
    assert await store.delete_cluster("member-2")
    assert [c.name for c in await store.list_clusters()] == ["member-1"]


async def test_policies(store: Store, database_url: str) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    row = PolicyRow(
        kind=PolicyKind.PROPAGATION_POLICY,
        namespace="default",
        name="spread",
        uid="p-1",
        generation=1,
        priority=10,
        spec={"placement": {"clusterAffinity": {"clusterNames": ["member-1"]}}},
        created_at=created,
    )
    pid = await store.upsert_policy(row)
    before = await xmins(database_url, "policies")
    assert await store.upsert_policy(row) == pid
    assert await xmins(database_url, "policies") == before  # unchanged: not rewritten
    newer = PolicyRow(
        **{**{f: getattr(row, f) for f in row.__dataclass_fields__}, "generation": 2, "priority": 20}
    )
    assert await store.upsert_policy(newer) == pid
    (stored,) = await query(
        database_url, "SELECT generation, priority, created_at FROM policies WHERE id = $1", pid
    )
    assert (stored["generation"], stored["priority"], stored["created_at"]) == (2, 20, created)

    assert await store.delete_policy(kind=PolicyKind.PROPAGATION_POLICY, namespace="default", name="spread")
    assert not await store.delete_policy(
        kind=PolicyKind.PROPAGATION_POLICY, namespace="default", name="spread"
    )
    assert await store.upsert_policy(newer) == pid  # recreated: same row, undeleted
    (stored,) = await query(database_url, "SELECT deleted_at FROM policies WHERE id = $1", pid)
    assert stored["deleted_at"] is None


async def test_member_statuses(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", ["member-1", "member-2"])
    rows = [
        MemberStatusRow(rid, "member-1", {"replicas": 2, "readyReplicas": 2}, Health.HEALTHY, 1, "10"),
        MemberStatusRow(rid, "member-2", {"replicas": 2}, Health.PROGRESSING, 1, "11"),
    ]
    assert await store.upsert_member_statuses(rows) == 2
    before = await xmins(database_url, "member_status")
    assert await store.upsert_member_statuses(rows) == 0
    assert await xmins(database_url, "member_status") == before
    update = MemberStatusRow(rid, "member-2", {"replicas": 2, "readyReplicas": 2}, Health.HEALTHY, 1, "12")
    assert await store.upsert_member_statuses([update]) == 1
    health = {w.cluster: w.health for w in await store.works_of_resource(rid)}
    assert health == {"member-1": Health.HEALTHY, "member-2": Health.HEALTHY}
    with pytest.raises(StoreError, match=rf"member_status resource_id={rid} cluster=member-1: given twice"):
        await store.upsert_member_statuses([rows[0], rows[0]])


async def test_healthy_since_moves_only_with_health(store: Store) -> None:
    """The time a rollout's soak counts from: set when a copy turns Healthy, kept while other
    fields change and it stays Healthy, cleared when it leaves Healthy."""
    rid = await placed_resource(store, "soak", ["member-1"])

    async def since() -> datetime | None:
        (work,) = await store.works_of_resource(rid)
        return work.healthy_since

    progressing = MemberStatusRow(rid, "member-1", {"replicas": 2}, Health.PROGRESSING, 1, "1")
    assert await store.upsert_member_statuses([progressing]) == 1
    assert await since() is None
    turned = datetime.now(UTC)
    healthy = MemberStatusRow(rid, "member-1", {"replicas": 2, "readyReplicas": 2}, Health.HEALTHY, 1, "2")
    assert await store.upsert_member_statuses([healthy]) == 1
    first = await since()
    assert first is not None and abs((first - turned).total_seconds()) < 5
    still = MemberStatusRow(rid, "member-1", {"replicas": 3, "readyReplicas": 3}, Health.HEALTHY, 2, "3")
    assert await store.upsert_member_statuses([still]) == 1  # written: the status changed...
    assert await since() == first  # ...but not since when it has been Healthy
    degraded = MemberStatusRow(rid, "member-1", {"replicas": 3}, Health.DEGRADED, 2, "4")
    assert await store.upsert_member_statuses([degraded]) == 1
    assert await since() is None
    assert await store.upsert_member_statuses([healthy]) == 1
    again = await since()
    assert again is not None and again > first
    # A row inserted Healthy starts Healthy from its insert.
    other = await placed_resource(store, "born-healthy", ["member-1"])
    assert await store.upsert_member_statuses([MemberStatusRow(other, "member-1", {}, Health.HEALTHY)]) == 1
    (born,) = await store.works_of_resource(other)
    assert born.healthy_since is not None


async def test_statuses_without_a_work_are_never_shown_and_get_swept(store: Store, database_url: str) -> None:
    # No foreign key on this hot table (see repo/status.py): a late status of a work that was
    # just finished is written, invisible to the views, and removed by the sweep.
    rid = await placed_resource(store, "web", ["member-1"])
    late = [
        MemberStatusRow(rid, "member-9", {"replicas": 1}, Health.DEGRADED),
        MemberStatusRow(ResourceId(424242), "member-1", {}, Health.UNKNOWN),
    ]
    assert await store.upsert_member_statuses(late) == 2
    assert [w.cluster for w in await store.works_of_resource(rid)] == ["member-1"]
    status = await store.resource_status(rid)
    assert status is not None and status.worst_health is Health.UNKNOWN  # not Degraded
    assert await store.delete_orphaned_statuses() == 2
    assert await query(database_url, "SELECT 1 FROM member_status") == []


async def test_bulk_writes_go_in_parallel_chunks(database_url: str) -> None:
    settings = StoreSettings(bulk_chunk_rows=7, bulk_parallelism=3, max_connections=3)
    store = await Store.connect(database_url, settings=settings)
    try:
        ids = await store.upsert_resources([resource_row(f"app-{i}") for i in range(10)])
        works = [
            ResourceWork(resource_id=r, cluster=f"member-{c}", desired={"c": c}, desired_hash=f"h{c}")
            for c in range(5)
            for r in ids
        ]
        assert await store.upsert_desired_works(works) == 50
        assert await store.upsert_desired_works(works[::-1]) == 0
        statuses = [MemberStatusRow(w.resource_id, w.cluster, {"ok": True}, Health.HEALTHY) for w in works]
        assert await store.upsert_member_statuses(statuses) == 50
        (row,) = await query(database_url, "SELECT count(*) AS n FROM works WHERE desired->>'c' = '3'")
        assert row["n"] == 10
        # A duplicate is refused before any chunk is written, even when it would land in another chunk.
        changed = [ResourceWork(w.resource_id, w.cluster, {"c": -1}, "changed") for w in works]
        with pytest.raises(StoreError, match="given twice in one batch"):
            await store.upsert_desired_works([*changed, changed[0]])
        (row,) = await query(database_url, "SELECT count(*) AS n FROM works WHERE desired_hash = 'changed'")
        assert row["n"] == 0
    finally:
        await store.close()


async def test_events_append_idempotently_and_are_pruned(database_url: str) -> None:
    store = await Store.connect(database_url, settings=StoreSettings(event_retention=timedelta(days=1)))
    try:
        ref = ObjectRef("apps", "Deployment", "default", "web")
        old = EventRow(
            EventType.DRIFT_CORRECTED,
            "restored spec.template.spec.containers[0].image",
            cluster="member-1",
            ref=ref,
            details={"diff": [{"op": "replace", "path": "/spec/replicas", "value": 2}]},
            time=datetime.now(UTC) - timedelta(days=3),
        )
        recent = EventRow(
            EventType.APPLY_FAILED, "422: spec.replicas: Invalid value", cluster="member-2", ref=ref
        )
        fleet_wide = EventRow(EventType.UNSCHEDULABLE, "no cluster matches", ref=ref)
        assert await store.append_events([old, recent, fleet_wide]) == 3
        assert await store.append_events([old, recent]) == 0  # a retried append adds nothing
        rows = await query(database_url, "SELECT type, cluster, kind, details FROM events ORDER BY time")
        assert [r["type"] for r in rows] == ["DriftCorrected", "ApplyFailed", "Unschedulable"]
        assert '"/spec/replicas"' in rows[0]["details"]

        assert await store.prune_events() == 1  # the retention setting: one day
        assert await store.prune_events(timedelta(0)) == 2
        assert await query(database_url, "SELECT 1 FROM events") == []
        with pytest.raises(StoreError, match="negative retention"):
            await store.prune_events(timedelta(seconds=-1))
    finally:
        await store.close()


async def test_events_are_listed_newest_first_with_filters(store: Store) -> None:
    ref = ObjectRef("apps", "Deployment", "shop", "web")
    other = ObjectRef("", "ConfigMap", "shop", "cfg")
    now = datetime.now(UTC)
    await store.append_events(
        [
            EventRow(EventType.CONFLICT, "c1", cluster="member-1", ref=ref, time=now - timedelta(minutes=30)),
            EventRow(
                EventType.DRIFT_CORRECTED,
                "d1",
                cluster="member-2",
                ref=ref,
                time=now - timedelta(minutes=5),
                details={"diff": [{"path": "/spec/replicas"}]},
            ),
            EventRow(
                EventType.APPLY_FAILED, "f1", cluster="member-2", ref=other, time=now - timedelta(minutes=1)
            ),
            EventRow(EventType.FAILOVER, "fleet-wide", ref=ref, time=now),
        ]
    )
    assert [e.message for e in await store.list_events()] == ["fleet-wide", "f1", "d1", "c1"]
    assert [e.message for e in await store.list_events(cluster="member-2")] == ["f1", "d1"]
    assert [e.message for e in await store.list_events(name="web", since=now - timedelta(minutes=10))] == [
        "fleet-wide",
        "d1",
    ]
    (drift,) = await store.list_events(type_="DriftCorrected")
    assert (
        drift.ref == ref
        and drift.cluster == "member-2"
        and drift.details == {"diff": [{"path": "/spec/replicas"}]}
    )
    assert [e.message for e in await store.list_events(kind="ConfigMap", namespace="shop")] == ["f1"]
    assert len(await store.list_events(limit=2)) == 2


async def test_event_pruning_goes_in_batches(store: Store, database_url: str) -> None:
    old = datetime.now(UTC) - timedelta(days=30)
    await store.append_events([EventRow(EventType.APPLIED, f"e{i}", time=old) for i in range(25)])
    assert await store.prune_events(timedelta(days=7), batch=10) == 25
    assert await query(database_url, "SELECT 1 FROM events") == []


async def test_watch_checkpoints(store: Store) -> None:
    assert await store.get_checkpoint("member-1", "apps/v1/deployments") is None
    written = await store.set_checkpoints(
        [
            Checkpoint("member-1", "apps/v1/deployments", "100"),
            Checkpoint("member-1", "v1/configmaps", "7"),
            Checkpoint("member-1", "apps/v1/deployments", "120"),  # the last one wins
        ]
    )
    assert written == 2
    assert await store.get_checkpoint("member-1", "apps/v1/deployments") == "120"
    assert await store.get_checkpoints("member-1") == {"apps/v1/deployments": "120", "v1/configmaps": "7"}
    assert await store.set_checkpoints([Checkpoint("member-1", "v1/configmaps", "7")]) == 0


async def test_cluster_leases(store: Store) -> None:
    assert await store.acquire_cluster_lease("member-1", holder="replica-a", ttl_seconds=30)
    assert await store.acquire_cluster_lease("member-1", holder="replica-a", ttl_seconds=30)  # renewed
    assert not await store.acquire_cluster_lease("member-1", holder="replica-b", ttl_seconds=30)
    assert await store.clusters_held_by("replica-a") == ["member-1"]
    assert await store.release_cluster_lease("member-1", holder="replica-a")
    assert await store.acquire_cluster_lease("member-1", holder="replica-b", ttl_seconds=0.2)

    async def taken_over() -> bool:
        return await store.acquire_cluster_lease("member-1", holder="replica-a", ttl_seconds=30)

    await eventually(taken_over, timeout=10, what="the expired lease to be taken over")
    assert await store.clusters_held_by("replica-b") == []
    assert await store.clusters_held_by("replica-a") == ["member-1"]


async def test_an_unreachable_database_is_named_quickly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        await Store.connect(f"postgresql://postgres@127.0.0.1:{port}/federation")
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}/federation" in str(info.value)
    assert info.value.hint and "FEDERATION_DATABASE_URL" in info.value.hint


async def test_applied_state_is_what_the_view_reports(store: Store) -> None:
    # The repository's reads are the views': one place defines what "applied" means.
    rid = await placed_resource(store, "web", ["member-1"])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    assert await store.record_apply_results([ApplyResult(work.id, work.version, WorkState.APPLIED)]) == {
        work.id: work.version + 1
    }
    status = await store.resource_status(rid)
    assert status is not None and status.clusters_applied == 1 and status.clusters_desired == 1
