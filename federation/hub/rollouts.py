"""A template's staged rollout, kept in Postgres and stepped by the binder's reconcile.

The binder plans a template as always (the new revision for every chosen cluster); when the
governing policy has ``spec.rollout``, `RolloutKeeper.stage` says which of those clusters keep
the *previous* revision for now, and the binder translates that revision for them instead
(`pipeline.with_revision`). The previous revision is the template as it was when its last
rollout completed (``stable_template``, sealed like any template): the members not reached yet
keep exactly what they had, and a cluster that joins meanwhile gets it too.

What moves a rollout (`federation.placement.stages.step`, pure) is read here from the store:
each chosen cluster's work and member status (`copy_state`). A copy runs the new revision once
its work is applied with the new revision's hash *and* the member status was collected from the
object our apply wrote or a later one (resource versions are comparable integers: KEP-5504,
Kubernetes 1.35; an opaque one only counts when equal) — so a Deployment's status from before
the apply, still saying Healthy, never passes a gate. Healthy since: the later of the status's
``healthy_since`` and the apply.

Order, for restarts: the rollout row (which clusters are released) is saved before the works,
so a controller killed between the two finds the release recorded and writes the works then; no
cluster is ever written ahead of its release. While a rollout waits (progressing, for approval,
halted for an undo) the binder reconciles the template again after `poll` seconds: time passing
(a soak) is an input no watch event brings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from federation.api.rollout import RolloutStrategy
from federation.hub.keys import ResourceKey
from federation.metrics import ROLLOUT_EVENTS, ROLLOUTS
from federation.placement.stages import (
    REST,
    CopyState,
    Phase,
    RolloutState,
    Stage,
    assign,
    start,
    step,
)
from federation.store import (
    EventRow,
    EventType,
    Health,
    ObjectRef,
    PolicyId,
    ResourceId,
    RolloutCopy,
    RolloutRow,
    WorkState,
)

log = logging.getLogger(__name__)


class RolloutStore(Protocol):
    async def rollout_of(self, resource_id: ResourceId) -> RolloutRow | None: ...
    async def save_rollout(self, row: RolloutRow) -> bool: ...
    async def delete_rollout(self, resource_id: ResourceId) -> bool: ...
    async def rollout_copies(self, resource_id: ResourceId) -> list[RolloutCopy]: ...


@dataclass(frozen=True)
class Staging:
    """What the binder does with its plan: the clusters that keep the previous revision."""

    keep: frozenset[str] = frozenset()
    previous: Mapping[str, Any] | None = None
    """The previous revision (the template as it was), when `keep` is not empty."""
    requeue_after: float | None = None
    events: tuple[EventRow, ...] = ()
    phase: Phase | None = None
    """None: no rollout in progress (the template is at its stable revision)."""
    reason: str = ""


@dataclass
class RolloutSettings:
    poll: float = 1.0
    """How soon a rollout in progress (or waiting for approval) is looked at again."""
    halted_poll: float = 5.0
    """How soon a halted one is (only an undo, or a new revision, moves it)."""


@dataclass(frozen=True)
class _Input:
    key: ResourceKey
    resource_id: ResourceId
    policy_id: PolicyId
    strategy: RolloutStrategy
    template: Mapping[str, Any]
    fingerprint: str
    targets: Mapping[str, str]
    """The new revision's desired hash per chosen cluster."""
    labels: Mapping[str, Mapping[str, str]]
    """The chosen clusters' labels."""
    events: list[EventRow] = field(default_factory=list)


