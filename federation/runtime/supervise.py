"""`supervise`: keep one long-running task alive, alone.

A member's propagator crashing on a bug must not end the leader's task group (and with it every
other member's loop): it is logged with its traceback, counted, and restarted after a jittered
exponential backoff (reset after a healthy period, `federation.informers.Backoff`). Expected
shutdown — cancellation — passes through untouched, and so does a clean return.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from federation.informers import Backoff, Clock, RealClock
from federation.metrics import TASK_RESTARTS

log = logging.getLogger(__name__)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    fields: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    initial: float = 1.0,
    cap: float = 60.0,
) -> None:
    """Run `run()` until it returns; on an exception, report it and run it again after a
    backoff. `name` labels `federation_task_restarts_total` and the log line."""
    clock = clock or RealClock()
    backoff = Backoff(initial=initial, cap=cap, clock=clock)
    while True:
        try:
            await run()
            return
        except Exception:
            TASK_RESTARTS.labels(name).inc()
            delay = backoff.next_delay()
            log.exception("%s crashed; restarting in %.1f s", name, delay, extra=dict(fields or {}))
            await clock.sleep(delay)
