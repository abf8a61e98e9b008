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
  `QueueShutDown`; `shut_down_with_drain` additionally waits until in-flight keys are done;
- **priority** (controller-runtime's priority queue): every add carries a `Priority`; a key of a
  higher priority is handed out before any key of a lower one, first in first out within one.
  Adding a queued key again at a higher priority moves it up (never down); a key added while it
  is processed is re-queued at the highest priority it was added with meanwhile; a delayed or
  rate-limited re-add keeps the priority the key was handed out at, unless told otherwise.

Why priorities: keys that only *may* have changed — the initial list after a start, a resync, a
fan-out that re-evaluates every template of a kind — come by the thousand at once. Queued
first in, first out with a fresh event (someone just edited one template), they would make that
one change wait behind all of them. `Priority.LOW` is for those; `Priority.NORMAL` for an event
about one object; `Priority.CREATED`, between them, for an object's creation, so that someone's
edit of a running object is not queued behind a bulk of new ones (bench/propagation.py's edits
during a 1,000-template rollout). Collapsing is unchanged: a key is queued once, at its highest
priority.

Everything runs on one event loop; mutations never await, so they are atomic without locks.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from enum import IntEnum
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


class Priority(IntEnum):
    """Which keys go first (higher first). controller-runtime's `LowPriority` is -100 too."""

    LOW = -100
    """The key only may have changed: an initial list, a resync, a fan-out over many keys."""
    CREATED = -50
    """A watch saw the object for the first time (a creation): a bulk of creations is a rollout
    that takes its time, while a change to an object that exists is what someone waits for."""
    NORMAL = 0
    """An event about this very object."""


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
        #: One FIFO per priority; a key moved up leaves a stale entry below, skipped on `get`.
        self._queues: dict[Priority, deque[K]] = {p: deque() for p in sorted(Priority, reverse=True)}
        #: Queued keys (not processing) and the priority they are queued at.
        self._queued: dict[K, Priority] = {}
        self._dirty: set[K] = set()
        #: The highest priority a key being processed was added with meanwhile.
        self._dirty_priority: dict[K, Priority] = {}
        self._processing: dict[K, Priority] = {}
        self._waiting: list[tuple[float, int, K]] = []
        self._waiting_at: dict[K, float] = {}
        self._waiting_priority: dict[K, Priority] = {}
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

    def add(self, key: K, priority: Priority = Priority.NORMAL) -> None:
        if self._shutting_down:
            return
        if key in self._dirty:
            if key in self._processing:
                self._dirty_priority[key] = max(priority, self._dirty_priority.get(key, priority))
            elif priority > self._queued.get(key, priority):
                self._enqueue(key, priority)  # moved up; the entry below goes stale
            return
        self._dirty.add(key)
        self._adds.inc()
        if key in self._processing:
            self._dirty_priority[key] = priority
            return  # re-queued by done()
        self._push(key, priority)

    def add_after(self, key: K, delay: float, priority: Priority | None = None) -> None:
        """Add `key` after `delay` seconds; `priority` None: the one it was handed out at (a
        requeue of the key being processed), else `Priority.NORMAL`."""
        if self._shutting_down:
            return
        if priority is None:
            priority = self._processing.get(key, Priority.NORMAL)
        if delay <= 0:
            self.add(key, priority)
            return
        ready_at = self._clock.now() + delay
        self._waiting_priority[key] = max(priority, self._waiting_priority.get(key, priority))
        current = self._waiting_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._waiting_at[key] = ready_at
        heapq.heappush(self._waiting, (ready_at, next(self._seq), key))
        self._notify()

    def add_rate_limited(self, key: K, priority: Priority | None = None) -> None:
        self._retries.inc()
        self.add_after(key, self._limiter.when(key), priority)

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
        if not self._queued:
            return None
        key, priority = self._pop()
        self._depth.set(len(self._queued))
        self._processing[key] = priority
        self._dirty.discard(key)
        now = self._clock.now()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._latency.observe(now - added)
        self._started_at[key] = now
        return key

    def done(self, key: K) -> None:
        """Processing of `key` finished; re-queue it if it was added meanwhile."""
        self._processing.pop(key, None)
        started = self._started_at.pop(key, None)
        if started is not None:
            self._work.observe(self._clock.now() - started)
        if key in self._dirty:
            self._push(key, self._dirty_priority.pop(key, Priority.NORMAL))
        else:
            self._notify()

    # -- shutdown -------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop accepting adds; workers get what is queued, then `QueueShutDown`."""
        self._shutting_down = True
        self._waiting.clear()
        self._waiting_at.clear()
        self._waiting_priority.clear()
        self._notify()

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every queued and in-flight key is done."""
        self.shut_down()
        while self._queued or self._processing:
            await self._clock.wait(self._changed, None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def waiting(self) -> int:
        return len(self._waiting_at)

    def queued_at(self, key: K) -> Priority | None:
        """The priority `key` is queued at (None: not queued; for tests and debugging)."""
        return self._queued.get(key)

    def processing_at(self, key: K) -> Priority | None:
        """The priority `key` was handed out at (None: not being processed)."""
        return self._processing.get(key)

    # -- internals ------------------------------------------------------------------------

    def _push(self, key: K, priority: Priority) -> None:
        self._enqueue(key, priority)
        self._added_at.setdefault(key, self._clock.now())
        self._depth.set(len(self._queued))
        self._notify()

    def _enqueue(self, key: K, priority: Priority) -> None:
        self._queued[key] = priority
        self._queues[priority].append(key)

    def _pop(self) -> tuple[K, Priority]:
        """The first key of the highest priority (entries left stale by a move up skipped)."""
        for priority, fifo in self._queues.items():
            while fifo:
                key = fifo.popleft()
                if self._queued.get(key) is priority:
                    del self._queued[key]
                    return key, priority
        raise AssertionError("a queued key is in no FIFO")  # unreachable: _queued is not empty

    def _promote_due(self) -> None:
        now = self._clock.now()
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._waiting)
            if self._waiting_at.get(key) != ready_at:
                continue  # superseded by an earlier add_after
            del self._waiting_at[key]
            self.add(key, self._waiting_priority.pop(key, Priority.NORMAL))

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
