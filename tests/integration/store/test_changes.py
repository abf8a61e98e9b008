"""The change log on real Postgres: written by the tables' triggers in the changing transaction,
numbered in commit order, never with a row appearing behind a reader, pruned by age."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import asyncpg

from federation.changes.exporter import ExportSettings, ExportThread
from federation.changes.sequencer import SequencerSettings
from federation.store import (
    ApplyResult,
    ChangeRow,
    ClusterDecision,
    ClusterRow,
    EventRow,
    EventType,
    Health,
    MemberStatusRow,
    ObjectRef,
    PolicyKind,
    PolicyRow,
    Store,
    WorkState,
)
from tests.integration.store.factories import deployment, desired, placed_resource, resource_row
from tests.kubehelpers import eventually
from tests.storehelpers import query

INSERT_WORK = (
    "INSERT INTO works (resource_id, cluster, desired, desired_hash) VALUES ($1, 'm', $2::jsonb, 'h')"
)


async def numbered(store: Store, after: int = 0) -> list[tuple[str, str | None, str | None]]:
    await store.sequence_changes()
    return [
        (c.type, c.cluster, c.ref.name if c.ref else None)
        for c in await store.changes_after(after, limit=1000)
    ]


async def test_each_state_change_is_logged_by_its_own_write(store: Store) -> None:
    rid = await placed_resource(store, "web", ["member-1", "member-2"])
    assert await numbered(store) == [
        ("PlacementDecided", None, "web"),
        ("CopyPlaced", "member-1", "web"),
        ("CopyPlaced", "member-2", "web"),
    ]
    start = await store.last_position()
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    await store.record_apply_results(
        [
            ApplyResult(
                work.id,
                work.version,
                WorkState.APPLIED,
                applied_hash=work.desired_hash,
                member_resource_version="5",
            )
        ]
    )
    await store.upsert_member_statuses(
        [MemberStatusRow(rid, "member-1", {"readyReplicas": 2}, Health.HEALTHY, member_resource_version="6")]
    )
    # The same status again, then a claim of the other work: neither is a change.
    await store.upsert_member_statuses(
        [MemberStatusRow(rid, "member-1", {"readyReplicas": 2}, Health.HEALTHY, member_resource_version="6")]
    )
    await store.claim_due_works("member-2", holder="w", limit=1, lease_seconds=30)
    ref = ObjectRef("apps", "Deployment", "default", "web")
    await store.append_events([EventRow(EventType.DRIFT_CORRECTED, "restored", cluster="member-1", ref=ref)])
    await store.upsert_clusters([ClusterRow(name="member-1", ready=True, ready_reason="probe ok")])
    await store.upsert_clusters([ClusterRow(name="member-1", ready=False, ready_reason="unreachable")])
    assert await numbered(store, start) == [
        ("CopyApplied", "member-1", "web"),
        ("HealthChanged", "member-1", "web"),
        ("DriftCorrected", "member-1", "web"),
        ("ClusterJoined", "member-1", None),
        ("ClusterNotReady", "member-1", None),
    ]
    health = (await store.changes_after(start, types=["HealthChanged"]))[0]
    assert health.data["health"] == "Healthy" and health.data["from"] is None


async def test_a_row_committed_behind_a_running_transaction_waits_for_it(
    store: Store, database_url: str
) -> None:
    """The older transaction's row gets the smaller position even though it commits last: a
    reader that already read up to the newer row would otherwise never see it."""
    (first, second) = await store.upsert_resources([resource_row("first"), resource_row("second")])
    base = await store.last_position()
    old = await asyncpg.connect(database_url)
    try:
        tx = old.transaction()
        await tx.start()
        await old.execute(
            INSERT_WORK,
            first,
            '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "first"}}',
        )
        # A newer transaction commits meanwhile.
        await query(
            database_url,
            INSERT_WORK,
            second,
            '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "second"}}',
        )
        assert await store.sequence_changes() == 0, "numbered past a transaction still running"
        assert await store.changes_after(base) == []
        await tx.commit()
    finally:
        await old.close()
    assert [c.ref.name for c in await numbered_rows(store, base) if c.ref] == ["first", "second"]


async def numbered_rows(store: Store, after: int) -> list[ChangeRow]:
    await store.sequence_changes()
    return [c for c in await store.changes_after(after) if c.ref is not None]


async def test_filters_and_pruning(store: Store, database_url: str) -> None:
    await placed_resource(store, "web", ["eu-west", "us-east"])
    await store.sequence_changes()
    eu = await store.changes_after(0, cluster="eu-*")
    assert [(c.type, c.cluster) for c in eu] == [("CopyPlaced", "eu-west")]
    assert [c.type for c in await store.changes_after(0, types=["PlacementDecided"], kind="Deployment")] == [
        "PlacementDecided"
    ]
    assert await store.changes_after(0, namespace="elsewhere") == []
    await query(database_url, "UPDATE changes SET time = now() - interval '8 days'")
    assert await store.prune_changes() == 3
    assert await store.changes_after(0) == []
    assert await store.prune_changes(timedelta(0)) == 0


async def test_the_export_thread_numbers_tells_the_main_loop_and_stops_when_cancelled(
    store: Store, database_url: str
) -> None:
    """The sequencer on its own thread and loop (`ExportThread`): rows written here are
    numbered there, the main loop hears of it on its own thread, and cancelling stops the
    thread and closes its connections."""
    heard: list[int] = []
    main = threading.get_ident()
    exporter = ExportThread(
        database_url,
        [],
        hub="test",
        on_numbered=lambda: heard.append(threading.get_ident()),
        settings=ExportSettings(sequencer=SequencerSettings(interval=0.05)),
    )

    async def connections() -> int:
        rows = await query(
            database_url,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'federation-export'",
        )
        return int(rows[0]["n"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(exporter.run)
        await placed_resource(store, "web", ["member-1"])
        rows = await eventually(lambda: store.changes_after(0), what="the thread numbered the rows")
        assert [c.type for c in rows] == ["PlacementDecided", "CopyPlaced"]

        async def told() -> bool:
            return bool(heard)

        await eventually(told, what="the main loop was told")
        assert set(heard) == {main}, "on_numbered ran off the main loop's thread"
        assert await connections() >= 1
        tg.cancel_scope.cancel()

    async def stopped() -> bool:
        alive = any(t.name == "federation-export" for t in threading.enumerate())
        return not alive and await connections() == 0

    await eventually(stopped, timeout=10, what="the thread ended and closed its connections")


async def test_a_change_carries_its_context_as_it_was_when_written(store: Store) -> None:
    """Who last changed the template, the policy that placed it and the placement revision,
    written with each change about the template (copies, health, placement, its events): a
    later edit by someone else, or a new revision, does not rewrite what was logged before."""
    pid = await store.upsert_policy(
        PolicyRow(
            kind=PolicyKind.PROPAGATION_POLICY,
            namespace="default",
            name="spread",
            uid="p-1",
            generation=1,
            priority=0,
            spec={},
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    (rid,) = await store.upsert_resources([replace(resource_row("web"), last_writer="kubectl-edit (Update)")])
    manifest = deployment("web")
    await store.save_placement(
        rid,
        policy_id=pid,
        decisions=[ClusterDecision(cluster="member-1", chosen=True, replicas=2)],
        desired_works=[desired("member-1", manifest)],
    )
    ref = ObjectRef("apps", "Deployment", "default", "web")
    await store.append_events([EventRow(EventType.DRIFT_CORRECTED, "restored", cluster="member-1", ref=ref)])
    await store.upsert_clusters([ClusterRow(name="member-1", ready=True, ready_reason="probe ok")])
    first = [(c.type, c.actor, c.policy, c.placement_revision) for c in await numbered_all(store, 0)]
    policy = "PropagationPolicy/default/spread"
    assert first == [
        ("PlacementDecided", "kubectl-edit (Update)", policy, 1),
        ("CopyPlaced", "kubectl-edit (Update)", policy, 1),
        ("DriftCorrected", "kubectl-edit (Update)", policy, 1),
        ("ClusterJoined", None, None, None),
    ]
    # Someone else changes the template; a new revision places it on another cluster.
    (rid,) = await store.upsert_resources(
        [replace(resource_row("web", resource_version="2", replicas=3), last_writer="argocd-controller")]
    )
    start = await store.last_position()
    await store.save_placement(
        rid,
        policy_id=pid,
        decisions=[ClusterDecision(cluster="member-2", chosen=True, replicas=3)],
        desired_works=[desired("member-2", deployment("web", replicas=3))],
    )
    later = [(c.type, c.cluster, c.actor, c.placement_revision) for c in await numbered_all(store, start)]
    assert ("CopyPlaced", "member-2", "argocd-controller", 2) in later
    gone = [x for x in later if x[1] == "member-1"]  # its copy leaves member-1
    assert gone and all(actor == "argocd-controller" and rev == 2 for _t, _c, actor, rev in gone)
    again = [(c.type, c.actor, c.placement_revision) for c in (await numbered_all(store, 0))[:2]]
    assert again == [
        ("PlacementDecided", "kubectl-edit (Update)", 1),
        ("CopyPlaced", "kubectl-edit (Update)", 1),
    ]
    json = (await numbered_all(store, start))[0].to_json()
    assert json["by"] == "argocd-controller" and json["policy"] == policy and json["placementRevision"] == 2


async def numbered_all(store: Store, after: int) -> list[ChangeRow]:
    await store.sequence_changes()
    return await store.changes_after(after)
