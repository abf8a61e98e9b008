"""The hub status writer on the runtime's loop, in fake time: a refusal by the hub becomes the
StatusAggregated=False condition, one event and the metric; any other error — a bug included —
is retried with backoff and never ends the writer."""

from __future__ import annotations

import copy
from typing import Any

import anyio

from federation.errors import ApiError, InvalidError
from federation.hub.keys import ResourceKey
from federation.informers.clock import FakeClock
from federation.kube import GVK, ResourceInfo
from federation.metrics import STATUS_WRITE_ERRORS
from federation.status.writer import STATUS_AGGREGATED, StatusWriter
from federation.store import EventRow, EventType

KEY = ResourceKey("apps", "Deployment", "shop", "web")
TEMPLATE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "generation": 1, "resourceVersion": "7"},
    "spec": {"replicas": 2},
}
COPY = {**TEMPLATE, "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}


class _Discovery:
    async def resource_for(self, gvk: GVK) -> ResourceInfo:
        return ResourceInfo(gvk.group, gvk.version, gvk.kind, "deployments", namespaced=True, has_status=True)


class _Hub:
    """Answers each status PUT with the next of `answers` (an exception to raise, or None)."""

    def __init__(self, *answers: Exception | None) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    async def replace(self, res: ResourceInfo, body: dict[str, Any], *, subresource: str) -> None:
        self.bodies.append(copy.deepcopy(body))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


def _writer(hub: _Hub, clock: FakeClock, events: list[EventRow], member: Any = None) -> StatusWriter:
    async def record(row: EventRow) -> None:
        events.append(row)

    return StatusWriter(
        hub=hub,  # type: ignore[arg-type]
        discovery=_Discovery(),  # type: ignore[arg-type]
        template=lambda _key: TEMPLATE,
        placed=lambda _key: ["eu"],
        member=member or (lambda _key, _cluster: COPY),
        record=record,
        workers=2,
        clock=clock,
    )


async def _settle(clock: FakeClock, seconds: float = 0.0) -> None:
    await clock.advance(seconds)
    await anyio.wait_all_tasks_blocked()


async def test_a_refusal_becomes_a_condition_an_event_and_the_metric_then_a_retry() -> None:
    clock = FakeClock()
    refusal = InvalidError("status.readyReplicas: Invalid value", status=422)
    hub = _Hub(refusal, None, refusal)  # refused; the condition written; refused again
    events: list[EventRow] = []
    writer = _writer(hub, clock, events)
    rejected = STATUS_WRITE_ERRORS.labels("rejected")._value.get()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            writer.mark(KEY)
            await _settle(clock)
            condition = hub.bodies[1]["status"]["conditions"][-1]
            assert (condition["type"], condition["status"], condition["reason"]) == (
                STATUS_AGGREGATED,
                "False",
                "RejectedByHub",
            )
            assert [e.type for e in events] == [EventType.STATUS_REJECTED]
            assert STATUS_WRITE_ERRORS.labels("rejected")._value.get() == rejected + 1
            # Retried after the queue's backoff (0.05 s first): the same refusal is counted
            # again but not reported again.
            await _settle(clock, 0.06)
            assert len(hub.bodies) == 3
            assert STATUS_WRITE_ERRORS.labels("rejected")._value.get() == rejected + 2
            assert len(events) == 1
            # The next try succeeds.
            await _settle(clock, 0.11)
            assert len(hub.bodies) == 4 and writer.writes == 1
            writer.queue.shut_down()


async def test_an_unexpected_error_is_retried_and_does_not_end_the_writer() -> None:
    clock = FakeClock()
    hub = _Hub(ApiError("the hub said 503", status=503))
    events: list[EventRow] = []
    calls = 0

    def member(_key: ResourceKey, _cluster: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in a lookup")
        return COPY

    writer = _writer(hub, clock, events, member=member)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            writer.mark(KEY)
            await _settle(clock)
            assert hub.bodies == []  # the bug: nothing written, the loop still runs
            await _settle(clock, 0.06)
            assert len(hub.bodies) == 1  # the 503: retried again
            await _settle(clock, 0.11)
            assert len(hub.bodies) == 2 and writer.writes == 1
            assert events == []  # neither is a refusal
            writer.queue.shut_down()


async def test_copies_not_applied_yet_hold_the_write_until_the_last_lands_or_the_rollout_stalls() -> None:
    """A rollout writes each template once, when its copies have landed, not once on placement
    and again per member (each write is a PUT of the whole object and a watch event back)."""
    clock = FakeClock()
    hub = _Hub()
    landed: dict[tuple[str, str], Any] = {}
    writer = StatusWriter(
        hub=hub,  # type: ignore[arg-type]
        discovery=_Discovery(),  # type: ignore[arg-type]
        template=lambda key: {**TEMPLATE, "metadata": {**TEMPLATE["metadata"], "name": key.name}},
        placed=lambda _key: ["eu", "us"],
        member=lambda key, cluster: landed.get((key.name, cluster)),
        settle=10.0,
        clock=clock,
    )

    def written(name: str) -> list[dict[str, Any]]:
        return [b["status"] for b in hub.bodies if b["metadata"]["name"] == name]

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            writer.mark(KEY)  # placed: no copy yet
            await _settle(clock, 2.0)
            landed["web", "eu"] = COPY
            writer.mark(KEY)
            await _settle(clock, 2.0)
            assert hub.bodies == []  # us still to come, 4 s of 10 held
            landed["web", "us"] = COPY
            writer.mark(KEY)
            await _settle(clock)
            assert len(written("web")) == 1 and written("web")[0]["readyReplicas"] == 4

            # A copy that never lands: written when settle has passed, saying so.
            other = ResourceKey("apps", "Deployment", "shop", "api")
            landed["api", "eu"] = COPY
            writer.mark(other)
            await _settle(clock)
            await _settle(clock, 9.0)
            assert written("api") == []
            await _settle(clock, 1.5)
            assert len(written("api")) == 1
            available = {c["type"]: c for c in written("api")[0]["conditions"]}["Available"]
            assert "us: not applied yet" in available["message"]

            # A slow rollout (a member's backlog outlasting settle) that keeps moving: each copy
            # that lands restarts the wait, so the template is still written once, complete.
            slow = ResourceKey("apps", "Deployment", "shop", "batch")
            writer.mark(slow)  # placed
            await _settle(clock, 8.0)
            landed["batch", "eu"] = COPY
            writer.mark(slow)
            await _settle(clock, 7.0)  # 15 s after placement, 7 after the last copy landed
            assert written("batch") == []
            landed["batch", "us"] = COPY
            writer.mark(slow)
            await _settle(clock)
            assert len(written("batch")) == 1 and written("batch")[0]["readyReplicas"] == 4
            writer.queue.shut_down()
