"""How late the event loop runs what is due: the controller's own saturation, as a metric.

Why: every loop of the controller shares one event loop. When it is busy (a bulk rollout's
thousands of ready tasks), a request that the apiserver answered at once still waits for its
turn to be read, and a single edit's latency grows with the backlog however its queues rank
it. This makes that wait visible (`federation_event_loop_lag_seconds`): a sleep of `interval`
that wakes late by more than scheduling noise is time every task of the process lost.
"""

from __future__ import annotations

from typing import Any

import anyio

from federation.metrics import EVENT_LOOP_LAG


async def watch_loop_lag(interval: float = 0.1) -> None:
    """Runs until cancelled; observes each wake-up's delay past its deadline."""
    while True:
        due = anyio.current_time() + interval
        await anyio.sleep(interval)  # the measuring instrument: how late this wakes is the lag
        EVENT_LOOP_LAG.observe(max(0.0, anyio.current_time() - due))


def loop_options() -> dict[str, Any]:
    """anyio's backend options for a loop of ours: uvloop when it is installed (the controller
    spends its time in the event loop)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
