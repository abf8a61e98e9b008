"""The plan itself: for each template, the governing policy, the decision and the overrides.

Besides where each template goes, the plan says what the policy does around the copies: when
they are deleted or orphaned (``deletionPolicy``), whether anything is applied at all
(``suspend``), and, with ``propagateDependencies``, which objects follow a workload. A template
no policy selects but that a workload depends on is planned where its workloads go, because
that is where propagation will put it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from federation.api import (
    DeletionPolicy,
    OverridePolicyLike,
    Placement,
    PolicyLike,
    ReplicaSchedulingType,
    object_ref,
    ref_of,
)
from federation.errors import InvalidObjectError
from federation.placement import ClusterSnapshot, Decision, Placer, match_policies, snapshot_from_entry
from federation.placement.filters import static_weights, uses_dynamic_weights
from federation.plan.inputs import PlanInputs
from federation.translate import (
    OWNERSHIP,
    DependencyRef,
    Ownership,
    dependencies_of,
    diff,
    format_policy,
    hub_id,
    resolve_overrides,
    translate,
)
from federation.translate.podspec import pod_spec
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
    """A template with its governing policy and decision (the first pass of ``build_plan``)."""

    resource: Mapping[str, Any]
    policy: PolicyLike | None
    losers: tuple[str, ...]
    decision: Decision | None
    dependencies: tuple[DependencyRef, ...] | None
    """What follows the template: None unless it is a workload whose policy propagates them."""
    refusal: str | None = None
    """Why the template is never propagated, whatever selects it (`federation.translate.protected`)."""


@dataclass(frozen=True)
class _Follow:
    """A workload that a template follows: where the workload goes, and under which policy."""

    workload: str
    policy: PolicyLike
    clusters: frozenset[str]


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
    *,
    cluster: ClusterSnapshot,
    replicas: int | None,
    reason: str,
    overrides: Iterable[OverridePolicyLike],
    ownership: Ownership,
) -> ClusterRow:
    """The row of a chosen cluster: the override rules that apply there and what they change."""
    rules = resolve_overrides(resource, cluster=cluster, policies=tuple(overrides))
    labels = tuple(f"{r.policy} rule[{r.rule_index}]" for r in rules)
    try:
        plain = translate(
            resource, cluster=cluster, replicas=replicas, overrides=(), ownership=ownership
        ).manifest
        final = translate(
            resource, cluster=cluster, replicas=replicas, overrides=rules, ownership=ownership
        ).manifest
    except InvalidObjectError as exc:  # a broken override, or one refused (IdentityError)
        return ClusterRow(cluster.name, True, replicas, reason, labels, error=str(exc))
    refusal = PROTECTION.refusal(final)
    if refusal is not None:  # e.g. an override made a Secret a token Secret
        error = f"{ref_of(resource)} on cluster {cluster.name}: the copy is {refusal.describe()}"
        return ClusterRow(cluster.name, True, replicas, reason, labels, error=error)
    for m in (plain, final):
        m["metadata"]["annotations"].pop(OWNERSHIP.hash_annotation, None)
    changes = tuple(c.describe() for c in diff(plain, final))
    return ClusterRow(cluster.name, True, replicas, reason, labels, changes)


def _follows(placed: Iterable[_Placed]) -> dict[_Key, list[_Follow]]:
    """For every object some placed workload depends on (under propagateDependencies): the
    workloads it follows, in input order."""
    out: dict[_Key, list[_Follow]] = {}
    for p in placed:
        if p.policy is None or p.decision is None or not p.dependencies:
            continue
        follow = _Follow(workload=ref_of(p.resource), policy=p.policy, clusters=p.decision.cluster_names)
        for dep in p.dependencies:
            out.setdefault(_dependency_key(dep), []).append(follow)
    return out


def _place(resource: Mapping[str, Any], *, policies: Sequence[PolicyLike], placer: Placer) -> _Placed:
    match = match_policies(resource, policies)
    losers = tuple(f"{p.ref}: {why}" for p, why in match.losers)
    if match.winner is None:
        return _Placed(resource=resource, policy=None, losers=losers, decision=None, dependencies=None)
    refusal = PROTECTION.refusal(resource)
    if refusal is not None:
        return _Placed(
            resource=resource,
            policy=match.winner,
            losers=losers,
            decision=None,
            dependencies=None,
            refusal=refusal.describe(),
        )
    spec = match.winner.spec
    decision = placer.decide(placement=spec.placement, replicas=_replicas_of(resource), previous=None)
    dependencies = (
        dependencies_of(resource) if spec.propagate_dependencies and pod_spec(resource) is not None else None
    )
    return _Placed(
        resource=resource, policy=match.winner, losers=losers, decision=decision, dependencies=dependencies
    )


def build_plan(inputs: PlanInputs, *, hub: str = "hub") -> PlanReport:
    """The plan for every template of ``inputs``, in input order."""
    snapshots = [snapshot_from_entry(e) for e in inputs.clusters]
    placer = Placer(snapshots)
    placed = [_place(r, policies=inputs.policies, placer=placer) for r in inputs.resources]
    follows = _follows(placed)
    given = {_key_of(r) for r in inputs.resources}
    plans = [
        _resource_plan(p, snapshots=snapshots, inputs=inputs, follows=follows, given=given, hub=hub)
        for p in placed
    ]
    problems = tuple(line for policy in inputs.overrides for line in identity_problems(policy))
    return PlanReport(resources=tuple(plans), policy_problems=problems)


def _resource_plan(
    p: _Placed,
    *,
    snapshots: list[ClusterSnapshot],
    inputs: PlanInputs,
    follows: Mapping[_Key, list[_Follow]],
    given: set[_Key],
    hub: str,
) -> ResourcePlan:
    resource = p.resource
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
    if p.refusal is not None and p.policy is not None:
        return replace(
            base,
            policy=p.policy.ref,
            priority=p.policy.spec.priority,
            scheduling="none: " + p.refusal,
            unschedulable=p.refusal,
            rows=tuple(ClusterRow(s.name, False, None, p.refusal) for s in snapshots),
        )
    if p.policy is None or p.decision is None:
        if followed:
            return _dependency_plan(
                base, resource, snapshots=snapshots, inputs=inputs, followed=followed, hub=hub
            )
        return base
    policy, decision = p.policy, p.decision
    placement = policy.spec.placement
    ownership = _ownership(policy, hub)
    chosen = {t.cluster: t.replicas for t in decision.targets}
    rows: list[ClusterRow] = []
    for snap in snapshots:
        if snap.name not in chosen:
            rows.append(ClusterRow(snap.name, False, None, decision.excluded.get(snap.name, "")))
            continue
        reason = _chosen_reason(placement=placement, cluster=snap.name, labels=snap.labels, replicas=replicas)
        rows.append(
            _chosen_row(
                resource,
                cluster=snap,
                replicas=chosen[snap.name],
                reason=reason,
                overrides=inputs.overrides,
                ownership=ownership,
            )
        )
    dependencies = (
        None
        if p.dependencies is None
        else tuple(DependencyRow(ref=d.ref, given=_dependency_key(d) in given) for d in p.dependencies)
    )
    return replace(
        base,
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
    *,
    snapshots: list[ClusterSnapshot],
    inputs: PlanInputs,
    followed: list[_Follow],
    hub: str,
) -> ResourcePlan:
    """A template no policy selects, but that workloads depend on: it goes where they go."""
    rows: list[ClusterRow] = []
    for snap in snapshots:
        leaders = [f for f in followed if snap.name in f.clusters]
        if not leaders:
            rows.append(
                ClusterRow(
                    snap.name,
                    False,
                    None,
                    "no policy selects the resource, and no workload it follows goes here",
                )
            )
            continue
        reason = "dependency of " + ", ".join(
            f.workload + (" (policy suspended)" if f.policy.spec.suspend else "") for f in leaders
        )
        rows.append(
            _chosen_row(
                resource,
                cluster=snap,
                replicas=None,
                reason=reason,
                overrides=inputs.overrides,
                ownership=_ownership(leaders[0].policy, hub),
            )
        )
    return replace(
        base,
        scheduling="a dependency (propagateDependencies): a copy wherever the workloads it follows go",
        unschedulable=None,
        rows=tuple(rows),
    )
