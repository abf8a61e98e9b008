"""One member's propagator crashing is contained to that member, reported and restarted, in
fake time: the other members' loops never notice."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from federation.clusters import Member
from federation.hub.keys import ResourceKey
from federation.informers.clock import FakeClock
from federation.kube import Obj
from federation.metrics import TASK_RESTARTS
from federation.propagate.fleet import Propagators


def member(name: str, client: Any = None) -> Member:
    return Member(name=name, labels={}, taints=(), source="test", client=client or object())  # type: ignore[arg-type]


class FakePropagator:
    """Crashes on its first `crashes` runs (counted per member), then runs until cancelled."""

    def __init__(self, name: str, runs: dict[str, int], crashes: int) -> None:
        self.name = name
        self.runs = runs
        self.crashes = crashes
        self.cancelled = False

    async def run(self) -> None:
        self.runs[self.name] = self.runs.get(self.name, 0) + 1
        if self.runs[self.name] <= self.crashes:
            raise RuntimeError(f"a bug in {self.name}'s loop")
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise

    def wake(self) -> None:
        pass

    def member_object(self, key: ResourceKey) -> Obj | None:
        return None


def restarts(name: str) -> float:
    return TASK_RESTARTS.labels(f"propagator/{name}")._value.get()


async def test_a_crashing_member_is_restarted_and_the_others_keep_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    runs: dict[str, int] = {}
    built: list[FakePropagator] = []

    def factory(m: Member) -> FakePropagator:
        built.append(FakePropagator(m.name, runs, crashes=2 if m.name == "eu" else 0))
        return built[-1]

    fleet = Propagators(factory, clock=clock, restart_initial=1.0, restart_cap=4.0)
    eu_restarts, us_restarts = restarts("eu"), restarts("us")
    with anyio.fail_after(5), caplog.at_level("ERROR"):
        async with anyio.create_task_group() as tg:
            fleet.reconcile([member("eu"), member("us")], tg)
            await anyio.wait_all_tasks_blocked()
            us = fleet.get("us")
            assert runs == {"eu": 1, "us": 1}
            assert fleet.get("eu") is None  # crashed: waiting out its backoff
            assert restarts("eu") == eu_restarts + 1
            crash = [r for r in caplog.records if "propagator/eu crashed" in r.getMessage()]
            assert crash and getattr(crash[0], "cluster", None) == "eu" and crash[0].exc_info
            await clock.advance(2.01)  # at most initial × (1 + jitter)
            assert runs["eu"] == 2 and restarts("eu") == eu_restarts + 2
            await clock.advance(4.01)
            assert runs["eu"] == 3  # a fresh propagator, running now
            eu = fleet.get("eu")
            assert eu is not None and eu is not built[0]
            # The other member's loop was never touched.
            assert fleet.get("us") is us and runs["us"] == 1 and us is not None
            assert restarts("us") == us_restarts
            assert not [p for p in built if p.cancelled]
            tg.cancel_scope.cancel()


async def test_a_member_that_leaves_or_reconnects_gets_its_loop_cancelled_or_replaced() -> None:
    runs: dict[str, int] = {}
    built: list[FakePropagator] = []

    def factory(m: Member) -> FakePropagator:
        built.append(FakePropagator(m.name, runs, crashes=0))
        return built[-1]

    fleet = Propagators(factory, clock=FakeClock())
    eu, us = member("eu"), member("us")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            fleet.reconcile([eu, us], tg)
            await anyio.wait_all_tasks_blocked()
            first_eu = fleet.get("eu")
            fleet.reconcile([eu, us], tg)  # nothing changed: nothing restarted
            await anyio.wait_all_tasks_blocked()
            assert len(built) == 2 and fleet.get("eu") is first_eu
            fleet.reconcile([member("eu", client=object())], tg)  # eu reconnected, us left
            await anyio.wait_all_tasks_blocked()
            assert [p.cancelled for p in built] == [True, True, False]
            assert fleet.get("us") is None and fleet.get("eu") is built[2]
            tg.cancel_scope.cancel()
