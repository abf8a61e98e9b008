"""What the hub decides for one template, as one pure function: the controller and
`federation plan` both run it, so the plan can never disagree with the controller.

Named *pipeline* because it is one: match → follow or place → translate, each step an existing
pure module (`federation.placement`, `federation.translate`) and this module only the order and
the rules between them. It reads nothing and writes nothing: the controller gathers the inputs
(informer caches, the fleet snapshot, the previous decision from Postgres, the workloads a
dependency follows) and does the I/O with the result (save, finalizers, events); `plan` renders
the result.

Two stages, because the controller has I/O between them (registering the template and reading
its previous decision is only worth doing when a policy governs it):

1. `match_template`: which policy governs the template (rule 4, or as a dependency of the
   workloads that reference it under ``propagateDependencies``), the policies it beat, and
   whether it may propagate at all (`Outcome`: protected, unsealable).
2. `place_template`: the decision (stable: the previous decision is an input), then one `Copy`
   per chosen cluster (overrides, ownership stamp, hash; a broken override or a copy that
   protection refuses becomes a refused work).

The rule when nothing is schedulable (`keep_transient`): a cluster that held the template
keeps it only when it is out for a *transient* cause — not ready, an untolerated NoSchedule
taint, the registry's unreachable taint, or a placement unschedulable as a whole (e.g. a spread
constraint short of groups because a cluster is unreachable). A cluster out because of what
the policy asks (clusterNames, excludeClusters, a clusterSelector or a label that no longer
matches, a NoExecute taint of someone's) loses its copy like any other cluster would: the
members hold what the hub says, not what it once said.

(Past 400 lines because the result types — `Matched`, `Copy`, `TemplatePlan` — live beside the
rules that fill them; apart, each rule would be read without the shape of its answer.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from federation.api import ConflictResolution, OverridePolicyLike, PolicyLike
from federation.api.propagation import DeletionPolicy
from federation.clusters.capacity import per_replica
from federation.clusters.health import NO_READY_NODES_TAINT_KEY, UNREACHABLE_TAINT_KEY
from federation.errors import FederationError
from federation.placement import (
    TRANSIENT,
    ClusterSnapshot,
    Decision,
    Placer,
    Reason,
    ReasonCode,
    Target,
    match_policies,
)
from federation.placement.filters import uses_dynamic_weights
from federation.sealing import Sealer
from federation.store import ClusterDecision, DesiredWork
from federation.translate import (
    DependencyRef,
    Ownership,
    ResolvedOverride,
    dependencies_of,
    format_policy,
    hub_id,
    resolve_overrides,
    translate,
)
from federation.translate.podspec import pod_spec
from federation.translate.protected import Protection

NO_WORKLOAD_HERE = "no workload referencing it is placed here"

#: The registry's own NoExecute taints: a cluster that stopped answering, or whose nodes all
#: stopped reporting, past the grace period. Out for a cause that passes (`transient`), and what
#: a failover event names.
FAILOVER_TAINT_KEYS = frozenset({UNREACHABLE_TAINT_KEY, NO_READY_NODES_TAINT_KEY})


class Outcome(StrEnum):
    """What becomes of a template, before any placement."""

    UNGOVERNED = "Ungoverned"
    """No policy selects it and no workload it follows is placed: nothing of it in any member."""
    PROTECTED = "Protected"
    """A policy selects it, but it may never propagate (a credential, ...): its copies go."""
    UNSEALABLE = "Unsealable"
    """It holds sensitive values and the controller has no key to store them: nothing moves."""
    GOVERNED = "Governed"


@dataclass(frozen=True)
class Fleet:
    """One snapshot of the fleet, with the Placer bound to it (reused by every template)."""

    placer: Placer

    @classmethod
    def of(cls, snapshots: Sequence[ClusterSnapshot]) -> Fleet:
        return cls(Placer(snapshots))

    @cached_property
    def clusters(self) -> Mapping[str, ClusterSnapshot]:
        return {c.name: c for c in self.placer.clusters}


@dataclass(frozen=True)
class Follower:
    """A workload a dependency follows: where it is placed, under which policy."""

    workload: str
    policy: PolicyLike
    clusters: frozenset[str]


@dataclass(frozen=True)
class Matched:
    """The first stage's answer (`match_template`)."""

    outcome: Outcome
    winner: PolicyLike | None
    losers: tuple[tuple[PolicyLike, str], ...]
    governing: PolicyLike | None
    """The winner, or (a dependency) the policy of the first workload it follows."""
    followed: tuple[Follower, ...] = ()
    """The workloads it follows; empty unless it is placed as a dependency."""
    refusal: str | None = None
    """Why it never propagates (`Outcome.PROTECTED`), in words."""
    dependencies: tuple[DependencyRef, ...] | None = None
    """What follows it: None unless it is a workload whose governing policy propagates them."""

    @property
    def inherited(self) -> bool:
        return self.winner is None and self.governing is not None

    @property
    def suspended(self) -> bool:
        return self.governing is not None and self.governing.spec.suspend


