"""The plan itself: for each template, the governing policy, the decision and the overrides.

Everything decided here is decided by the controller's pipeline (`federation.hub.pipeline`);
this module only arranges its answer into rows (and, for people, what each override changes).

Besides where each template goes, the plan says what the policy does around the copies: when
they are deleted or orphaned (``deletionPolicy``), whether anything is applied at all
(``suspend``), and, with ``propagateDependencies``, which objects follow a workload. A template
no policy selects but that a workload depends on is planned where its workloads go, because
that is where propagation will put it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any

from federation.api import (
    DeletionPolicy,
    Placement,
    PolicyLike,
    ReplicaSchedulingType,
    object_ref,
    ref_of,
)
from federation.hub.pipeline import Copy, Fleet, Follower, Matched, TemplatePlan, plan_template
from federation.placement import ClusterSnapshot, snapshot_from_entry
from federation.placement.filters import static_weights, uses_dynamic_weights
from federation.placement.stages import Stage, assign, duration
from federation.plan.inputs import PlanInputs
from federation.translate import (
    OWNERSHIP,
    DependencyRef,
    Ownership,
    diff,
    format_policy,
    hub_id,
    translate,
)
from federation.translate.protected import Protection
from federation.validation import identity_problems

#: What never propagates, as a controller with the default settings sees it (``plan`` has no
#: hub to learn which Secrets MemberClusters reference, nor the controller's --deny-* flags).
PROTECTION = Protection()


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
    stage: str | None = None
    """The rollout stage a change of the template reaches this cluster in (``spec.rollout``)."""


@dataclass(frozen=True)
class DependencyRow:
    """One object a workload references, which follows it (``propagateDependencies``)."""

    ref: str
    given: bool
    """Whether the object is among the files given to ``plan`` (if not, it must exist on the hub)."""


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
    deletion_policy: DeletionPolicy | None = None
    """The governing policy's deletionPolicy, ``Delete`` or ``Orphan`` (None when no policy governs
    the template)."""
    suspended: bool = False
    """The governing policy is suspended: the decision stands, nothing is applied."""
    dependencies: tuple[DependencyRow, ...] | None = None
    """What follows this workload to its clusters; None unless the policy propagates dependencies."""
    dependency_of: tuple[str, ...] = ()
    """The workloads this template follows as a dependency (``propagateDependencies``)."""
    rollout: tuple[str, ...] | None = None
    """How a change of the template reaches its clusters, a line per stage in order; None
    unless the policy has ``spec.rollout`` (a change then goes everywhere at once)."""

    @property
    def ref(self) -> str:
        return object_ref(self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class PlanReport:
    resources: tuple[ResourcePlan, ...]
    policy_problems: tuple[str, ...] = ()
    """What the admission webhook would refuse in the given override policies (same checks,
    same words: `federation.validation`)."""

    @property
    def errors(self) -> tuple[str, ...]:
        return self.policy_problems + tuple(row.error for r in self.resources for row in r.rows if row.error)


@dataclass(frozen=True)
class _Placed:
    """A template run through the pipeline's first stage, and through both when governed."""

    resource: Mapping[str, Any]
    matched: Matched
    plan: TemplatePlan | None

    @property
    def losers(self) -> tuple[str, ...]:
        return tuple(f"{p.ref}: {why}" for p, why in self.matched.losers)


def _scheduling_text(placement: Placement, replicas: int | None) -> str:
    s = placement.scheduling
    if replicas is None:
        return "not a workload (no spec.replicas): a copy in every chosen cluster"
    if s.type is ReplicaSchedulingType.DUPLICATED:
        return f"Duplicated: {replicas} replicas in every chosen cluster"
    how = "equal weights"
    if static_weights(placement):
        how = "weights"
    elif uses_dynamic_weights(placement):
        how = "available replicas"
    return f"Divided by {how}: {replicas} replicas in total"


def _stage_text(stage: Stage) -> str:
    """``canary: member-1 (1 at a time; Healthy for 10m, then approval; deadline 30m)``."""
    clusters = ", ".join(stage.clusters) or "no cluster"
    gate = f"Healthy for {duration(stage.wait_after)}" + (", then approval" if stage.approval else "")
    deadline = duration(stage.deadline)
    pace = "all at once" if stage.concurrency >= len(stage.clusters) else f"{stage.concurrency} at a time"
    return f"{stage.name}: {clusters} ({pace}; {gate}; deadline {deadline})"


