"""Small bounds the server keeps on what others make it do: a token bucket, and the log of
rejected requests that a flood cannot turn into a flood of log lines.

Both take the clock as a parameter (monotonic seconds), so their tests run in fake time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `take` spends one if there is one.

    Unlike the work queue's limiter (which goes into debt and says how long to wait), a caller
    here that finds the bucket empty does something cheaper instead: it serves what it has
    cached, or admits unchecked, or drops a log line.
    """

    def __init__(self, *, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class RejectionLog:
    """One warning line per rejected request or closed connection, never a traceback, and at
    most `rate` lines a second (`burst` at once) whatever arrives.

    A line that the bucket drops is counted; the next line written says how many were dropped
    (``(N similar lines suppressed)``), so the log still tells how big a flood was. Lines go to
    ``logger`` with the fields every log of ours has (``extra``); the structured formatters of
    `federation.logs` print them.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        rate: float = 1.0,
        burst: int = 10,
        clock: Clock = time.monotonic,
    ) -> None:
        self.logger = logger
        self._bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
        self.suppressed = 0
        self.written = 0

    def warning(self, message: str, *args: Any) -> bool:
        """Write ``message % args`` as one warning line, unless the rate is exceeded (then
        count it). Returns whether it was written."""
        return self.log(logging.WARNING, message, *args)

    def log(self, level: int, message: str, *args: Any) -> bool:
        """`warning` at another level."""
        if not self._bucket.take():
            self.suppressed += 1
            return False
        if self.suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.written += 1
        self.logger.log(level, message, *args)
        return True