@dataclass(frozen=True)
class Copy:
    """What one chosen cluster gets: a translated manifest, or the reason it gets none."""

    cluster: str
    replicas: int | None
    rules: tuple[ResolvedOverride, ...] = ()
    manifest: Mapping[str, Any] | None = None
    hash: str = ""
    error: str | None = None
    """A broken or forbidden override, or a copy protection refuses: a refused work."""
    unsealable: bool = False
    """An override put a sensitive value in and there is no key: no work at all."""


@dataclass(frozen=True)
class Failover:
    """The template moved off failed clusters (an event the controller records)."""

    moved: tuple[str, ...]
    gained: tuple[str, ...]
    why: tuple[str, ...] = ()
    """Per moved cluster: "unreachable" or "no Ready node"."""


@dataclass(frozen=True)
class TemplatePlan:
    """Both stages' answer: everything the controller saves and `plan` shows for a template."""

    matched: Matched
    decision: Decision
    copies: tuple[Copy, ...]
    failover: Failover | None = None
    kept: frozenset[str] = frozenset()
    """Clusters kept (unschedulable placement, transient causes): their rows say so."""
    template_identity: Mapping[str, Any] = field(default_factory=dict)
    """apiVersion, kind, name and namespace: all a refused work holds."""

    @property
    def works(self) -> list[DesiredWork]:
        policy = self.matched.governing
        overwrite = policy is not None and policy.spec.conflict_resolution == ConflictResolution.OVERWRITE
        works: list[DesiredWork] = []
        for c in self.copies:
            if c.unsealable:
                continue
            if c.error is not None:
                works.append(_refused_work(c, self.template_identity))
            elif c.manifest is not None:
                works.append(DesiredWork(c.cluster, dict(c.manifest), c.hash, overwrite=overwrite))
        return works

    @property
    def rows(self) -> list[ClusterDecision]:
        """The decision as stored: every cluster chosen or not, with its reason in words."""
        d = self.decision
        reason = "selected" if not d.unschedulable else f"kept: {d.unschedulable}"
        rows = [ClusterDecision(t.cluster, True, t.replicas, _fit(d, t.cluster, reason)) for t in d.targets]
        rows += [ClusterDecision(c, False, None, str(r)) for c, r in d.excluded.items()]
        return rows

    @property
    def refused(self) -> dict[str, str]:
        return {c.cluster: c.error for c in self.copies if c.error is not None}

    @property
    def orphan(self) -> bool:
        policy = self.matched.governing
        return policy is not None and policy.spec.deletion_policy == DeletionPolicy.ORPHAN


def match_template(
    template: Mapping[str, Any],
    *,
    policies: Sequence[PolicyLike],
    followers: Sequence[Follower] = (),
    protection: Protection,
    sealer: Sealer | None = None,
) -> Matched:
    """Stage 1: who governs ``template``, and whether it may propagate at all.

    ``followers`` are the workloads placed somewhere that reference the template under a
    policy with ``propagateDependencies``, in the order the caller wants the first one to
    govern; they matter only when no policy selects the template itself.
    """
    match = match_policies(template, policies)
    winner = match.winner
    followed = tuple(followers) if winner is None else ()
    governing = winner if winner is not None else (followed[0].policy if followed else None)
    if governing is None:
        return Matched(Outcome.UNGOVERNED, None, match.losers, None)
    refusal = protection.refusal(template)
    if refusal is not None:
        return Matched(Outcome.PROTECTED, winner, match.losers, governing, followed, refusal.describe())
    if sealer is not None and not sealer.available and sealer.sensitive(template):
        return Matched(Outcome.UNSEALABLE, winner, match.losers, governing, followed)
    dependencies = (
        dependencies_of(template)
        if winner is not None and winner.spec.propagate_dependencies and pod_spec(template) is not None
        else None
    )
    return Matched(Outcome.GOVERNED, winner, match.losers, governing, followed, dependencies=dependencies)


