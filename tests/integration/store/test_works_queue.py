"""The works queue: leases, SKIP LOCKED claims, and optimistic versions on real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from federation.errors import VersionConflictError
from federation.store import (
    ApplyResult,
    ClusterDecision,
    Health,
    MemberStatusRow,
    ResourceWork,
    Store,
    StoreSettings,
    WorkId,
    WorkState,
)
from tests.integration.store.factories import content_hash, deployment, desired, placed_resource, resource_row
from tests.kubehelpers import eventually
from tests.storehelpers import query


@pytest.fixture
async def other_store(database_url: str) -> AsyncIterator[Store]:
    """A second store on the same database: another controller replica, its own pool."""
    opened = await Store.connect(database_url, settings=StoreSettings(max_connections=2))
    try:
        yield opened
    finally:
        await opened.close()


async def many_works(store: Store, *, resources: int, cluster: str = "member-1") -> list[int]:
    ids = await store.upsert_resources([resource_row(f"app-{i}") for i in range(resources)])
    manifest = deployment("app")
    await store.upsert_desired_works(
        [ResourceWork(resource_id=r, cluster=cluster, desired=manifest, desired_hash="h1") for r in ids]
    )
    return ids


async def test_claims_only_due_works_of_the_cluster_up_to_the_limit(store: Store) -> None:
    await placed_resource(store, "a", ["member-1", "member-2"])
    await placed_resource(store, "b", ["member-1"])
    await placed_resource(store, "c", ["member-1"])

    first = await store.claim_due_works("member-1", holder="w1", limit=2, lease_seconds=30)
    assert len(first) == 2
    assert {w.cluster for w in first} == {"member-1"}
    assert all(w.state is WorkState.PENDING and w.version == 2 for w in first)  # the claim bumped it
    rest = await store.claim_due_works("member-1", holder="w2", limit=10, lease_seconds=30)
    assert len(rest) == 1 and rest[0].id not in {w.id for w in first}
    assert await store.claim_due_works("member-1", holder="w3", limit=10, lease_seconds=30) == []
    assert len(await store.claim_due_works("member-2", holder="w3", limit=10, lease_seconds=30)) == 1


async def test_two_concurrent_claimers_never_get_the_same_work(store: Store, other_store: Store) -> None:
    await many_works(store, resources=300)
    for round_ in range(5):
        claimed: dict[str, list[WorkId]] = {"a": [], "b": []}

        async def worker(name: str, handle: Store, into: list[WorkId]) -> None:
            while batch := await handle.claim_due_works("member-1", holder=name, limit=7, lease_seconds=60):
                into.extend(w.id for w in batch)
                recorded = await handle.record_apply_results(
                    [ApplyResult(w.id, w.version, WorkState.APPLIED) for w in batch]
                )
                assert recorded == {w.id: w.version + 1 for w in batch}, "no claim was stale"

        await asyncio.gather(worker("a", store, claimed["a"]), worker("b", other_store, claimed["b"]))

        a, b = claimed["a"], claimed["b"]
        assert len(a) == len(set(a)) and len(b) == len(set(b))
        assert not set(a) & set(b), f"round {round_}: claimed by both: {sorted(set(a) & set(b))[:5]}"
        assert len(a) + len(b) == 300
        assert a and b, "both claimers should have worked"  # the race really happened
        # Make every work due again for the next round.
        rows = await store.works_of_cluster("member-1")
        assert {w.state for w in rows} == {WorkState.APPLIED}
        await store.upsert_desired_works(
            [
                ResourceWork(
                    resource_id=w.resource_id, cluster="member-1", desired={}, desired_hash=f"r{round_}"
                )
                for w in rows
            ]
        )


async def test_an_expired_lease_is_reclaimed_and_the_old_holder_is_refused(
    store: Store, other_store: Store
) -> None:
    await placed_resource(store, "web", ["member-1"])
    (mine,) = await store.claim_due_works("member-1", holder="slow", limit=1, lease_seconds=0.3)
    assert await other_store.claim_due_works("member-1", holder="fast", limit=1, lease_seconds=30) == []

    async def reclaimed() -> list[object]:
        return list(await other_store.claim_due_works("member-1", holder="fast", limit=1, lease_seconds=30))

    (theirs,) = await eventually(reclaimed, timeout=10, what="the expired lease to be claimable")
    assert theirs.id == mine.id and theirs.version == mine.version + 1

    # The old holder's result is refused and writes nothing: the work stays the new holder's.
    stale = ApplyResult(mine.id, mine.version, WorkState.APPLIED)
    assert await store.record_apply_results([stale]) == {mine.id: None}
    (row,) = await store.works_of_cluster("member-1")
    assert (row.version, row.state, row.claimed_by) == (theirs.version, WorkState.PENDING, "fast")
    fresh = ApplyResult(theirs.id, theirs.version, WorkState.APPLIED)
    assert await other_store.record_apply_results([fresh]) == {theirs.id: theirs.version + 1}


async def test_a_renewed_lease_outlives_its_term_and_keeps_the_result_recordable(
    store: Store, other_store: Store, database_url: str
) -> None:
    """A slow member's works wait longer than one lease: their holder renews them, nobody else
    takes them meanwhile, and the result recorded at the end matches the claim."""
    await placed_resource(store, "web", ["member-1"])
    await placed_resource(store, "api", ["member-1"])
    held, changed = await store.claim_due_works("member-1", holder="slow", limit=2, lease_seconds=1.0)
    # One of the two is re-claimed under a new version: renewing must leave that one alone.
    await store.release_claims("slow", work_ids=[changed.id])
    (other,) = await other_store.claim_due_works("member-1", holder="fast", limit=2, lease_seconds=30)
    assert other.id == changed.id

    renewed = await store.renew_claims(
        "slow", [(held.id, held.version), (changed.id, changed.version)], lease_seconds=30
    )
    assert renewed == 1, "only the claim still held at its version is extended"
    rows = {w.work_id: w for w in await store.works_of_cluster("member-1")}
    assert rows[held.id].version == held.version, "a renewal is not a new version"
    assert rows[changed.id].claimed_by == "fast"

    async def past_the_first_term() -> bool:
        (row,) = await query(database_url, "SELECT now() > $1::timestamptz", held.claimed_until)
        return bool(row[0])

    await eventually(past_the_first_term, timeout=10, what="the first lease's term to pass")
    assert await other_store.claim_due_works("member-1", holder="fast", limit=2, lease_seconds=30) == []
    result = ApplyResult(held.id, held.version, WorkState.APPLIED)
    assert await store.record_apply_results([result]) == {held.id: held.version + 1}


async def test_a_pending_work_changed_before_its_turn_keeps_its_place_in_the_queue(store: Store) -> None:
    """A template changed during a bulk rollout is applied at its turn, in its newest version,
    not sent behind the whole backlog (a retry's backoff, by contrast, is cut short)."""
    first = await placed_resource(store, "first", ["member-1"])
    await placed_resource(store, "second", ["member-1"])
    new = deployment("first", image="nginx:2")
    await store.save_placement(
        first,
        policy_id=None,
        decisions=[ClusterDecision(cluster="member-1", chosen=True)],
        desired_works=[desired("member-1", new)],
    )
    (head,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    assert head.resource_id == first, "the changed work lost its place"
    assert head.desired == new, "and it is claimed in its newest version"


async def test_a_change_to_an_applied_copy_goes_before_copies_placed_after_it(store: Store) -> None:
    """A fix to what runs is not queued behind a bulk of new placements: the changed work is
    due since it was made, so it is claimed before the works made after it."""
    running = await placed_resource(store, "running", ["member-1"])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    recorded = await store.record_apply_results([ApplyResult(work.id, work.version, WorkState.APPLIED)])
    assert recorded[work.id] is not None
    for i in range(5):  # a bulk of new placements, made after it
        await placed_resource(store, f"bulk-{i}", ["member-1"])
    await store.save_placement(
        running,
        policy_id=None,
        decisions=[ClusterDecision(cluster="member-1", chosen=True)],
        desired_works=[desired("member-1", deployment("running", image="nginx:2"))],
    )
    (head,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    assert head.resource_id == running, "the change waited behind the bulk"


async def test_a_change_during_the_apply_is_a_version_conflict(store: Store) -> None:
    rid = await placed_resource(store, "web", ["member-1"])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)

    # The template changes while the (old) manifest is being applied.
    new = deployment("web", image="nginx:2")
    await store.save_placement(
        rid,
        policy_id=None,
        decisions=[ClusterDecision(cluster="member-1", chosen=True)],
        desired_works=[desired("member-1", new)],
    )
    old = ApplyResult(work.id, work.version, WorkState.APPLIED)
    assert await store.record_apply_results([old]) == {work.id: None}
    (row,) = await store.works_of_cluster("member-1")
    assert (row.version, row.state, row.applied_hash) == (work.version + 1, WorkState.PENDING, None)

    # The new manifest is due at once, even though the old claim's lease has not expired: the
    # worker applying the old version is refused (above), and no one waits for its lease.
    (again,) = await store.claim_due_works("member-1", holder="other", limit=1, lease_seconds=30)
    assert again.desired_hash == content_hash(new) and again.desired == new
    assert await store.release_claims("w", work_ids=[work.id]) == 0, "the old claim is gone"


async def test_results_failures_and_backoff(store: Store, database_url: str) -> None:
    await placed_resource(store, "web", ["member-1"])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    later = datetime.now(UTC) + timedelta(hours=1)
    failed = ApplyResult(
        work.id, work.version, WorkState.FAILED, error="apiserver said 500", next_attempt_at=later
    )
    assert await store.record_apply_results([failed]) == {work.id: work.version + 1}
    # Not due before its next attempt.
    assert await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30) == []
    (row,) = await query(
        database_url, "SELECT attempts, last_error, claimed_by FROM works WHERE id = $1", work.id
    )
    assert (row["attempts"], row["last_error"], row["claimed_by"]) == (1, "apiserver said 500", None)

    # A conflict is terminal until the input changes: no next attempt.
    await query(database_url, "UPDATE works SET next_attempt_at = now() WHERE id = $1", work.id)
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    conflict = ApplyResult(work.id, work.version, WorkState.CONFLICT, error="owned by another field manager")
    assert await store.record_apply_results([conflict]) == {work.id: work.version + 1}
    assert await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30) == []
    (status,) = await store.works_of_cluster("member-1")
    assert status.state is WorkState.CONFLICT and status.attempts == 2 and status.next_attempt_at is None

    # Drift (or a retry asked for): the settled work is due again.
    assert await store.requeue_work(status.resource_id, "member-1") == status.version + 1
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    applied = ApplyResult(work.id, work.version, WorkState.APPLIED, member_resource_version="9")
    assert await store.record_apply_results([applied]) == {work.id: work.version + 1}
    (status,) = await store.works_of_cluster("member-1")
    assert status.state is WorkState.APPLIED and status.in_sync and status.attempts == 0
    assert status.applied_hash == status.desired_hash and status.member_resource_version == "9"
    assert status.applied_at is not None