def _chosen_reason(
    *, placement: Placement, cluster: str, labels: Mapping[str, str], replicas: int | None
) -> str:
    weights = static_weights(placement)
    if replicas is None or weights is None:
        return "selected"
    return f"selected, weight {max(w.weight for w in weights if w.matches(cluster, labels))}"


def _replicas_of(resource: Mapping[str, Any]) -> int | None:
    spec = resource.get("spec")
    value = spec.get("replicas") if isinstance(spec, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_Key = tuple[str, str, str, str]
"""apiVersion, kind, namespace ("" for none) and name: how templates and dependencies are matched."""


def _key_of(resource: Mapping[str, Any]) -> _Key:
    meta = resource.get("metadata") or {}
    return (
        str(resource["apiVersion"]),
        str(resource["kind"]),
        meta.get("namespace") or "",
        str(meta["name"]),
    )


def _dependency_key(dep: DependencyRef) -> _Key:
    return (dep.api_version, dep.kind, dep.namespace or "", dep.name)


def _ownership(policy: PolicyLike, hub: str) -> Ownership:
    return Ownership(
        hub=hub_id(hub), policy=format_policy(policy.kind, policy.metadata.namespace, policy.metadata.name)
    )


def _chosen_row(
    resource: Mapping[str, Any],
    copy: Copy,
    *,
    snapshot: ClusterSnapshot,
    policy: PolicyLike,
    reason: str,
    hub: str,
) -> ClusterRow:
    """The row of a chosen cluster: the override rules that apply there and what they change."""
    labels = tuple(f"{r.policy} rule[{r.rule_index}]" for r in copy.rules)
    if copy.error is not None or copy.manifest is None:
        return ClusterRow(snapshot.name, True, copy.replicas, reason, labels, error=copy.error)
    plain = translate(
        resource,
        cluster=snapshot,
        replicas=copy.replicas,
        overrides=(),
        ownership=_ownership(policy, hub),
        retain_fields=policy.spec.retain_fields,
    ).manifest
    final = deepcopy(dict(copy.manifest))
    for m in (plain, final):
        m["metadata"]["annotations"].pop(OWNERSHIP.hash_annotation, None)
    changes = tuple(c.describe() for c in diff(plain, final))
    return ClusterRow(snapshot.name, True, copy.replicas, reason, labels, changes)


def _follows(placed: Iterable[_Placed]) -> dict[_Key, list[Follower]]:
    """For every object some placed workload depends on (under propagateDependencies): the
    workloads it follows, in input order."""
    out: dict[_Key, list[Follower]] = {}
    for p in placed:
        policy, deps = p.matched.winner, p.matched.dependencies
        if policy is None or p.plan is None or not deps:
            continue
        follow = Follower(workload=ref_of(p.resource), policy=policy, clusters=p.plan.decision.cluster_names)
        for dep in deps:
            out.setdefault(_dependency_key(dep), []).append(follow)
    return out


def _place(
    resource: Mapping[str, Any],
    *,
    inputs: PlanInputs,
    fleet: Fleet,
    hub: str,
    followers: Sequence[Follower] = (),
) -> _Placed:
    """The controller's pipeline, as a controller with the default settings would run it."""
    matched, plan = plan_template(
        resource,
        name=ref_of(resource),
        policies=inputs.policies,
        overrides=inputs.overrides,
        fleet=fleet,
        followers=followers,
        protection=PROTECTION,
        hub=hub,
    )
    return _Placed(resource, matched, plan)


def build_plan(inputs: PlanInputs, *, hub: str = "hub") -> PlanReport:
    """The plan for every template of ``inputs``, in input order."""
    snapshots = [snapshot_from_entry(e) for e in inputs.clusters]
    fleet = Fleet.of(snapshots)
    placed = [_place(r, inputs=inputs, fleet=fleet, hub=hub) for r in inputs.resources]
    follows = _follows(placed)
    # A template no policy selects follows the workloads that reference it (the second pass).
    placed = [
        _place(p.resource, inputs=inputs, fleet=fleet, hub=hub, followers=follows[_key_of(p.resource)])
        if p.matched.winner is None and _key_of(p.resource) in follows
        else p
        for p in placed
    ]
    given = {_key_of(r) for r in inputs.resources}
    plans = [_resource_plan(p, snapshots=snapshots, follows=follows, given=given, hub=hub) for p in placed]
    problems = tuple(line for policy in inputs.overrides for line in identity_problems(policy))
    return PlanReport(resources=tuple(plans), policy_problems=problems)


def _resource_plan(
    p: _Placed,
    *,
    snapshots: list[ClusterSnapshot],
    follows: Mapping[_Key, list[Follower]],
    given: set[_Key],
    hub: str,
) -> ResourcePlan:
    resource, matched = p.resource, p.matched
    meta = resource.get("metadata") or {}
    replicas = _replicas_of(resource)
    followed = follows.get(_key_of(resource), [])
    base = ResourcePlan(
        api_version=str(resource["apiVersion"]),
        kind=str(resource["kind"]),
        namespace=meta.get("namespace"),
        name=str(meta["name"]),
        policy=None,
        priority=None,
        losers=p.losers,
        scheduling="",
        replicas=replicas,
        unschedulable="no policy selects this resource: it stays on the hub",
        rows=tuple(ClusterRow(s.name, False, None, "no policy selects the resource") for s in snapshots),
        dependency_of=tuple(f.workload for f in followed),
    )
    policy = matched.winner
    if matched.refusal is not None:
        return replace(
            base,
            policy=policy.ref if policy is not None else None,
            priority=policy.spec.priority if policy is not None else None,
            scheduling="none: " + matched.refusal,
            unschedulable=matched.refusal,
            rows=tuple(ClusterRow(s.name, False, None, matched.refusal) for s in snapshots),
        )
    if p.plan is None:
        return base
    if matched.inherited:
        return _dependency_plan(base, resource, p.plan, snapshots=snapshots, hub=hub)
    assert policy is not None
    decision = p.plan.decision
    placement = policy.spec.placement
    copies = {c.cluster: c for c in p.plan.copies}
    rows: list[ClusterRow] = []
    for snap in snapshots:
        copy = copies.get(snap.name)
        if copy is None:
            rows.append(ClusterRow(snap.name, False, None, decision.excluded.get(snap.name, "")))
            continue
        reason = _chosen_reason(placement=placement, cluster=snap.name, labels=snap.labels, replicas=replicas)
        rows.append(_chosen_row(resource, copy, snapshot=snap, policy=policy, reason=reason, hub=hub))
    dependencies = (
        None
        if matched.dependencies is None
        else tuple(DependencyRow(ref=d.ref, given=_dependency_key(d) in given) for d in matched.dependencies)
    )
    rollout = None
    if policy.spec.rollout is not None:
        stages = assign(policy.spec.rollout, {s.name: s.labels for s in snapshots if s.name in copies})
        stage_of = {c: st.name for st in stages for c in st.clusters}
        rows = [replace(r, stage=stage_of.get(r.cluster)) for r in rows]
        rollout = (*(_stage_text(st) for st in stages), f"on failure: {policy.spec.rollout.on_failure.value}")
    return replace(
        base,
        rollout=rollout,
        policy=policy.ref,
        priority=policy.spec.priority,
        scheduling=_scheduling_text(placement, replicas),
        unschedulable=decision.unschedulable,
        rows=tuple(rows),
        deletion_policy=policy.spec.deletion_policy,
        suspended=policy.spec.suspend,
        dependencies=dependencies,
    )


def _dependency_plan(
    base: ResourcePlan,
    resource: Mapping[str, Any],
    plan: TemplatePlan,
    *,
    snapshots: list[ClusterSnapshot],
    hub: str,
) -> ResourcePlan:
    """A template no policy selects, but that workloads depend on: it goes where they go."""
    copies = {c.cluster: c for c in plan.copies}
    governing = plan.matched.governing
    assert governing is not None
    rows: list[ClusterRow] = []
    for snap in snapshots:
        copy = copies.get(snap.name)
        if copy is None:
            rows.append(
                ClusterRow(
                    snap.name,
                    False,
                    None,
                    "no policy selects the resource, and no workload it follows goes here",
                )
            )
            continue
        leaders = [f for f in plan.matched.followed if snap.name in f.clusters]
        reason = "dependency of " + ", ".join(
            f.workload + (" (policy suspended)" if f.policy.spec.suspend else "") for f in leaders
        )
        rows.append(_chosen_row(resource, copy, snapshot=snap, policy=governing, reason=reason, hub=hub))
    return replace(
        base,
        scheduling="a dependency (propagateDependencies): a copy wherever the workloads it follows go",
        unschedulable=None,
        rows=tuple(rows),
    )
