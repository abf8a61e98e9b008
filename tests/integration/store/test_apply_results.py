"""record_apply_results: the one way a propagator's outcomes reach the works, on real Postgres.

The contract (`federation.store.repo.works.record_apply_results`): one statement for a batch;
each result is recorded only at the version its claim returned and releases that claim; a
stale or vanished work's result is None in the answer and writes nothing, while the rest of
the batch is recorded; a work given twice refuses the whole batch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation.errors import StoreError
from federation.store import ApplyResult, ClaimedWork, ClusterDecision, ResourceWork, Store, WorkId, WorkState
from tests.integration.store.factories import deployment, desired, placed_resource, resource_row
from tests.storehelpers import query

COLUMNS = (
    "state::text AS state, applied_hash, desired_hash, member_resource_version, last_error, attempts,"
    " next_attempt_at, applied_at, baseline, claimed_by, claimed_until, version"
)


async def rows(url: str, ids: list[WorkId]) -> dict[WorkId, dict[str, Any]]:
    found = await query(url, f"SELECT id, {COLUMNS} FROM works WHERE id = ANY($1::bigint[])", ids)
    return {WorkId(r["id"]): {k: v for k, v in r.items() if k != "id"} for r in found}


async def claim(store: Store, cluster: str, n: int) -> list[ClaimedWork]:
    claimed = await store.claim_due_works(cluster, holder="w", limit=n + 1, lease_seconds=60)
    assert len(claimed) == n
    return claimed


async def test_each_result_is_recorded_at_its_version_and_releases_its_claim(
    store: Store, database_url: str
) -> None:
    for name in ("a", "b", "c"):
        await placed_resource(store, name, ["member-1"])
    await placed_resource(store, "d", ["member-2"])
    a, b, c = await claim(store, "member-1", 3)
    (d,) = await claim(store, "member-2", 1)
    soon = datetime.now(UTC) - timedelta(seconds=1)

    recorded = await store.record_apply_results(
        [
            ApplyResult(a.id, a.version, WorkState.APPLIED, member_resource_version="7", baseline="b1"),
            ApplyResult(b.id, b.version, WorkState.FAILED, error="apiserver said 500", next_attempt_at=soon),
            ApplyResult(c.id, c.version, WorkState.CONFLICT, error="owned by kubectl"),
            ApplyResult(d.id, d.version, WorkState.APPLIED, applied_hash="given"),
        ]
    )

    assert recorded == {w.id: w.version + 1 for w in (a, b, c, d)}
    after = await rows(database_url, [a.id, b.id, c.id, d.id])
    for row in after.values():
        assert (row["claimed_by"], row["claimed_until"]) == (None, None)
    assert after[a.id]["state"] == "applied" and after[a.id]["applied_hash"] == a.desired_hash
    assert (after[a.id]["member_resource_version"], after[a.id]["baseline"]) == ("7", "b1")
    assert after[a.id]["applied_at"] is not None and after[a.id]["next_attempt_at"] is None
    assert (after[a.id]["attempts"], after[a.id]["last_error"]) == (0, None)
    assert after[b.id]["state"] == "failed" and after[b.id]["applied_hash"] is None
    assert (after[b.id]["attempts"], after[b.id]["last_error"]) == (1, "apiserver said 500")
    assert after[b.id]["next_attempt_at"] == soon and after[b.id]["applied_at"] is None
    assert after[c.id]["state"] == "conflict" and after[c.id]["next_attempt_at"] is None
    assert (after[c.id]["attempts"], after[c.id]["last_error"]) == (1, "owned by kubectl")
    assert after[d.id]["state"] == "applied" and after[d.id]["applied_hash"] == "given"

    # Only the failure whose next attempt has come is due again; applied and conflict settle.
    (again,) = await store.claim_due_works("member-1", holder="w", limit=100, lease_seconds=60)
    assert again.id == b.id and again.attempts == 1
    assert await store.claim_due_works("member-2", holder="w", limit=100, lease_seconds=60) == []


async def test_stale_and_vanished_results_are_refused_one_by_one(store: Store, database_url: str) -> None:
    fresh_rid = await placed_resource(store, "fresh", ["member-1"])
    stale_rid = await placed_resource(store, "stale", ["member-1"])
    gone_rid = await placed_resource(store, "gone", ["member-1"])
    by_resource = {w.resource_id: w for w in await claim(store, "member-1", 3)}
    fresh, stale, gone = by_resource[fresh_rid], by_resource[stale_rid], by_resource[gone_rid]
    # While they are applied: one template changes, another work is deleted (by a new leader,
    # say, that released the claim, deleted the member copy and finished the deletion).
    await store.save_placement(
        stale_rid,
        policy_id=None,
        decisions=[ClusterDecision("member-1", True)],
        desired_works=[desired("member-1", deployment("stale", image="nginx:2"))],
    )
    await query(database_url, "DELETE FROM works WHERE id = $1", gone.id)
    before = await rows(database_url, [stale.id])

    recorded = await store.record_apply_results(
        [ApplyResult(w.id, w.version, WorkState.APPLIED) for w in (fresh, stale, gone)]
    )

    assert recorded == {fresh.id: fresh.version + 1, stale.id: None, gone.id: None}
    after = await rows(database_url, [fresh.id, stale.id, gone.id])
    assert after[fresh.id]["state"] == "applied"
    assert after[stale.id] == before[stale.id], "a refused result writes nothing"
    assert after[stale.id]["state"] == "pending" and after[stale.id]["version"] == stale.version + 1
    assert gone.id not in after


async def test_a_batch_sent_again_is_refused_whole_and_writes_nothing(
    store: Store, database_url: str
) -> None:
    # What a retried attempt does when the first one committed but its answer was lost.
    await placed_resource(store, "a", ["member-1"])
    await placed_resource(store, "b", ["member-1"])
    claimed = await claim(store, "member-1", 2)
    batch = [ApplyResult(w.id, w.version, WorkState.APPLIED, baseline="x") for w in claimed]
    assert await store.record_apply_results(batch) == {w.id: w.version + 1 for w in claimed}
    first = await rows(database_url, [w.id for w in claimed])

    assert await store.record_apply_results(batch) == {w.id: None for w in claimed}
    assert await rows(database_url, [w.id for w in claimed]) == first


async def test_a_work_given_twice_refuses_the_whole_batch(store: Store, database_url: str) -> None:
    await placed_resource(store, "a", ["member-1"])
    await placed_resource(store, "b", ["member-1"])
    a, b = await claim(store, "member-1", 2)
    before = await rows(database_url, [a.id, b.id])
    twice = [
        ApplyResult(a.id, a.version, WorkState.APPLIED),
        ApplyResult(b.id, b.version, WorkState.APPLIED),
        ApplyResult(a.id, a.version, WorkState.FAILED, error="boom"),
    ]
    with pytest.raises(StoreError, match="a work appears twice in one batch"):
        await store.record_apply_results(twice)
    assert await rows(database_url, [a.id, b.id]) == before
    assert await store.record_apply_results([]) == {}


async def test_what_a_result_does_not_say_is_kept(store: Store, database_url: str) -> None:
    await placed_resource(store, "web", ["member-1"])
    (work,) = await claim(store, "member-1", 1)
    applied = ApplyResult(
        work.id, work.version, WorkState.APPLIED, member_resource_version="7", baseline="b1"
    )
    (version,) = (await store.record_apply_results([applied])).values()
    assert version is not None

    # Drift: due again; this apply fails. The member's version, the last applied hash and the
    # drift baseline stay those of the last successful apply (a baseline comes with applied only).
    assert await store.requeue_work(work.resource_id, "member-1") == version + 1
    (work,) = await claim(store, "member-1", 1)
    failed = ApplyResult(work.id, work.version, WorkState.FAILED, error="timeout", baseline="b2")
    assert await store.record_apply_results([failed]) == {work.id: work.version + 1}
    row = (await rows(database_url, [work.id]))[work.id]
    assert (row["member_resource_version"], row["applied_hash"], row["baseline"]) == (
        "7",
        work.desired_hash,
        "b1",
    )
    assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)


async def test_deleting_and_orphaning_works_take_their_results_too(store: Store, database_url: str) -> None:
    # A propagator's batch mixes every kind of outcome: a delete that must be retried keeps
    # its state, an orphaning that is done settles as orphaned.
    rid = await placed_resource(store, "web", ["member-1", "member-2"])
    await store.save_placement(
        rid,
        policy_id=None,
        decisions=[
            ClusterDecision("member-1", True),
            ClusterDecision("member-2", False, reason="label mismatch"),
        ],
        desired_works=[desired("member-1", deployment("web"))],
    )
    orphaned_rid = await placed_resource(store, "kept", ["member-2"])
    await store.save_placement(orphaned_rid, policy_id=None, decisions=[], desired_works=[], orphan=True)
    by_state = {w.state: w for w in await claim(store, "member-2", 2)}
    deleting, orphaning = by_state[WorkState.DELETING], by_state[WorkState.ORPHANING]
    retry_at = datetime.now(UTC) + timedelta(minutes=5)

    recorded = await store.record_apply_results(
        [
            ApplyResult(
                deleting.id, deleting.version, WorkState.DELETING, error="503", next_attempt_at=retry_at
            ),
            ApplyResult(orphaning.id, orphaning.version, WorkState.ORPHANED),
        ]
    )

    assert recorded == {deleting.id: deleting.version + 1, orphaning.id: orphaning.version + 1}
    after = await rows(database_url, [deleting.id, orphaning.id])
    assert (after[deleting.id]["state"], after[deleting.id]["attempts"]) == ("deleting", 1)
    assert after[deleting.id]["next_attempt_at"] == retry_at
    assert (after[orphaning.id]["state"], after[orphaning.id]["next_attempt_at"]) == ("orphaned", None)
    assert await store.works_to_drain("member-2") == 1, "the orphaned copy is left on purpose"


async def test_a_propagators_full_batch_in_one_call(store: Store, database_url: str) -> None:
    ids = await store.upsert_resources([resource_row(f"app-{i}") for i in range(256)])
    manifest = deployment("app")
    await store.upsert_desired_works([ResourceWork(r, "member-1", manifest, "h1") for r in ids])
    claimed = await claim(store, "member-1", 256)
    changed = [w.id for w in claimed[::2]]
    await query(database_url, "UPDATE works SET version = version + 1 WHERE id = ANY($1::bigint[])", changed)

    recorded = await store.record_apply_results(
        [ApplyResult(w.id, w.version, WorkState.APPLIED) for w in claimed]
    )

    assert recorded == {w.id: None if w.id in changed else w.version + 1 for w in claimed}
    states = await query(database_url, "SELECT state::text AS state, count(*) AS n FROM works GROUP BY 1")
    assert {r["state"]: r["n"] for r in states} == {"applied": 128, "pending": 128}
