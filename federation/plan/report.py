"""The plan itself: for each template, the governing policy, the decision and the overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from federation.api import Placement, ReplicaSchedulingType, object_ref
from federation.errors import OverrideError
from federation.placement import Decision, Placer, match_policies, snapshot_from_entry
from federation.placement.filters import uses_dynamic_weights
from federation.plan.inputs import PlanInputs
from federation.translate import (
    OWNERSHIP,
    Ownership,
    diff,
    format_policy,
    hub_id,
    resolve_overrides,
    translate,
)


@dataclass(frozen=True)
class ClusterRow:
    cluster: str
    chosen: bool
    replicas: int | None
    reason: str
    rules: tuple[str, ...] = ()
    """The override rules applied on this cluster, as ``Policy ns/name rule[i]``."""
    changes: tuple[str, ...] = ()
    """What the overrides change in the member's copy, one line per field."""
    error: str | None = None


@dataclass(frozen=True)
class ResourcePlan:
    api_version: str
    kind: str
    namespace: str | None
    name: str
    policy: str | None
    priority: int | None
    losers: tuple[str, ...]
    scheduling: str
    replicas: int | None
    unschedulable: str | None
    rows: tuple[ClusterRow, ...]

    @property
    def ref(self) -> str:
        return object_ref(self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class PlanReport:
    resources: tuple[ResourcePlan, ...]

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(row.error for r in self.resources for row in r.rows if row.error)


def _scheduling_text(placement: Placement, replicas: int | None) -> str:
    s = placement.scheduling
    if replicas is None:
        return "not a workload (no spec.replicas): a copy in every chosen cluster"
    if s.type is ReplicaSchedulingType.DUPLICATED:
        return f"Duplicated: {replicas} replicas in every chosen cluster"
    pref = s.weight_preference
    how = "equal weights"
    if pref is not None and pref.static_weights:
        how = "static weights"
    elif uses_dynamic_weights(placement):
        how = "available replicas"
    return f"Divided by {how}: {replicas} replicas in total"


def _chosen_reason(
    *, placement: Placement, cluster: str, labels: Mapping[str, str], replicas: int | None
) -> str:
    s = placement.scheduling
    if replicas is None or s.type is ReplicaSchedulingType.DUPLICATED:
        return "selected"
    pref = s.weight_preference
    if pref is not None and pref.static_weights:
        weight = max(w.weight for w in pref.static_weights if w.target_cluster.matches(cluster, labels))
        return f"selected, weight {weight}"
    return "selected"


def _replicas_of(resource: Mapping[str, Any]) -> int | None:
    spec = resource.get("spec")
    value = spec.get("replicas") if isinstance(spec, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_plan(inputs: PlanInputs, *, hub: str = "hub") -> PlanReport:
    """The plan for every template of ``inputs``, in input order."""
    snapshots = [snapshot_from_entry(e) for e in inputs.clusters]
    by_name = {s.name: s for s in snapshots}
    placer = Placer(snapshots)
    plans: list[ResourcePlan] = []
    for resource in inputs.resources:
        meta = resource.get("metadata") or {}
        match = match_policies(resource, inputs.policies)
        replicas = _replicas_of(resource)
        losers = tuple(f"{p.ref}: {why}" for p, why in match.losers)
        unplaced = ResourcePlan(
            api_version=str(resource["apiVersion"]),
            kind=str(resource["kind"]),
            namespace=meta.get("namespace"),
            name=str(meta["name"]),
            policy=None,
            priority=None,
            losers=losers,
            scheduling="",
            replicas=replicas,
            unschedulable="no policy selects this resource: it stays on the hub",
            rows=tuple(ClusterRow(s.name, False, None, "no policy selects the resource") for s in snapshots),
        )
        if match.winner is None:
            plans.append(unplaced)
            continue
        policy = match.winner
        placement = policy.spec.placement
        decision: Decision = placer.decide(placement=placement, replicas=replicas, previous=None)
        ownership = Ownership(
            hub=hub_id(hub),
            policy=format_policy(policy.kind, policy.metadata.namespace, policy.metadata.name),
        )
        chosen = {t.cluster: t.replicas for t in decision.targets}
        rows: list[ClusterRow] = []
        for snap in snapshots:
            if snap.name not in chosen:
                rows.append(ClusterRow(snap.name, False, None, decision.excluded.get(snap.name, "")))
                continue
            target_replicas = chosen[snap.name]
            rules = resolve_overrides(resource, cluster=by_name[snap.name], policies=inputs.overrides)
            reason = _chosen_reason(
                placement=placement, cluster=snap.name, labels=snap.labels, replicas=replicas
            )
            labels = tuple(f"{r.policy} rule[{r.rule_index}]" for r in rules)
            try:
                plain = translate(
                    resource, cluster=snap, replicas=target_replicas, overrides=(), ownership=ownership
                ).manifest
                final = translate(
                    resource, cluster=snap, replicas=target_replicas, overrides=rules, ownership=ownership
                ).manifest
            except OverrideError as exc:
                rows.append(ClusterRow(snap.name, True, target_replicas, reason, labels, error=str(exc)))
                continue
            for m in (plain, final):
                m["metadata"]["annotations"].pop(OWNERSHIP.hash_annotation, None)
            changes = tuple(c.describe() for c in diff(plain, final))
            rows.append(ClusterRow(snap.name, True, target_replicas, reason, labels, changes))
        plans.append(
            replace(
                unplaced,
                policy=policy.ref,
                priority=policy.spec.priority,
                scheduling=_scheduling_text(placement, replicas),
                unschedulable=decision.unschedulable,
                rows=tuple(rows),
            )
        )
    return PlanReport(resources=tuple(plans))