async def test_finish_deletion_removes_the_work_and_its_status(store: Store, database_url: str) -> None:
    rid = await placed_resource(store, "web", ["member-1"])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    applied = ApplyResult(work.id, work.version, WorkState.APPLIED)
    assert await store.record_apply_results([applied]) == {work.id: work.version + 1}
    await store.upsert_member_statuses([MemberStatusRow(rid, "member-1", {"replicas": 2}, Health.HEALTHY)])

    await store.save_placement(rid, policy_id=None, decisions=[], desired_works=[])
    (work,) = await store.claim_due_works("member-1", holder="w", limit=1, lease_seconds=30)
    assert work.state is WorkState.DELETING
    with pytest.raises(VersionConflictError):
        await store.finish_deletion(work.id, work.version - 1)
    await store.finish_deletion(work.id, work.version)

    assert await query(database_url, "SELECT 1 FROM works WHERE id = $1", work.id) == []
    assert await query(database_url, "SELECT 1 FROM member_status WHERE resource_id = $1", rid) == []
    with pytest.raises(VersionConflictError, match="no longer exists") as info:
        await store.finish_deletion(work.id, work.version)
    assert info.value.actual is None


async def test_release_claims_of_a_holder(store: Store) -> None:
    await many_works(store, resources=5)
    claimed = await store.claim_due_works("member-1", holder="shutting-down", limit=10, lease_seconds=300)
    assert len(claimed) == 5
    assert await store.claim_due_works("member-1", holder="next", limit=10, lease_seconds=30) == []
    assert await store.release_claims("shutting-down") == 5
    assert len(await store.claim_due_works("member-1", holder="next", limit=10, lease_seconds=30)) == 5
