"""Write the members' aggregated status into the hub templates, coalesced and conflict-safe.

A member status change marks its resource; each resource is written at most once per
`min_interval` (the work queue's delayed add collapses a burst of member updates into one
write), only when the aggregate differs from what the hub object already shows, and a 409
(someone else wrote the object meanwhile) re-reads the object and tries again.

Copies not applied yet are not news on their own: while a placed cluster has no copy yet, the
resource is held and written once the last copy lands, or when `settle` seconds pass without a
new copy landing (counted from placement, and afresh from each copy that lands: a rollout that
is moving is waited for, one that is stuck is not). Without that, a rollout wrote each template
twice or more — once on placement ("not applied yet" in every cluster) and again as the copies
landed one member at a time — each write a status PUT of the whole object and a watch event
back to every hub informer. Counted from placement only, the hold ran out under a bulk rollout
whose members' backlogs outlast `settle`. Measured (bench/propagation.py, bare member
apiservers): one write per template for the bulk rollout (206 for 200 templates, the 6 extra
being templates changed during it); the ~1,400 the bench's whole run counts for 1,000 templates
are its own doing after the bulk (single updates, and member statuses it writes to time status
up). A member that never gets its copy still shows in the status, `settle` seconds after the
last copy that did land.

A write the hub's apiserver *refuses* (400/422: the members' values made the status invalid,
or an admission webhook on the hub says no) is not retried as if it were transient: the
template gets condition ``StatusAggregated=False`` with the apiserver's reason (written on its
own, on top of the status it already has), an event is recorded once per new refusal, the
`federation_hub_status_write_errors_total` metric counts it, and the key comes back with
exponential backoff (and at once when a member's status changes again).

The loop is `federation.runtime.run_workers`: the refusal above is its `on_error` hook, and every
other error — the hub unreachable, a 5xx, a bug — follows the one policy of every loop (a log
line with the key, a metric, a retry with per-key backoff), never ending the writer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from federation.errors import ApiError, ConflictError, FederationError, KubeError, NotFoundError
from federation.informers import Clock, RealClock, WorkQueue
from federation.informers.ratelimit import ItemExponentialLimiter
from federation.kube import GVK, Discovery, KubeClient, Obj
from federation.kube.keys import ResourceKey
from federation.metrics import STATUS_WRITE_ERRORS, STATUS_WRITES
from federation.runtime import Result, run_workers
from federation.status.aggregate import aggregate_status, merge_conditions, supports_hub_status
from federation.status.bounds import cut
from federation.store import EventRow, EventType, ObjectRef

log = logging.getLogger(__name__)

#: Where to find what the status is made of: the hub template, the clusters it is placed on,
#: and each member's copy (cluster -> object), all from in-memory caches.
TemplateLookup = Callable[[ResourceKey], Obj | None]
PlacedLookup = Callable[[ResourceKey], list[str]]
MemberLookup = Callable[[ResourceKey, str], Obj | None]
#: Records an event (the state store's `append_events`, for one row).
EventRecorder = Callable[[EventRow], Awaitable[None]]

STATUS_AGGREGATED = "StatusAggregated"


class StatusWriter:
    def __init__(
        self,
        *,
        hub: KubeClient,
        discovery: Discovery,
        template: TemplateLookup,
        placed: PlacedLookup,
        member: MemberLookup,
        min_interval: float = 1.0,
        settle: float = 10.0,
        workers: int = 4,
        record: EventRecorder | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.hub = hub
        self.discovery = discovery
        self.template = template
        self.placed = placed
        self.member = member
        self.min_interval = min_interval
        self.settle = settle
        self.workers = workers
        self.clock = clock or RealClock()
        self.queue: WorkQueue[ResourceKey] = WorkQueue(
            "hub-status", rate_limiter=ItemExponentialLimiter(0.05, 30.0), clock=self.clock
        )
        self._last_write: dict[ResourceKey, float] = {}
        self._refused: dict[ResourceKey, str] = {}
        #: Since when a resource has waited for a copy not applied yet, and how many of its
        #: copies had landed then (see the docstring).
        self._missing_since: dict[ResourceKey, tuple[float, int]] = {}
        self.record = record
        self.writes = 0

    def mark(self, key: ResourceKey) -> None:
        """A member copy of `key` changed: write its aggregate soon (coalesced)."""
        last = self._last_write.get(key)
        now = self.clock.now()
        delay = 0.0 if last is None else max(0.0, last + self.min_interval - now)
        self.queue.add_after(key, delay)

    async def run(self) -> None:
        await run_workers(
            self.queue,
            self._reconcile,
            name="hub-status",
            workers=self.workers,
            describe=_extra,
            on_error=self._on_error,
        )

    async def _reconcile(self, key: ResourceKey) -> Result | None:
        held = self._held_for(key)
        if held is not None:
            return Result(requeue_after=held)
        await self.write(key)
        return None

    def _held_for(self, key: ResourceKey) -> float | None:
        """Seconds `key` is still held because a placed cluster has no copy yet (None: write)."""
        template, placed = self.template(key), self.placed(key)
        if template is None or not supports_hub_status(template):
            self._missing_since.pop(key, None)
            return None
        present = sum(self.member(key, c) is not None for c in placed)
        if present == len(placed):
            self._missing_since.pop(key, None)
            return None
        now = self.clock.now()
        since, seen = self._missing_since.get(key, (now, -1))
        if present > seen:
            since = now  # a copy landed: the rollout is moving, wait for the rest afresh
            self._missing_since[key] = (since, present)
        left = since + self.settle - now
        return left if left > 0 else None

    async def _on_error(self, key: ResourceKey, exc: FederationError) -> bool:
        """A refusal by the hub (400/422) is reported as a condition and an event; anything
        else is left to the loop's own policy."""
        if not (isinstance(exc, ApiError) and exc.status in (400, 422)):
            return False
        try:
            await self._refused_by_hub(key, exc)
        except Exception:  # a bug in the reporting must not end the loop either
            log.exception("status of %s: reporting the hub's refusal failed", key, extra=_extra(key))
        return True

    async def write(self, key: ResourceKey) -> bool:
        """Write `key`'s aggregated status if it changed; returns whether a write happened."""
        template = self.template(key)
        for _attempt in range(3):
            if template is None or not supports_hub_status(template):
                return False
            placed = self.placed(key)
            members = {c: obj for c in placed if (obj := self.member(key, c)) is not None}
            status = aggregate_status(template, members, placed=placed, now=_now())
            if status is None:
                return False
            current: Mapping[str, Any] = template.get("status") or {}
            if "conditions" in status:
                status["conditions"] = merge_conditions(
                    list(current.get("conditions") or []), status["conditions"]
                )
            if _same(current, status):
                return False
            try:
                await self._put(template, status)
            except ConflictError:
                template = await self._refetch(template)  # the cache may lag: build on the latest
                continue
            except NotFoundError:
                return False
            log.debug(
                "status of %s written: %d of %d placed copies seen; changed: %s",
                key,
                len(members),
                len(placed),
                ", ".join(sorted(k for k, v in status.items() if current.get(k) != v)),
                extra=_extra(key),
            )
            self._last_write[key] = self.clock.now()
            self._refused.pop(key, None)
            self.writes += 1
            STATUS_WRITES.inc()
            return True
        log.warning("status of %s: gave up after repeated conflicts", key)
        return False

    async def _refused_by_hub(self, key: ResourceKey, exc: ApiError) -> None:
        """The condition, the event, the metric and one log line of a refused status write."""
        reason = cut(str(exc))
        STATUS_WRITE_ERRORS.labels("rejected").inc()
        if self._refused.get(key) == reason:
            return  # said already; the backoff brings the next attempt
        self._refused[key] = reason
        log.warning("the hub refused the aggregated status of %s: %s", key, reason, extra=_extra(key))
        if self.record is not None:
            try:
                await self.record(
                    EventRow(
                        type=EventType.STATUS_REJECTED,
                        message=f"{key}: the hub refused the aggregated status: {reason}",
                        ref=ObjectRef(key.group, key.kind, key.namespace, key.name),
                    )
                )
            except Exception as err:  # the store has its own retries; the condition still goes
                log.warning("status of %s: recording the refusal failed: %s", key, err, extra=_extra(key))
        template = self.template(key)
        if template is None:
            return
        current: Mapping[str, Any] = template.get("status") or {}
        condition = {
            "type": STATUS_AGGREGATED,
            "status": "False",
            "reason": "RejectedByHub",
            "message": f"the members' aggregated status was refused: {reason}",
            "lastUpdateTime": _now(),
            "lastTransitionTime": _now(),
        }
        others = [c for c in current.get("conditions") or [] if c.get("type") != STATUS_AGGREGATED]
        try:
            await self._put(template, {"conditions": [*others, condition]})
        except KubeError as err:
            log.warning("status of %s: the StatusAggregated condition was refused too: %s", key, err)

    async def _put(self, template: Obj, status: dict[str, Any]) -> None:
        """PUT /status of the whole object as we last saw it, with the new status.

        The whole object, not just its name and resourceVersion: a status PUT of a built-in kind
        takes the metadata it is given (the apiserver resets only spec and labels), so a body
        without them would strip the template's finalizers (ours among them) and annotations.
        The resourceVersion makes it conditional: a newer object is a 409, re-read and retried.
        The cached object's managedFields (cut to its last writer by the hub's informers) is
        left out: a managedFields given in an update replaces the live one.
        """
        res = await self.discovery.resource_for(GVK.of(template))
        meta = {k: v for k, v in (template.get("metadata") or {}).items() if k != "managedFields"}
        body = {**template, "metadata": meta, "status": {**(template.get("status") or {}), **status}}
        await self.hub.replace(res, body, subresource="status")

    async def _refetch(self, template: Obj) -> Obj | None:
        res = await self.discovery.resource_for(GVK.of(template))
        meta = template["metadata"]
        try:
            return await self.hub.get(res, meta["name"], meta.get("namespace") if res.namespaced else None)
        except NotFoundError:
            return None


def _same(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in new.items())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _extra(key: ResourceKey) -> dict[str, str]:
    return {"namespace": key.namespace, "object_name": key.name, "kind": key.kind}
