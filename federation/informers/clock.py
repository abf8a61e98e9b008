"""Clocks that time-dependent code takes as a parameter, so unit tests run in fake time.

`Clock.wait(event, timeout)` is the one primitive the queue and the backoff need: wait until an
event is set or `timeout` seconds of *this clock's* time pass. The real clock uses anyio's
timeouts; `FakeClock` only moves when a test calls `advance`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def wait(self, event: anyio.Event, timeout: float | None) -> bool:
        """Wait for `event` or `timeout` seconds; return whether the event was set."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: anyio.Event, timeout: float | None) -> bool:
        if timeout is None:
            await event.wait()
            return True
        with anyio.move_on_after(max(timeout, 0)):
            await event.wait()
        return event.is_set()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class FakeClock:
    """A clock that stands still until `advance` is called; for unit tests."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def wait(self, event: anyio.Event, timeout: float | None) -> bool:
        if timeout is None or event.is_set():
            await event.wait()
            return True
        if timeout <= 0:
            return False
        alarm = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + timeout, next(self._seq), alarm))
        async with anyio.create_task_group() as tg:

            async def on_event() -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            async def on_alarm() -> None:
                await alarm.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(on_event)
            tg.start_soon(on_alarm)
        return event.is_set()

    async def sleep(self, seconds: float) -> None:
        await self.wait(anyio.Event(), seconds)

    async def advance(self, seconds: float) -> None:
        """Move time forward, wake every waiter whose deadline passed, and let them run."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, alarm = heapq.heappop(self._sleepers)
            alarm.set()
        await anyio.wait_all_tasks_blocked()
