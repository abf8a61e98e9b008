"""A capacity limiter that lets waiters in by priority, then by arrival.

Why not `anyio.CapacityLimiter`: it is first come, first served. A propagator claims its whole
backlog at once (batches of hundreds, each applied at the member's pace), so in a bulk rollout
thousands of first applies wait for its 16 slots; an edit of a copy that is already in the
member, claimed a second later, then waited behind all of them — tens of seconds for a one-line
change while a big rollout runs (Karmada ranks an initial list below fresh events for the same
reason). Here a waiter with a lower priority number goes first; equal priorities stay in order.

A slot freed is handed straight to the next waiter (never returned to a pool a newcomer could
grab first), and a waiter cancelled after being handed one passes it on.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    granted: anyio.Event = field(compare=False, default_factory=anyio.Event)
    gone: bool = field(compare=False, default=False)


class PrioritySlots:
    """At most `total` holders at once; `slot(priority)` waits for one."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"slots: total must be at least 1, got {total}")
        self.total = total
        self.held = 0
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self.waiting = 0
        """Waiters not yet let in (cancelled ones leave the heap lazily; this count at once)."""

    @asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self.held < self.total and not self.waiting:
            self.held += 1
            return
        waiter = _Waiter(priority, next(self._seq))
        heapq.heappush(self._waiters, waiter)
        self.waiting += 1
        try:
            await waiter.granted.wait()
        except BaseException:
            if waiter.granted.is_set():
                self._release()  # handed a slot as it was cancelled: pass it on
            else:
                waiter.gone = True
                self.waiting -= 1
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = heapq.heappop(self._waiters)
            if not waiter.gone:
                self.waiting -= 1
                waiter.granted.set()  # the slot changes hands; `held` stays
                return
        self.held -= 1
