"""Which clusters get a template's new revision now: one step of a staged rollout.

Pure: the caller brings the policy's `RolloutStrategy`, the chosen clusters with their labels,
what the rollout has done so far (`RolloutState`, kept in Postgres) and what each cluster's copy
is doing (`CopyState`, from the works and member status); `step` answers the next state — the
clusters *released* to the new revision (every other chosen cluster keeps the previous one),
the stage, the phase and, always, the reason in words (what `federation rollout status` and the
policy's condition show).

The rules, in the order `step` applies them:

- **Stages** come from `assign`: a cluster belongs to the first stage that takes it; clusters no
  stage takes form an implicit last stage (``rest``). Recomputed at every step, so a cluster
  that joins mid-rollout falls into its stage: an earlier stage's gets the new revision at once,
  the current stage's in its turn, a later stage's keeps the previous revision until then. A
  cluster no longer chosen (failover, unjoin) simply leaves its stage.
- **Halted and rolled back are final** for this revision; only a newer revision (a new state
  from `start`) moves anything again. Complete is final too.
- **A failure fails the gate at once**: a released copy whose apply was refused, or whose
  health is Degraded, ends the rollout (`onFailure`).
- **Release**: every cluster of an earlier stage; in the current stage, clusters in name order
  until ``maxConcurrentClusters`` of them are updating (released but not yet Healthy on the new
  revision); later stages none. Released stays released (no cluster goes back to the previous
  revision except by rollback), so a restart never un-releases, and since the released set is
  saved before any work is written, no cluster jumps ahead either.
- **Gate**: the stage passes once all its clusters run the new revision and the last of them
  has been Healthy for ``waitAfter``; with ``approval`` it then waits for its approval.
- **Deadline**: counted from the stage's start; waiting for approval does not count (the gate
  had passed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from federation.api.rollout import OnFailure, RolloutStrategy, seconds

REST = "rest"
"""The implicit last stage's name: the clusters no stage of the policy takes."""


class Phase(StrEnum):
    PROGRESSING = "Progressing"
    WAITING_APPROVAL = "WaitingApproval"
    COMPLETE = "Complete"
    HALTED = "Halted"
    ROLLED_BACK = "RolledBack"

    @property
    def final(self) -> bool:
        return self in (Phase.COMPLETE, Phase.HALTED, Phase.ROLLED_BACK)


@dataclass(frozen=True)
class Stage:
    name: str
    clusters: tuple[str, ...]
    concurrency: int
    wait_after: float
    approval: bool
    deadline: float


@dataclass(frozen=True)
class CopyState:
    """A chosen cluster's copy, as the rollout reads it."""

    on_new: bool = False
    """The member holds the new revision (its work is applied with the new desired hash)."""
    healthy_since: float | None = None
    """Since when it has been Healthy on the new revision (None: not Healthy)."""
    failure: str | None = None
    """Why it can never pass (the apply refused, Degraded), in words."""


@dataclass(frozen=True)
class RolloutState:
    stage: int
    stage_started: float
    phase: Phase = Phase.PROGRESSING
    released: frozenset[str] = frozenset()
    approved: frozenset[str] = frozenset()
    """Names of the stages someone approved (ahead of time too)."""
    reason: str = ""
    failed_stage: str | None = None


def start(now: float) -> RolloutState:
    """A new revision's rollout: the first stage, nothing released yet."""
    return RolloutState(stage=0, stage_started=now, reason="starting")


def assign(strategy: RolloutStrategy, clusters: Mapping[str, Mapping[str, str]]) -> list[Stage]:
    """The stages with their clusters (name order), the implicit rest last when it holds any."""
    taken: set[str] = set()
    stages = []
    for spec in strategy.stages:
        mine = sorted(c for c, labels in clusters.items() if c not in taken and spec.takes(c, labels))
        taken.update(mine)
        stages.append(
            Stage(
                name=spec.name,
                clusters=tuple(mine),
                concurrency=spec.concurrency(len(mine)),
                wait_after=seconds(spec.wait_after),
                approval=spec.approval,
                deadline=seconds(spec.deadline),
            )
        )
    rest = sorted(set(clusters) - taken)
    if rest:
        last = strategy.stages[-1]
        stages.append(
            Stage(REST, tuple(rest), len(rest), seconds(last.wait_after), False, seconds(last.deadline))
        )
    return stages