def place_template(
    template: Mapping[str, Any],
    matched: Matched,
    *,
    name: str,
    fleet: Fleet,
    overrides: Sequence[OverridePolicyLike],
    previous: Decision | None,
    hub: str,
    protection: Protection,
    sealer: Sealer | None = None,
) -> TemplatePlan:
    """Stage 2 (for a governed template): where it goes and what each cluster gets.

    ``name`` is how messages name the template (the controller's key, plan's reference).
    """
    policy = matched.governing
    assert policy is not None, "place_template is for governed templates"
    kept: frozenset[str] = frozenset()
    failover = None
    if matched.inherited:
        decision = follow_workloads(matched.followed, fleet)
    else:
        placement = policy.spec.placement
        decision = fleet.placer.decide(
            placement=placement,
            replicas=replicas_of(template),
            previous=previous,
            per_replica=per_replica(template) if uses_dynamic_weights(placement) else None,
        )
        decision, kept = keep_transient(decision, previous, fleet)
        if previous is not None:
            failover = failover_of(previous, decision)
    copies = _copies(
        template,
        [t for t in decision.targets if t.cluster in fleet.clusters],
        name=name,
        fleet=fleet,
        policy=policy,
        overrides=overrides,
        hub=hub,
        protection=protection,
        sealer=sealer,
    )
    return TemplatePlan(
        matched=matched,
        decision=decision,
        copies=copies,
        failover=failover,
        kept=kept,
        template_identity=_identity(template),
    )


def with_revision(
    plan: TemplatePlan,
    template: Mapping[str, Any],
    clusters: frozenset[str],
    *,
    name: str,
    fleet: Fleet,
    overrides: Sequence[OverridePolicyLike],
    hub: str,
    protection: Protection,
    sealer: Sealer | None = None,
) -> TemplatePlan:
    """The plan with the copies for `clusters` translated from `template` instead: another
    revision of the same object (a staged rollout's previous one, for the clusters it has not
    reached). Same decision, same overrides and policy: only the revision differs, so a cluster
    moves between revisions by its copy's hash alone."""
    policy = plan.matched.governing
    assert policy is not None, "with_revision is for governed templates"
    targets = [t for t in plan.decision.targets if t.cluster in clusters and t.cluster in fleet.clusters]
    previous = _copies(
        template,
        targets,
        name=name,
        fleet=fleet,
        policy=policy,
        overrides=overrides,
        hub=hub,
        protection=protection,
        sealer=sealer,
    )
    kept = {c.cluster: c for c in previous}
    return replace(plan, copies=tuple(kept.get(c.cluster, c) for c in plan.copies))


def plan_template(
    template: Mapping[str, Any],
    *,
    name: str,
    policies: Sequence[PolicyLike],
    overrides: Sequence[OverridePolicyLike],
    fleet: Fleet,
    previous: Decision | None = None,
    followers: Sequence[Follower] = (),
    protection: Protection,
    hub: str,
    sealer: Sealer | None = None,
) -> tuple[Matched, TemplatePlan | None]:
    """Both stages at once (`federation plan`): the plan is None unless a policy governs it."""
    matched = match_template(
        template, policies=policies, followers=followers, protection=protection, sealer=sealer
    )
    if matched.outcome is not Outcome.GOVERNED:
        return matched, None
    return matched, place_template(
        template,
        matched,
        name=name,
        fleet=fleet,
        overrides=overrides,
        previous=previous,
        hub=hub,
        protection=protection,
        sealer=sealer,
    )


# -- the rules between the steps ---------------------------------------------------------------


def transient(reason: Reason | None) -> bool:
    """Whether a cluster is out for a cause that passes (see the module docstring)."""
    if reason is None:
        return False
    if reason.code in TRANSIENT:
        return True
    return reason.code is ReasonCode.TAINT_NO_EXECUTE and reason.subject in FAILOVER_TAINT_KEYS


def keep_transient(
    decision: Decision, previous: Decision | None, fleet: Fleet
) -> tuple[Decision, frozenset[str]]:
    """An unschedulable decision keeps the previous targets that are out for transient causes
    only (and still in the fleet: a cluster leaving must drain)."""
    if decision.unschedulable is None or previous is None or not previous.targets:
        return decision, frozenset()
    kept = tuple(
        t
        for t in previous.targets
        if t.cluster in fleet.clusters and transient(decision.excluded.get(t.cluster))
    )
    names = frozenset(t.cluster for t in kept)
    if not kept:
        return decision, names
    return (
        Decision(
            targets=kept,
            excluded={c: r for c, r in decision.excluded.items() if c not in names},
            unschedulable=decision.unschedulable,
        ),
        names,
    )


