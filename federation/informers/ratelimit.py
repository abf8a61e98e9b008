"""Rate limiters for the work queue, with client-go's semantics (`util/workqueue`).

The default, as in client-go: the max of a per-item exponential backoff (5 ms × 2^failures,
capped at 1000 s) and a global token bucket (10/s, burst 100). The per-item part protects a
failing object from hot-looping; the bucket protects the apiserver from a storm of retries of
many objects at once.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from federation.informers.clock import Clock, RealClock
from federation.kube.throttle import RateLimit, TokenBucket


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """Seconds to wait before `item` may be processed again (counts a failure)."""
        ...

    def forget(self, item: Hashable) -> None:
        """Clear `item`'s failure history (it succeeded)."""
        ...

    def num_requeues(self, item: Hashable) -> int: ...


def exponential(base: float, cap: float, failures: int) -> float:
    """base × 2^failures, capped: the one exponential backoff of a retried item (a queue's key
    here, a propagator's work in Postgres), whoever counts its failures."""
    if failures > 60:  # 2^60 × base is far past any cap; avoid float overflow
        return cap
    return float(min(base * (2**failures), cap))


class ItemExponentialLimiter:
    """base × 2^failures per item, capped."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        n = self._failures.get(item, 0)
        self._failures[item] = n + 1
        return exponential(self.base, self.cap, n)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class TokenBucketLimiter:
    """A global token bucket (golang.org/x/time/rate `Reserve` semantics).

    Each call takes a token; when none is left the caller is told how long until its token
    will exist, and the bucket goes into debt, so a burst of N calls is spread out at `rate`.
    """

    def __init__(self, rate: float = 10.0, burst: int = 100, *, clock: Clock | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock or RealClock()
        # The same arithmetic as a member client's throttle (`federation.kube.throttle`).
        self._bucket = TokenBucket(RateLimit(rate, burst), self._clock.now())

    def when(self, item: Hashable) -> float:
        return self._bucket.reserve(self._clock.now())

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfLimiter:
    """The longest delay any of the limiters asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_rate_limiter(*, clock: Clock | None = None) -> MaxOfLimiter:
    """client-go's DefaultControllerRateLimiter."""
    return MaxOfLimiter(ItemExponentialLimiter(0.005, 1000.0), TokenBucketLimiter(10.0, 100, clock=clock))