def step(
    strategy: RolloutStrategy,
    state: RolloutState,
    stages: Sequence[Stage],
    copies: Mapping[str, CopyState],
    now: float,
) -> RolloutState:
    """The rollout's next state (see the module docstring for the rules)."""
    if state.phase.final:
        return state
    chosen = {c for s in stages for c in s.clusters}
    released = frozenset(state.released & chosen)
    for done in stages[: state.stage]:
        released |= set(done.clusters)
    failures = sorted((c, copies[c].failure) for c in released if c in copies and copies[c].failure)
    if failures:
        return _fail(strategy, state, stages, released, "; ".join(f"{c}: {why}" for c, why in failures))
    while state.stage < len(stages):
        stage = stages[state.stage]
        released |= _release(stage, released, copies)
        waiting = [c for c in stage.clusters if not _settled(copies.get(c))]
        if waiting:
            if now - state.stage_started > stage.deadline:
                unsettled = ", ".join(f"{c} ({_why(copies.get(c), c in released)})" for c in waiting)
                return _fail(
                    strategy,
                    state,
                    stages,
                    released,
                    f"not Healthy within {duration(stage.deadline)}: {unsettled}",
                )
            updating = [c for c in waiting if c in released]
            return replace(
                state,
                released=released,
                phase=Phase.PROGRESSING,
                reason=f"stage {stage.name}: waiting for {', '.join(updating)} "
                "to run the new revision Healthy"
                + (
                    f" ({len(waiting) - len(updating)} more after them)"
                    if len(waiting) > len(updating)
                    else ""
                ),
            )
        since = max((copies[c].healthy_since or 0.0 for c in stage.clusters), default=state.stage_started)
        soaked = now - max(since, state.stage_started)
        if soaked < stage.wait_after:
            return replace(
                state,
                released=released,
                phase=Phase.PROGRESSING,
                # An end time, not a countdown: the reason is stored and shown, and a text that
                # changed every second would be a write every second per rollout.
                reason=f"stage {stage.name}: soaking until {_clock(now - soaked + stage.wait_after)} "
                f"(Healthy for {duration(stage.wait_after)})",
            )
        if stage.approval and stage.name not in state.approved:
            return replace(
                state,
                released=released,
                phase=Phase.WAITING_APPROVAL,
                reason=f"stage {stage.name}: Healthy for {duration(stage.wait_after)}, waiting for approval "
                "(federation rollout approve)",
            )
        state = replace(state, stage=state.stage + 1, stage_started=now)
    return replace(state, released=released, phase=Phase.COMPLETE, reason="every stage passed")


def _release(stage: Stage, released: frozenset[str], copies: Mapping[str, CopyState]) -> frozenset[str]:
    """The stage's clusters to release now: in name order, while fewer than its concurrency are
    updating (released but not settled)."""
    updating = sum(1 for c in stage.clusters if c in released and not _settled(copies.get(c)))
    more = set()
    for c in stage.clusters:
        if updating >= stage.concurrency:
            break
        if c not in released:
            more.add(c)
            updating += 1
    return frozenset(more)


def _settled(copy: CopyState | None) -> bool:
    return copy is not None and copy.on_new and copy.healthy_since is not None


def _why(copy: CopyState | None, released: bool) -> str:
    if not released:
        return "not started"
    if copy is None or not copy.on_new:
        return "new revision not applied yet"
    return "not Healthy"


def _fail(
    strategy: RolloutStrategy,
    state: RolloutState,
    stages: Sequence[Stage],
    released: frozenset[str],
    why: str,
) -> RolloutState:
    name = stages[state.stage].name if state.stage < len(stages) else REST
    rollback = strategy.on_failure == OnFailure.ROLLBACK
    return replace(
        state,
        released=released,
        phase=Phase.ROLLED_BACK if rollback else Phase.HALTED,
        failed_stage=name,
        reason=f"stage {name} failed: {why}; "
        + (
            "the clusters it reached are back on the previous revision"
            if rollback
            else "clusters not reached keep the previous revision"
        ),
    )


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%SZ")


def duration(s: float) -> str:
    """Seconds in words for people: ``45s``, ``2.5m``, ``1.5h``."""
    s = max(0.0, s)
    if s >= 3600:
        return _short(s / 3600) + "h"
    if s >= 60:
        return _short(s / 60) + "m"
    return f"{s:.0f}s"


def _short(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")
