"""`PrioritySlots`: never more holders than slots, waiters let in by priority then arrival,
cancelled waiters neither hold nor lose a slot."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.runtime.slots import PrioritySlots


async def settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


def test_a_limiter_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PrioritySlots(0)


async def test_an_urgent_waiter_overtakes_the_backlog_and_equal_ones_keep_their_order() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    gate = anyio.Event()

    async def hold() -> None:
        async with slots.slot(1):
            await gate.wait()

    async def one(name: str, priority: int) -> None:
        async with slots.slot(priority):
            order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await settle()
        for i in range(3):
            tg.start_soon(one, f"bulk-{i}", 1)
            await settle()
        tg.start_soon(one, "edit", 0)
        await settle()
        assert slots.waiting == 4 and slots.held == 1
        gate.set()
    assert order == ["edit", "bulk-0", "bulk-1", "bulk-2"]
    assert slots.held == 0 and slots.waiting == 0


async def test_a_waiter_cancelled_before_its_turn_leaves_no_hole() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    gate = anyio.Event()

    async def hold() -> None:
        async with slots.slot(0):
            await gate.wait()

    async def one(name: str) -> None:
        async with slots.slot(0):
            order.append(name)

    inner = anyio.CancelScope()

    async def doomed() -> None:
        with inner:
            await one("doomed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await settle()
        tg.start_soon(one, "kept")
        await settle()
        tg.start_soon(doomed)
        await settle()
        tg.start_soon(one, "last")
        await settle()
        inner.cancel()
        await settle()
        assert slots.waiting == 2
        gate.set()
    assert order == ["kept", "last"]
    assert slots.held == 0 and slots.waiting == 0


async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    release = anyio.Event()

    async def hold() -> None:
        async with slots.slot(0):
            await release.wait()

    async def one(name: str, scope: anyio.CancelScope | None = None) -> None:
        if scope is None:
            async with slots.slot(0):
                order.append(name)
            return
        with scope:
            async with slots.slot(0):
                order.append(name)

    doomed = anyio.CancelScope()
    with anyio.fail_after(5):  # a slot lost would leave "next" waiting for ever
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await settle()
            tg.start_soon(one, "doomed", doomed)
            await settle()
            tg.start_soon(one, "next")
            await settle()
            release.set()
            doomed.cancel()  # in the same step as the hand-over: the slot must reach "next"
    assert order == ["next"]  # "doomed" was handed the slot and cancelled before using it
    assert slots.held == 0 and slots.waiting == 0


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(1, 4),
    jobs=st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=25),
)
def test_never_more_holders_than_slots_and_every_job_runs(total: int, jobs: list[tuple[int, bool]]) -> None:
    async def main() -> None:
        slots = PrioritySlots(total)
        holding = 0
        peak = 0
        ran: list[int] = []

        async def job(i: int, priority: int, yields: bool) -> None:
            nonlocal holding, peak
            async with slots.slot(priority):
                holding += 1
                peak = max(peak, holding)
                if yields:
                    await settle()
                holding -= 1
                ran.append(i)

        async with anyio.create_task_group() as tg:
            for i, (priority, yields) in enumerate(jobs):
                tg.start_soon(job, i, priority, yields)
        assert peak <= total
        assert sorted(ran) == list(range(len(jobs)))
        assert slots.held == 0 and slots.waiting == 0

    anyio.run(main)