class RolloutKeeper:
    def __init__(
        self,
        store: RolloutStore,
        *,
        settings: RolloutSettings | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings or RolloutSettings()
        self.now = now
        #: The last row saved or read per template (None: known to have none).
        self._rows: dict[ResourceId, RolloutRow | None] = {}

    def forget(self, resource_id: ResourceId) -> None:
        self._count(self._rows.pop(resource_id, None), None)

    async def drop(self, resource_id: ResourceId) -> None:
        """The governing policy has no rollout (any more): a row known to exist goes."""
        if self._rows.get(resource_id) is not None:
            await self.store.delete_rollout(resource_id)
            self._count(self._rows[resource_id], None)
        self._rows[resource_id] = None

    async def hold(self, resource_id: ResourceId) -> None:
        """The policy is suspended: nothing moves, and the stage's deadline stops counting."""
        row = await self._row(resource_id)
        if row is None or row.target_fp is None or row.suspended_at is not None or _final(row):
            return
        suspended = datetime.fromtimestamp(self.now(), UTC)
        await self._save(replace(row, suspended_at=suspended, reason=f"suspended: {row.reason}"))

    async def stage(
        self,
        key: ResourceKey,
        *,
        resource_id: ResourceId,
        policy_id: PolicyId,
        strategy: RolloutStrategy,
        template: Mapping[str, Any],
        fingerprint: str,
        targets: Mapping[str, str],
        labels: Mapping[str, Mapping[str, str]],
    ) -> Staging:
        """Step the template's rollout and save it; which chosen clusters keep the previous revision."""
        row = await self._row(resource_id, fresh=True)
        if row is None or row.stable_fp == fingerprint:
            if row is None or row.target_fp is not None or row.policy_id != policy_id:
                reason = (
                    "back at the previous revision: the change being rolled out was reverted"
                    if row is not None and row.target_fp is not None
                    else "nothing to roll out: every cluster runs this revision"
                )
                await self._save(_baseline(resource_id, policy_id, template, fingerprint, reason))
            return Staging()
        given = _Input(key, resource_id, policy_id, strategy, template, fingerprint, targets, labels)
        return await self._step(given, row)

    async def _step(self, given: _Input, row: RolloutRow) -> Staging:
        now = self.now()
        stages = assign(given.strategy, given.labels)
        state = self._state(given, row, stages, now)
        copies = {
            c.cluster: copy_state(c, given.targets.get(c.cluster))
            for c in await self.store.rollout_copies(given.resource_id)
            if c.cluster in given.labels
        }
        new = step(given.strategy, state, stages, copies, now)
        self._transitions(given, state, new, stages)
        if new.phase is Phase.COMPLETE:
            await self._save(
                _baseline(given.resource_id, given.policy_id, given.template, given.fingerprint, new.reason)
            )
            return Staging(phase=Phase.COMPLETE, reason=new.reason, events=tuple(given.events))
        rolled_back = new.phase is Phase.ROLLED_BACK
        chosen = frozenset(given.labels)
        keep = chosen if rolled_back else chosen - new.released
        stage_of = {c: s.name for s in stages for c in s.clusters}
        clusters = {
            c: {
                "stage": stage_of.get(c, REST),
                "revision": "previous" if c in keep else "new",
                "health": _health(copies.get(c)),
            }
            for c in sorted(chosen)
        }
        await self._save(
            replace(
                row,
                policy_id=given.policy_id,
                target_fp=given.fingerprint,
                phase=new.phase.value,
                stage=new.stage,
                stage_name=stages[new.stage].name if new.stage < len(stages) else None,
                stage_started_at=datetime.fromtimestamp(new.stage_started, UTC),
                released=tuple(sorted(new.released)),
                clusters=clusters,
                reason=new.reason,
                failed_stage=new.failed_stage,
                suspended_at=None,
            )
        )
        requeue = {
            Phase.PROGRESSING: self.settings.poll,
            Phase.WAITING_APPROVAL: self.settings.poll,
            Phase.HALTED: self.settings.halted_poll,
        }.get(new.phase)
        return Staging(
            keep=keep,
            previous=row.stable_template,
            requeue_after=requeue,
            events=tuple(given.events),
            phase=new.phase,
            reason=new.reason,
        )

    def _state(self, given: _Input, row: RolloutRow, stages: list[Stage], now: float) -> RolloutState:
        """The rollout as stored, or a new one when the revision is new (the newest supersedes)."""
        if row.target_fp != given.fingerprint:
            plan = " → ".join(f"{s.name} ({', '.join(s.clusters) or 'no cluster'})" for s in stages)
            superseding = row.target_fp is not None and not _final(row)
            message = f"{given.key}: rolling out a new revision in stages: {plan}" + (
                " (it supersedes the change that was being rolled out, from the first stage)"
                if superseding
                else ""
            )
            given.events.append(_event(EventType.ROLLOUT_STARTED, message, given.key))
            return start(now)
        started = row.stage_started_at.timestamp() if row.stage_started_at else now
        if row.suspended_at is not None:
            # The suspension does not count against the stage's deadline.
            started += max(0.0, now - row.suspended_at.timestamp())
        state = RolloutState(
            stage=row.stage,
            stage_started=started,
            phase=Phase(row.phase),
            released=frozenset(row.released),
            approved=frozenset(row.approved),
            reason=row.reason,
            failed_stage=row.failed_stage,
        )
        if row.undo_requested and state.phase in (Phase.PROGRESSING, Phase.WAITING_APPROVAL, Phase.HALTED):
            reason = (
                "undone by hand (federation rollout undo): "
                "the clusters it reached are back on the previous revision"
            )
            given.events.append(_event(EventType.ROLLOUT_ROLLED_BACK, f"{given.key}: {reason}", given.key))
            return replace(state, phase=Phase.ROLLED_BACK, reason=reason, failed_stage=row.stage_name)
        return state

    def _transitions(self, given: _Input, old: RolloutState, new: RolloutState, stages: list[Stage]) -> None:
        for passed in stages[old.stage : min(new.stage, len(stages))]:
            message = (
                f"{given.key}: stage {passed.name} passed ({', '.join(passed.clusters) or 'no cluster'})"
            )
            given.events.append(_event(EventType.ROLLOUT_STAGE_PASSED, message, given.key))
        if new.phase is old.phase:
            return
        kind = {
            Phase.COMPLETE: EventType.ROLLOUT_COMPLETE,
            Phase.HALTED: EventType.ROLLOUT_HALTED,
            Phase.ROLLED_BACK: EventType.ROLLOUT_ROLLED_BACK,
        }.get(new.phase)
        if kind is not None:
            given.events.append(_event(kind, f"{given.key}: {new.reason}", given.key))
            log.log(
                logging.INFO if kind is EventType.ROLLOUT_COMPLETE else logging.WARNING,
                "%s: %s",
                given.key,
                new.reason,
            )

    async def _row(self, resource_id: ResourceId, *, fresh: bool = False) -> RolloutRow | None:
        """The cached row; read again when it may hold what a person asked (a rollout not
        finished: an approval, an undo), or when it was never read."""
        if resource_id in self._rows:
            row = self._rows[resource_id]
            if row is None or not fresh or row.phase in _SETTLED:
                return row
        row = await self.store.rollout_of(resource_id)
        self._count(self._rows.get(resource_id), row)
        self._rows[resource_id] = row
        return row

    async def _save(self, row: RolloutRow) -> None:
        await self.store.save_rollout(row)
        self._count(self._rows.get(row.resource_id), row)
        self._rows[row.resource_id] = row

    @staticmethod
    def _count(before: RolloutRow | None, after: RolloutRow | None) -> None:
        if before is not None:
            ROLLOUTS.labels(phase=before.phase).dec()
        if after is not None:
            ROLLOUTS.labels(phase=after.phase).inc()


def copy_state(copy: RolloutCopy, target: str | None) -> CopyState:
    """A chosen cluster's copy as the gate reads it (see the module docstring)."""
    if target is None or copy.desired_hash != target:
        return CopyState()
    if copy.state is WorkState.CONFLICT:
        return CopyState(failure=f"conflict: {copy.last_error or 'the member holds an object we do not own'}")
    if copy.state is WorkState.FAILED and not copy.retrying:
        return CopyState(failure=f"refused: {copy.last_error or 'the apply failed'}")
    if copy.state is not WorkState.APPLIED or copy.applied_hash != copy.desired_hash:
        return CopyState()
    if not seen_after(copy.status_resource_version, copy.work_resource_version):
        return CopyState(on_new=True)
    if copy.health is Health.DEGRADED:
        return CopyState(on_new=True, failure=f"Degraded: {copy.health_reason or 'no reason given'}")
    if copy.health is not Health.HEALTHY or copy.healthy_since is None:
        return CopyState(on_new=True)
    since = copy.healthy_since
    if copy.applied_at is not None and copy.applied_at > since:
        since = copy.applied_at
    return CopyState(on_new=True, healthy_since=since.timestamp())


def seen_after(status_version: str | None, applied_version: str | None) -> bool:
    """Whether a status collected at `status_version` is of the object our apply left at
    `applied_version`, or later."""
    if applied_version is None:
        return status_version is not None
    if status_version is None:
        return False
    if status_version.isdigit() and applied_version.isdigit():
        return int(status_version) >= int(applied_version)
    return status_version == applied_version


def _health(copy: CopyState | None) -> str:
    if copy is None or not copy.on_new:
        return "-"
    if copy.failure:
        return copy.failure
    return "Healthy" if copy.healthy_since is not None else "updating"


#: Phases nobody's request moves any more (a halted rollout can still be undone).
_SETTLED = frozenset({Phase.COMPLETE.value, Phase.ROLLED_BACK.value})


def _final(row: RolloutRow) -> bool:
    return Phase(row.phase).final


def _baseline(
    resource_id: ResourceId, policy_id: PolicyId, template: Mapping[str, Any], fingerprint: str, reason: str
) -> RolloutRow:
    """No rollout in progress: the current revision is the one every cluster keeps."""
    meta = {k: v for k, v in (template.get("metadata") or {}).items() if k != "managedFields"}
    return RolloutRow(
        resource_id=resource_id,
        policy_id=policy_id,
        stable_fp=fingerprint,
        # What translation reads: no status, no field managers (they can be most of an object).
        stable_template={**{k: v for k, v in template.items() if k != "status"}, "metadata": meta},
        phase=Phase.COMPLETE.value,
        reason=reason,
    )


def _event(kind: EventType, message: str, key: ResourceKey) -> EventRow:
    ROLLOUT_EVENTS.labels(type=kind.value).inc()
    ref = ObjectRef(api_group=key.group, kind=key.kind, namespace=key.namespace, name=key.name)
    return EventRow(type=kind, message=message, ref=ref)