def failover_of(previous: Decision, decision: Decision) -> Failover | None:
    """Clusters the template left because they failed (decided on the code: unreachable, or no
    Ready node, past the grace period)."""
    moved = []
    for c in sorted(previous.cluster_names - decision.cluster_names):
        r = decision.excluded.get(c)
        if r is not None and r.code is ReasonCode.TAINT_NO_EXECUTE and r.subject in FAILOVER_TAINT_KEYS:
            why = "unreachable" if r.subject == UNREACHABLE_TAINT_KEY else "no Ready node"
            moved.append((c, why))
    if not moved:
        return None
    return Failover(
        tuple(c for c, _ in moved),
        tuple(sorted(decision.cluster_names - previous.cluster_names)),
        tuple(why for _, why in moved),
    )


def follow_workloads(followers: Sequence[Follower], fleet: Fleet) -> Decision:
    """A dependency goes wherever a workload that references it is placed, and nowhere else."""
    clusters: set[str] = set()
    for f in followers:
        clusters |= f.clusters
    clusters &= fleet.clusters.keys()
    return Decision(
        targets=tuple(Target(c, None) for c in sorted(clusters)),
        excluded={
            c: Reason(ReasonCode.NO_WORKLOAD_HERE, NO_WORKLOAD_HERE)
            for c in fleet.clusters
            if c not in clusters
        },
    )


def replicas_of(template: Mapping[str, Any]) -> int | None:
    spec = template.get("spec")
    value = spec.get("replicas") if isinstance(spec, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _copy(
    template: Mapping[str, Any],
    target: Target,
    *,
    name: str,
    snapshot: ClusterSnapshot,
    policy: PolicyLike,
    overrides: Sequence[OverridePolicyLike],
    ownership: Ownership,
    protection: Protection,
    sealer: Sealer | None,
) -> Copy:
    rules = resolve_overrides(template, cluster=snapshot, policies=overrides)
    try:
        translated = translate(
            template,
            cluster=snapshot,
            replicas=target.replicas,
            overrides=rules,
            ownership=ownership,
            retain_fields=policy.spec.retain_fields,
            secrecy=sealer.secrecy if sealer is not None else None,
        )
    except FederationError as exc:
        # A broken or forbidden override: the work fails with the reason, the member's copy
        # (if any) is left as it is.
        return Copy(target.cluster, target.replicas, rules, error=str(exc))
    refusal = protection.refusal(translated.manifest)
    if refusal is not None:  # e.g. an override turned a Secret into a token Secret
        message = f"{name} on cluster {target.cluster}: the copy is {refusal.describe()}"
        return Copy(target.cluster, target.replicas, rules, error=message)
    if sealer is not None and not sealer.available and sealer.sensitive(translated.manifest):
        return Copy(target.cluster, target.replicas, rules, translated.manifest, unsealable=True)
    return Copy(target.cluster, target.replicas, rules, translated.manifest, translated.hash)


def _copies(
    template: Mapping[str, Any],
    targets: Sequence[Target],
    *,
    name: str,
    fleet: Fleet,
    policy: PolicyLike,
    overrides: Sequence[OverridePolicyLike],
    hub: str,
    protection: Protection,
    sealer: Sealer | None,
) -> tuple[Copy, ...]:
    ownership = Ownership(
        hub=hub_id(hub), policy=format_policy(policy.kind, policy.metadata.namespace, policy.metadata.name)
    )
    return tuple(
        _copy(
            template,
            target,
            name=name,
            snapshot=fleet.clusters[target.cluster],
            policy=policy,
            overrides=overrides,
            ownership=ownership,
            protection=protection,
            sealer=sealer,
        )
        for target in targets
    )


def _fit(decision: Decision, cluster: str, reason: str) -> str:
    """A chosen cluster's row: said when its share is more than it has room for (the fleet as a
    whole is short of capacity: every share is divided by room, so one short means all are)."""
    short = decision.short(cluster)
    if not short:
        return reason
    room = decision.replicas_of(cluster) or 0
    return f"{reason}; room for only {room - short} of its {room} replicas"


def _identity(template: Mapping[str, Any]) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    identity: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("namespace"):
        identity["namespace"] = meta["namespace"]
    return {"apiVersion": template.get("apiVersion"), "kind": template.get("kind"), "metadata": identity}


def _refused_work(copy: Copy, identity: Mapping[str, Any]) -> DesiredWork:
    """A work that fails with the copy's error and applies nothing: its manifest is only the
    template's identity (what deleting or orphaning the member copy later needs), its hash one
    no manifest has (so the fixed translation is written as soon as there is one)."""
    assert copy.error is not None
    digest = hashlib.sha256(copy.error.encode()).hexdigest()[:24]
    return DesiredWork(copy.cluster, dict(identity), f"refused-{digest}", error=copy.error)
