"""`federation.store.coalesce`: calls made while a batch is in flight share the next one; a
lone call goes at once; an error reaches every caller of its batch; a cancelled leader still
finishes its batch for the others."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from federation.store.coalesce import Coalescer


class Backend:
    """Records each batch; each call blocks until released (the statement in flight)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = anyio.Event()
        self.fail = False

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail:
            raise ValueError("the statement failed")
        return [i * 10 for i in items]


async def test_a_lone_call_goes_at_once_and_calls_meanwhile_share_the_next_batch() -> None:
    backend = Backend()
    c: Coalescer[int, int] = Coalescer(backend.run)
    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await c.submit(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 1)
            await anyio.wait_all_tasks_blocked()
            assert backend.batches == [[1]]  # no waiting for company
            for i in (2, 3, 4):
                tg.start_soon(call, i)
            await anyio.wait_all_tasks_blocked()
            assert backend.batches == [[1]]  # one in flight at a time
            backend.release.set()
    assert backend.batches == [[1], [2, 3, 4]]
    assert results == {1: 10, 2: 20, 3: 30, 4: 40}


async def test_a_batch_is_cut_at_its_maximum() -> None:
    backend = Backend()
    c: Coalescer[int, int] = Coalescer(backend.run, max_batch=2)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(c.submit, i)
            await anyio.wait_all_tasks_blocked()
            backend.release.set()
    assert sorted(map(len, backend.batches)) == [1, 2, 2]
    assert sorted(i for b in backend.batches for i in b) == [0, 1, 2, 3, 4]


async def test_an_error_reaches_every_caller_of_its_batch() -> None:
    backend = Backend()
    backend.fail = True
    c: Coalescer[int, int] = Coalescer(backend.run)
    errors: list[int] = []

    async def call(i: int) -> None:
        with pytest.raises(ValueError, match="the statement failed"):
            await c.submit(i)
        errors.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(call, i)
            await anyio.wait_all_tasks_blocked()
            backend.release.set()
    assert sorted(errors) == [0, 1, 2]


async def test_a_cancelled_leader_still_runs_its_batch_for_the_others() -> None:
    backend = Backend()
    c: Coalescer[int, int] = Coalescer(backend.run)
    got: list[int] = []
    scope = anyio.CancelScope()

    async def leader() -> None:
        with scope:
            await c.submit(2)  # leads the second batch, waiting for the first

    async def follower() -> None:
        got.append(await c.submit(3))  # joins the second batch

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.submit, 1)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(leader)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(follower)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            backend.release.set()
    assert backend.batches == [[1], [2, 3]] and got == [30]
