"""Calls that arrive while a statement is in flight share the next one.

Why: in a bulk rollout the hub controller's 32 workers each register their template (one
upsert of one row) within milliseconds of each other, and every statement costs a round trip,
a pooled connection and Postgres' per-statement work whatever its size. The upsert already
takes arrays, so rows that would have waited for a connection anyway go in one statement.

How, without a background task (nothing here outlives its callers): at most one batch is in
flight. A call made while none is starts one at once and leads it (no added latency when the
controller is idle); calls made while one is in flight join the next batch, whose leader sends
it as soon as the one in flight returns. A leader runs its batch shielded from cancellation, so
no caller ever waits for a batch that was abandoned; an error of the batch is raised to each
of its callers (each retries its own key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")
R = TypeVar("R")


class _Batch(Generic[T, R]):
    def __init__(self) -> None:
        self.items: list[T] = []
        self.results: Sequence[R] = ()
        self.error: Exception | None = None
        self.done = anyio.Event()


class Coalescer(Generic[T, R]):
    """`submit(item)` → the result of `run` for it; `run` takes a batch, returns one result
    per item, in order."""

    def __init__(self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 256) -> None:
        self._run = run
        self._max_batch = max_batch
        self._next: _Batch[T, R] | None = None
        self._in_flight: _Batch[T, R] | None = None
        self.batches = 0

    async def submit(self, item: T) -> R:
        batch = self._next
        lead = batch is None or len(batch.items) >= self._max_batch
        if lead:
            batch = self._next = _Batch()
        assert batch is not None
        index = len(batch.items)
        batch.items.append(item)
        if lead:
            with anyio.CancelScope(shield=True):
                await self._lead(batch)
        else:
            await batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.results[index]

    async def _lead(self, batch: _Batch[T, R]) -> None:
        while self._in_flight is not None:
            await self._in_flight.done.wait()  # callers meanwhile join this batch
        if self._next is batch:
            self._next = None
        self._in_flight = batch
        try:
            batch.results = await self._run(batch.items)
            if len(batch.results) != len(batch.items):
                raise AssertionError(f"a batch of {len(batch.items)} got {len(batch.results)} results")
        except Exception as exc:
            batch.error = exc
        finally:
            self._in_flight = None
            batch.done.set()
