"""When the watched hub kinds are synced again (`federation.hub.kinds`), in fake time: at once on
a policy or API change, quickly while a kind is still missing after an API change, and by the
slow poll otherwise."""

from __future__ import annotations

import anyio
import pytest

from federation.hub.kinds import KindsTrigger
from federation.informers.clock import FakeClock


class FakeDiscovery:
    def __init__(self) -> None:
        self.forgotten = 0

    def forget(self) -> None:
        self.forgotten += 1


@pytest.mark.anyio
async def test_a_new_kind_is_retried_quickly_after_an_api_change_and_slowly_otherwise() -> None:
    clock = FakeClock()
    discovery = FakeDiscovery()
    trigger = KindsTrigger(factory=None, discovery=discovery, poll_interval=60.0, clock=clock)  # type: ignore[arg-type]
    missing = [True]
    syncs: list[float] = []

    async def sync() -> None:
        syncs.append(clock.now() - 1000.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: trigger.run(sync, missing=lambda: missing[0]))
        await anyio.wait_all_tasks_blocked()
        await clock.advance(30)
        assert syncs == [], "a missing kind with no change waits for the poll"
        await clock.advance(30)
        assert syncs == [60.0]

        trigger.policy_changed()
        await anyio.wait_all_tasks_blocked()
        assert syncs == [60.0, 60.0], "a policy change syncs at once"

        # A CRD is established: synced at once, then again quickly while discovery lags.
        trigger.api_changed()
        await anyio.wait_all_tasks_blocked()
        assert len(syncs) == 3 and discovery.forgotten >= 1
        for _ in range(3):
            await clock.advance(0.05)
            await clock.advance(0.15)
        assert len(syncs) >= 5, syncs
        assert syncs[-1] - 60.0 < 1.0, "retries within a second, not at the next poll"

        missing[0] = False  # discovery serves it now: back to the slow poll
        before = len(syncs)
        await clock.advance(2.0)
        await clock.advance(2.0)
        assert len(syncs) <= before + 1
        tg.cancel_scope.cancel()
