"""A propagator processes one member object at a time (issue 11: a copy outlived a template
deleted a second after it was created).

The race, as it happened: the work of a new template is claimed and its apply is slow (the
controller's first seconds); the template is deleted, which moves the work to ``deleting`` and
clears its claim; the next claim round brings the deleting work while the apply is still in
flight. Processed at once, the deletion finds nothing yet ("already gone") and removes the
row; then the apply lands a copy no row records, for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from federation.clusters import Member
from federation.propagate.applier import Outcome, Result
from federation.propagate.worker import ClusterPropagator
from federation.runtime.slots import PrioritySlots
from federation.store import ClaimedWork, ResourceId, WorkState
from federation.store.rows import WorkId

DESIRED = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d-016", "namespace": "soak"}}


def claimed(state: WorkState, version: int) -> ClaimedWork:
    return ClaimedWork(
        id=WorkId(7),
        resource_id=ResourceId(3),
        cluster="member-1",
        state=state,
        desired=DESIRED,
        desired_hash="h1",
        applied_hash=None,
        member_resource_version=None,
        attempts=0,
        version=version,
        claimed_until=datetime.now(UTC),
    )


class FakeMember:
    """The member's object, as a slow apply and a deletion see it."""

    def __init__(self) -> None:
        self.writes = 0
        self.exists = False
        self.apply_started = anyio.Event()
        self.release_apply = anyio.Event()
        self.log: list[str] = []

    async def apply(self, desired: Any, **_: Any) -> Outcome:
        self.log.append("apply started")
        self.apply_started.set()
        await self.release_apply.wait()
        self.exists = True
        self.log.append("apply done")
        return Outcome(Result.APPLIED, "applied", wrote=True)

    async def delete(self, desired: Any, **_: Any) -> Outcome:
        self.log.append("delete")
        if not self.exists:
            return Outcome(Result.DELETED, "already gone")
        self.exists = False
        return Outcome(Result.DELETED, "deleted", wrote=True)


class FakeStore:
    def __init__(self) -> None:
        self.finished: list[tuple[int, int]] = []

    async def finish_deletion(self, work_id: int, version: int) -> None:
        self.finished.append((work_id, version))


@pytest.mark.anyio
async def test_a_deletion_claimed_while_the_apply_is_in_flight_waits_for_it() -> None:
    member = Member(name="member-1", labels={}, taints=(), source="test", client=object(), discovery=object())  # type: ignore[arg-type]
    store = FakeStore()
    propagator = ClusterPropagator(
        member=member,
        store=store,  # type: ignore[arg-type]
        hub_id="hub",
        holder="test",
        ready=lambda: True,
        on_status=lambda _key: None,
    )
    fake = FakeMember()
    propagator.applier = fake  # type: ignore[assignment]
    limiter = PrioritySlots(4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(propagator._process, claimed(WorkState.PENDING, 2), limiter)
            await fake.apply_started.wait()
            # The template is deleted: the work (cleared claim) is claimed again, as deleting.
            tg.start_soon(propagator._process, claimed(WorkState.DELETING, 4), limiter)
            await anyio.wait_all_tasks_blocked()
            while_applying = list(fake.log)
            fake.release_apply.set()
    assert while_applying == ["apply started"], "the deletion must wait for the apply in flight"
    assert fake.log == ["apply started", "apply done", "delete"]
    assert not fake.exists, "the copy the slow apply created is deleted"
    assert store.finished == [(7, 4)]


def test_a_change_to_a_copy_the_member_has_goes_before_first_applies() -> None:
    from dataclasses import replace

    from federation.propagate.worker import _urgency

    first = claimed(WorkState.PENDING, 1)
    assert _urgency(first) == 1
    assert _urgency(replace(first, applied_hash="h0")) == 0  # an edit of an applied copy
    assert _urgency(replace(first, state=WorkState.DELETING)) == 0
    assert _urgency(replace(first, state=WorkState.ORPHANING)) == 0
    assert _urgency(replace(first, state=WorkState.FAILED)) == 1  # a first apply's retry


def test_two_results_of_one_work_in_a_batch_keep_the_latest_claims() -> None:
    """Both applies of a work re-claimed mid-apply can end in one batching window; the store
    refuses a batch naming a work twice, which once lost every result of that batch."""
    from federation.propagate.worker import _latest_per_work
    from federation.store import ApplyResult

    called: list[str] = []
    old = ApplyResult(work_id=WorkId(7), version=3, state=WorkState.APPLIED)
    new = ApplyResult(work_id=WorkId(7), version=5, state=WorkState.APPLIED)
    other = ApplyResult(work_id=WorkId(8), version=2, state=WorkState.FAILED)
    kept, dropped = _latest_per_work(
        [(new, lambda _v: called.append("new")), (old, lambda _v: called.append("old")), (other, None)]
    )
    assert dropped == 1
    assert [r for r, _ in kept] == [new, other]
    for _, then in kept:
        if then is not None:
            then(6)
    assert called == ["new"]
