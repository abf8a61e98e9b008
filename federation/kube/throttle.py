"""Client-side throttling of one cluster's client: a token bucket, and the member's Retry-After.

Every member cluster's client has its own bucket (as Karmada gives each member's client its own
QPS and burst), so a rollout that writes thousands of copies reaches each member at most at
its rate, and a member that is slow, or throttles us, makes only its own requests wait: the
others draw on their own buckets. A 429 (or a 503 saying when to come back) with Retry-After
from a member pauses every request to that member until then, not just the one refused: the
member said it is overloaded.

The bucket has golang.org/x/time/rate's `Reserve` semantics: each request takes a token; when
none is left it is told how long until its token exists and the bucket goes into debt, so a
burst of N requests is spread out at `qps` after the first `burst`. A request cancelled while it
waits gives its token back, and so does one abandoned: a task started in the context of a
`stop_signal()` fails its wait for a token once that signal is set — the waits under way then
and any later one (a request with a token at hand still goes) — so a stopping propagator is not
held for minutes by a trickle of tokens, for queued writes that have not started nor for the
next request of a shielded apply under way. Other tasks sharing the client (the member's
informers) wait as usual.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import anyio

from federation.errors import ClusterUnreachableError
from federation.metrics import KUBE_THROTTLE_SECONDS, KUBE_THROTTLED

#: Per member, by default: above what one member's apiserver takes from us on the propagation
#: bench (~150 writes/s per member with 5 members on 2 cores), so a rollout is never slowed by
#: its own limiter, and low enough that a fleet-wide burst cannot flood a member with requests.
DEFAULT_QPS = 500.0
DEFAULT_BURST = 1000
_STOPPING: ContextVar[anyio.Event | None] = ContextVar("federation_throttle_stopping", default=None)


@contextmanager
def stop_signal() -> Iterator[anyio.Event]:
    """A signal for the tasks started inside this block: once set, their requests fail at once
    instead of waiting for a token (they have not been sent: nothing is half-done)."""
    event = anyio.Event()
    token = _STOPPING.set(event)
    try:
        yield event
    finally:
        _STOPPING.reset(token)


#: Longest pause one Retry-After may impose (a member asking for more is retried after this).
MAX_RETRY_AFTER = 60.0


class SleepClock(Protocol):
    """What the throttle needs of a clock (`federation.informers.clock` clocks fit)."""

    def now(self) -> float: ...

    async def wait(self, event: anyio.Event, timeout: float | None) -> bool:
        """Wait for `event` or `timeout` seconds; return whether the event was set."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: anyio.Event, timeout: float | None) -> bool:
        with anyio.move_on_after(timeout):
            await event.wait()
        return event.is_set()


@dataclass(frozen=True)
class RateLimit:
    """A client's QPS and burst; `qps <= 0` is no limit (the hub's client, by default)."""

    qps: float = DEFAULT_QPS
    burst: int = DEFAULT_BURST

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0


NO_LIMIT = RateLimit(qps=0.0, burst=0)


class TokenBucket:
    """The bucket's arithmetic, in whatever seconds `now` is given in (pure, no clock)."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self._tokens = float(limit.burst)
        self._last = now
        self._paused_until = now

    def paused(self, now: float) -> bool:
        """Whether a Retry-After still holds every request back."""
        return self._paused_until > now

    def reserve(self, now: float) -> float:
        """Take a token; seconds until it may be used (0: at once)."""
        pause = max(0.0, self._paused_until - now)
        if self.limit.unlimited:
            return pause
        rate = self.limit.qps
        self._tokens = min(float(self.limit.burst), self._tokens + (now - self._last) * rate)
        self._last = now
        self._tokens -= 1
        return max(pause, 0.0 if self._tokens >= 0 else -self._tokens / rate)

    def refund(self) -> None:
        """A reservation that was not used (its request was cancelled while waiting)."""
        if not self.limit.unlimited:
            self._tokens = min(float(self.limit.burst), self._tokens + 1)

    def pause(self, now: float, seconds: float) -> None:
        """No reservation is usable before `now + seconds` (the member's Retry-After)."""
        self._paused_until = max(self._paused_until, now + min(max(seconds, 0.0), MAX_RETRY_AFTER))


class Throttle:
    """One client's bucket and pause, with the waits counted per cluster."""

    def __init__(self, cluster: str, limit: RateLimit, *, clock: SleepClock | None = None) -> None:
        self.cluster = cluster
        self._clock = clock or MonotonicClock()
        self.bucket = TokenBucket(limit, self._clock.now())
        self._unstoppable = anyio.Event()  # never set: what a wait outside a stop signal watches
        self._m_throttled = KUBE_THROTTLED.labels(cluster)
        self._m_seconds = {r: KUBE_THROTTLE_SECONDS.labels(cluster, r) for r in ("rate-limit", "retry-after")}

    @property
    def limit(self) -> RateLimit:
        return self.bucket.limit

    async def wait(self) -> float:
        """Wait for this request's turn; returns the seconds waited."""
        now = self._clock.now()
        paused = self.bucket.paused(now)
        delay = self.bucket.reserve(now)
        if delay <= 0:
            return 0.0
        stopping = _STOPPING.get()
        if stopping is not None and stopping.is_set():
            self.bucket.refund()
            raise self._abandoned()
        self._m_throttled.inc()
        self._m_seconds["retry-after" if paused else "rate-limit"].inc(delay)
        try:
            # A task under a stop signal answers to its own signal only: a stopping propagator
            # abandons its own waits, not those of the member's informers sharing this client.
            abandoned = await self._clock.wait(stopping if stopping is not None else self._unstoppable, delay)
        except BaseException:
            self.bucket.refund()
            raise
        if abandoned:
            self.bucket.refund()
            raise self._abandoned()
        return delay

    def _abandoned(self) -> ClusterUnreachableError:
        return ClusterUnreachableError(
            f"cluster {self.cluster}: the request was abandoned while waiting for the client's rate "
            "limit (the controller is stopping)",
            cluster=self.cluster,
        )

    def retry_after(self, seconds: float) -> None:
        """The member said to come back in `seconds`: every request of this client waits."""
        self.bucket.pause(self._clock.now(), seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """The Retry-After header as seconds (the apiserver sends delta-seconds), None if absent or
    unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None
