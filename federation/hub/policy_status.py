"""The status of every policy, reconciled by key when something it reports may have changed.

A policy's status says how its templates fare (``Propagated``: Postgres' counts), whether it
lost templates to another policy (``Overridden``), which templates it selects that never
propagate (``Skipped``) and whether every cluster it names exists (``ClustersResolved``).
Its key is queued on change (coalesced: one reconcile per `coalesce` seconds at most): the
policy itself, a save of a template it governs, a change of the ledger (losers, skipped,
governing), the fleet, or a member's status of one of its templates. Not a periodic scan: a
policy whose works are still in flight (Postgres' counts move as the propagators apply) is
looked at again after `interval`; a settled one only on change, plus a slow `resync` as a
safety net.

Propagation policies also carry our finalizer here (added on sight, released once a deleted
policy governs nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio

from federation.api.propagation import PolicyLike
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.ledger import PolicyLedger
from federation.hub.policies import OVERRIDE_KINDS, PROPAGATION_KINDS, AnyPolicy, PolicyCache, deleting
from federation.informers import WorkQueue
from federation.informers.clock import Clock, RealClock
from federation.kube import Obj
from federation.placement import OVERRIDDEN_CONDITION
from federation.runtime import Result, run_workers
from federation.store import PolicyId, PolicySummary

log = logging.getLogger(__name__)

#: The condition a propagation policy reports when templates it selects are never propagated.
SKIPPED_CONDITION = "Skipped"
#: The condition saying whether every cluster a policy names is a member of the fleet.
CLUSTERS_CONDITION = "ClustersResolved"
#: The condition of a policy with ``spec.rollout``: are its templates rolled out?
ROLLOUT_CONDITION = "RolledOut"
_SHOWN = 5


class PolicyWrites(Protocol):
    """The hub writes of policy status (a `Finalizers` and a status patch)."""

    async def ensure_policy(self, pkey: PolicyKey, raw: Obj) -> None: ...
    async def release_policy(self, pkey: PolicyKey, raw: Obj) -> None: ...
    async def write_status(self, pkey: PolicyKey, status: dict[str, Any]) -> None: ...


@dataclass
class PolicyStatusSettings:
    interval: float = 3.0
    """How soon a policy whose works are in flight is looked at again."""
    resync: float = 60.0
    """Every policy, as a safety net."""
    coalesce: float = 3.0
    """Changes within this many seconds make one reconcile (a bulk rollout saves templates of
    one policy by the hundred per second: its status is counted and written once per window,
    not once per save). As often as the periodic scan this replaces: each reconcile is an
    aggregate over every work of the policy in Postgres, which at 1 s cost a bulk rollout of
    5,000 copies ~20% more Postgres CPU (bench/propagation.py)."""
    workers: int = 2


class PolicyStatus:
    def __init__(
        self,
        *,
        policies: PolicyCache,
        ledger: PolicyLedger,
        policy_ids: Mapping[PolicyKey, PolicyId],
        summary: Callable[[PolicyId], Awaitable[PolicySummary]],
        members: Callable[[], set[str]],
        writes: PolicyWrites,
        settings: PolicyStatusSettings | None = None,
        clock: Clock | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policies = policies
        self.ledger = ledger
        self.policy_ids = policy_ids
        self.summary = summary
        self.members = members
        self.writes = writes
        self.settings = settings or PolicyStatusSettings()
        self.clock = clock or RealClock()
        self.now = now
        self.queue: WorkQueue[PolicyKey] = WorkQueue("hub-policies", clock=self.clock)

    def mark(self, *pkeys: PolicyKey) -> None:
        for pkey in pkeys:
            self.queue.add_after(pkey, self.settings.coalesce)

    def mark_all(self) -> None:
        self.mark(*(pkey for pkey, _ in self.policies.all()))

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._resync)
            await run_workers(
                self.queue,
                self.reconcile,
                name="policies",
                workers=self.settings.workers,
                describe=lambda k: {"kind": k.kind, "namespace": k.namespace, "object_name": k.name},
            )
            tg.cancel_scope.cancel()

    async def _resync(self) -> None:
        while True:
            self.mark_all()
            await self.clock.sleep(self.settings.resync)

    async def reconcile(self, pkey: PolicyKey) -> Result | None:
        policy = self.policies.get(pkey)
        raw = self.policies.raw(pkey)
        if policy is None or raw is None:
            return None
        current = raw.get("status") or {}
        generation = policy.metadata.generation
        clusters = clusters_resolved(named_clusters(policy), self.members(), generation)
        settled = True
        if policy.kind in OVERRIDE_KINDS:
            conditions = [clusters]
            status: dict[str, Any] = {"observedGeneration": generation}
        else:
            if policy.kind in PROPAGATION_KINDS and not deleting(policy):
                await self.writes.ensure_policy(pkey, raw)
            pid = self.policy_ids.get(pkey)
            summary = await self.summary(pid) if pid is not None else None
            propagated = propagated_condition(summary, generation)
            settled = propagated["status"] == "True" or summary is None or summary.matched == 0
            conditions = [
                propagated,
                overridden_condition(self.ledger.losses(pkey), generation),
                skipped_condition(self.ledger.skipped(pkey), generation),
                clusters,
            ]
            if isinstance(policy, PolicyLike) and policy.spec.rollout is not None:
                conditions.append(rollout_condition(self.ledger.rollouts(pkey), generation))
            if deleting(policy):
                if self.ledger.governs_any(pkey):
                    settled = False
                else:
                    await self.writes.release_policy(pkey, raw)
            status = {"observedGeneration": generation, "matchedResources": summary.matched if summary else 0}
        status["conditions"] = keep_times(current.get("conditions") or [], conditions, self.now())
        if not all(current.get(k) == v for k, v in status.items()):
            await self.writes.write_status(pkey, status)
        return None if settled else Result(requeue_after=self.settings.interval)


# -- the conditions (pure) -----------------------------------------------------------------------


def listed(items: list[str], head: str) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"{head}: " + "; ".join(items[:_SHOWN]) + more


def named_clusters(policy: AnyPolicy) -> dict[str, tuple[str, ...]]:
    """Every cluster a policy names, by the field that names it."""
    named: dict[str, tuple[str, ...]] = {}
    if isinstance(policy, PolicyLike):
        placement = policy.spec.placement
        named["spec.placement.clusterNames"] = placement.cluster_names or ()
        named["spec.placement.excludeClusters"] = placement.exclude_clusters
        for i, weight in enumerate(placement.scheduling.weights or ()):
            named[f"spec.placement.replicaScheduling.weights[{i}].clusterNames"] = weight.cluster_names or ()
    else:
        for i, rule in enumerate(policy.spec.rules):
            target = rule.target_clusters
            named[f"spec.rules[{i}].targetClusters.clusterNames"] = (
                (target.cluster_names or ()) if target else ()
            )
    return {field: names for field, names in named.items() if names}


def clusters_resolved(
    named: dict[str, tuple[str, ...]], members: set[str], generation: int | None
) -> dict[str, Any]:
    """``ClustersResolved``: whether every cluster a policy names is a member of the fleet (a
    typo in clusterNames otherwise just places nothing there, silently)."""
    unknown = [f"{field}: {name}" for field, names in named.items() for name in names if name not in members]
    return {
        "type": CLUSTERS_CONDITION,
        "status": "False" if unknown else "True",
        "reason": "UnknownClusters" if unknown else "AllClustersKnown",
        "message": listed(unknown, "not a member of the fleet")
        if unknown
        else "every cluster this policy names is a member of the fleet",
        "observedGeneration": generation,
    }


def overridden_condition(losing: list[str], generation: int | None) -> dict[str, Any]:
    return {
        "type": OVERRIDDEN_CONDITION,
        "status": "True" if losing else "False",
        "reason": "LowerPrecedence" if losing else "Governing",
        "message": "; ".join(losing[:5]) if losing else "no other policy takes precedence",
        "observedGeneration": generation,
    }


def skipped_condition(skipped: list[str], generation: int | None) -> dict[str, Any]:
    return {
        "type": SKIPPED_CONDITION,
        "status": "True" if skipped else "False",
        "reason": "ProtectedResources" if skipped else "NothingSkipped",
        "message": listed(skipped, f"{len(skipped)} selected template(s) are never propagated")
        if skipped
        else "every template this policy governs may be propagated",
        "observedGeneration": generation,
    }


def rollout_condition(
    rollouts: Mapping[ResourceKey, tuple[str, str]], generation: int | None
) -> dict[str, Any]:
    """``RolledOut``: True when no template of the policy is part-way through a staged rollout;
    otherwise which ones are, at which stage and why they wait (halted ones first)."""
    order = {"Halted": 0, "RolledBack": 1, "WaitingApproval": 2, "Progressing": 3}
    ranked = sorted(rollouts.items(), key=lambda kv: (order.get(kv[1][0], 9), kv[0]))
    if not ranked:
        return {
            "type": ROLLOUT_CONDITION,
            "status": "True",
            "reason": "Complete",
            "message": "every template runs its latest revision on every chosen cluster",
            "observedGeneration": generation,
        }
    worst = ranked[0][1][0]
    items = [f"{key}: {phase}: {reason}" for key, (phase, reason) in ranked]
    return {
        "type": ROLLOUT_CONDITION,
        "status": "False",
        "reason": worst,
        "message": listed(items, f"{len(items)} template(s) not rolled out"),
        "observedGeneration": generation,
    }


def propagated_condition(summary: PolicySummary | None, generation: int | None) -> dict[str, Any]:
    if summary is None or summary.matched == 0:
        return {
            "type": "federation.io/Propagated",
            "status": "False",
            "reason": "NothingMatched",
            "message": "no template is governed by this policy",
            "observedGeneration": generation,
        }
    ok = summary.applied == summary.placed and summary.conflicted == 0 and summary.failed == 0
    reason = (
        "Conflict"
        if summary.conflicted
        else "ApplyFailed"
        if summary.failed
        else "Applied"
        if ok
        else "Progressing"
    )
    return {
        "type": "federation.io/Propagated",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": (
            f"matched {summary.matched}, placed {summary.placed}, applied {summary.applied}, "
            f"healthy {summary.healthy}, conflicted {summary.conflicted}, failed {summary.failed}, "
            f"pending {summary.pending}"
        ),
        "observedGeneration": generation,
    }


def keep_times(
    old: list[Mapping[str, Any]], new: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """The new conditions, keeping each one's lastTransitionTime while its status holds."""
    previous = {c.get("type"): c for c in old}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and all(before.get(k) == cond.get(k) for k in ("status", "reason", "message")):
            out.append(dict(before))
            continue
        keep = before is not None and before.get("status") == cond["status"]
        out.append({**cond, "lastTransitionTime": before["lastTransitionTime"] if keep and before else stamp})
    return out
