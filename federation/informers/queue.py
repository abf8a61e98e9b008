"""The work queue, with client-go's guarantees (`k8s.io/client-go/util/workqueue`).

The reconcile contract that sits on top of it (see `federation.runtime`): a key is
added whenever anything about it may have changed; a worker `get`s the key, reconciles it from
current state, then calls `done` — and, on success, `forget` (clears its backoff) or, on error,
`add_rate_limited` (retry with per-key exponential backoff and a global rate limit).

Guarantees, each tested:
- **collapse**: several adds of a key before it is processed yield one processing;
- **exclusive**: a key is never handed to two workers at once;
- **dirty re-queue**: an add while the key is being processed marks it dirty; it is queued
  again when `done` is called, so no change is missed and no two workers overlap;
- **delayed adds** (`add_after`): the earliest pending time for a key wins;
- **shutdown**: `shut_down` stops accepting adds, hands out what is queued, then `get` raises
  `QueueShutDown`; `shut_down_with_drain` additionally waits until in-flight keys are done.

Everything runs on one event loop; mutations never await, so they are atomic without locks.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import anyio

from federation.informers.clock import Clock, RealClock
from federation.informers.ratelimit import RateLimiter, default_rate_limiter
from federation.metrics import (
    QUEUE_ADDS,
    QUEUE_DEPTH,
    QUEUE_LATENCY,
    QUEUE_LONGEST_RUNNING,
    QUEUE_RETRIES,
    QUEUE_UNFINISHED,
    QUEUE_WORK_DURATION,
)

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):  # noqa: N818 - a signal, as client-go's `shutdown bool`
    """`get` on a queue that is shut down and empty: the worker should exit."""


class WorkQueue(Generic[K]):
    """A rate-limited, delaying, de-duplicating work queue of keys."""

    def __init__(
        self, name: str, *, rate_limiter: RateLimiter | None = None, clock: Clock | None = None
    ) -> None:
        self.name = name
        self._clock = clock or RealClock()
        self._limiter = rate_limiter or default_rate_limiter(clock=self._clock)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []
        self._waiting_at: dict[K, float] = {}
        self._seq = itertools.count()
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._changed = anyio.Event()
        self._shutting_down = False
        self._depth = QUEUE_DEPTH.labels(name)
        self._adds = QUEUE_ADDS.labels(name)
        self._latency = QUEUE_LATENCY.labels(name)
        self._work = QUEUE_WORK_DURATION.labels(name)
        self._retries = QUEUE_RETRIES.labels(name)
        QUEUE_UNFINISHED.labels(name).set_function(self._unfinished_seconds)
        QUEUE_LONGEST_RUNNING.labels(name).set_function(self._longest_running)

    # -- adding ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._adds.inc()
        if key in self._processing:
            return  # re-queued by done()
        self._push(key)

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + delay
        current = self._waiting_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._waiting_at[key] = ready_at
        heapq.heappush(self._waiting, (ready_at, next(self._seq), key))
        self._notify()

    def add_rate_limited(self, key: K) -> None:
        self._retries.inc()
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._limiter.num_requeues(key)

    # -- processing -----------------------------------------------------------------------

    async def get(self) -> K:
        """The next key to process; waits for one. Raises `QueueShutDown` when shut down and empty."""
        while True:
            key = self.get_nowait()
            if key is not None:
                return key
            if self._shutting_down:
                self._notify()  # let the other waiting workers see it too
                raise QueueShutDown(self.name)
            timeout = self._waiting[0][0] - self._clock.now() if self._waiting else None
            await self._clock.wait(self._changed, timeout)

    def get_nowait(self) -> K | None:
        """The next key if one is ready now, else None (for batching and for tests)."""
        self._promote_due()
        if not self._queue:
            return None
        key = self._queue.popleft()
        self._depth.set(len(self._queue))
        self._processing.add(key)
        self._dirty.discard(key)
        now = self._clock.now()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._latency.observe(now - added)
        self._started_at[key] = now
        return key

    def done(self, key: K) -> None:
        """Processing of `key` finished; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if started is not None:
            self._work.observe(self._clock.now() - started)
        if key in self._dirty:
            self._push(key)
        else:
            self._notify()

    # -- shutdown -------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop accepting adds; workers get what is queued, then `QueueShutDown`."""
        self._shutting_down = True
        self._waiting.clear()
        self._waiting_at.clear()
        self._notify()

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every queued and in-flight key is done."""
        self.shut_down()
        while self._queue or self._processing:
            await self._clock.wait(self._changed, None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def waiting(self) -> int:
        return len(self._waiting_at)

    # -- internals ------------------------------------------------------------------------

    def _push(self, key: K) -> None:
        self._queue.append(key)
        self._added_at.setdefault(key, self._clock.now())
        self._depth.set(len(self._queue))
        self._notify()

    def _promote_due(self) -> None:
        now = self._clock.now()
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._waiting)
            if self._waiting_at.get(key) != ready_at:
                continue  # superseded by an earlier add_after
            del self._waiting_at[key]
            self.add(key)

    def _notify(self) -> None:
        """Wake everyone waiting in `get` (they re-check); a fresh event for the next wait."""
        event, self._changed = self._changed, anyio.Event()
        event.set()

    def _unfinished_seconds(self) -> float:
        now = self._clock.now()
        return sum(now - t for t in self._started_at.values())

    def _longest_running(self) -> float:
        if not self._started_at:
            return 0.0
        return self._clock.now() - min(self._started_at.values())
