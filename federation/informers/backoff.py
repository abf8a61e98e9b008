"""Jittered exponential backoff for reconnecting, reset after a healthy period.

client-go's reflector waits 0.8 s doubling to 30 s between failed attempts, with jitter so a
fleet of watchers does not reconnect in lockstep, and forgets past failures once it has been
healthy for a while (otherwise one blip an hour would keep every reconnect at 30 s).
"""

from __future__ import annotations

import random

from federation.informers.clock import Clock, RealClock


class Backoff:
    def __init__(
        self,
        *,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.reset_after = reset_after
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self._current = initial
        self._last_failure: float | None = None
        self.failures = 0

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        now = self._clock.now()
        if self._last_failure is not None and now - self._last_failure >= self.reset_after:
            self._current = self.initial
            self.failures = 0
        self._last_failure = now
        self.failures += 1
        delay = self._current
        self._current = min(self._current * self.factor, self.cap)
        # client-go's wait.Jitter: delay + random in [0, jitter × delay), still capped.
        return min(delay + self._rng.random() * self.jitter * delay, self.cap)

    def reset(self) -> None:
        self._current = self.initial
        self._last_failure = None
        self.failures = 0

    async def wait(self) -> float:
        delay = self.next_delay()
        await self._clock.sleep(delay)
        return delay
