"""Filtering: which clusters may hold a placement's resources, and why the others may not.

Run once per (placement, snapshot) by the Placer and shared by every resource the placement
governs. Each cluster ends up in one of three sets:

- *hard-excluded*: never a target, even if it was one before (listed in excludeClusters, not
  in clusterNames, not matched by clusterSelector, an untolerated NoExecute taint, no label for
  a spread constraint, no entry of replicaScheduling.weights for it);
- *soft-excluded*: not chosen for NEW placement, but kept where ``previous`` already placed the
  resource: an untolerated NoSchedule taint (Kubernetes semantics: NoSchedule only blocks new
  scheduling), or a cluster that is not ready. Keeping a NotReady cluster is deliberate: a short
  outage must not reshuffle replicas; the cluster registry adds a NoExecute taint after a grace
  period, and that taint is what fails workloads over;
- *fresh candidates*: everything else.

The first reason that applies is the one reported, in the order of the list above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from federation.api import ClusterWeight, DynamicWeight, Placement, ReplicaSchedulingType, TaintEffect
from federation.api.taints import untolerated
from federation.placement.reasons import Reason, ReasonCode
from federation.placement.snapshot import ClusterSnapshot


@dataclass(frozen=True)
class Filtered:
    """The per-cluster verdicts of one placement against one snapshot."""

    hard: Mapping[str, Reason]
    soft: Mapping[str, Reason]
    fresh: tuple[str, ...]
    weights: Mapping[str, int] | None
    """Weight per cluster for Divided by ``weights``; None for any other division."""
    prefer_no_schedule: Mapping[str, int]
    """Untolerated PreferNoSchedule taints per cluster that has any (they lower the score)."""


def filter_clusters(placement: Placement, clusters: Sequence[ClusterSnapshot]) -> Filtered:
    names = frozenset(placement.cluster_names) if placement.cluster_names is not None else None
    excluded_names = frozenset(placement.exclude_clusters)
    selector = placement.cluster_selector
    selector_text = selector.describe() if selector is not None else ""
    tolerations = placement.tolerations
    static = static_weights(placement)
    spread_keys = [(i, c.topology_key) for i, c in enumerate(placement.spread_constraints)]

    hard: dict[str, Reason] = {}
    soft: dict[str, Reason] = {}
    fresh: list[str] = []
    weights: dict[str, int] | None = {} if static is not None else None
    penalties: dict[str, int] = {}
    for cluster in clusters:
        name = cluster.name
        labels = cluster.labels
        if name in excluded_names:
            hard[name] = Reason(ReasonCode.EXCLUDED_BY_NAME, "listed in excludeClusters")
            continue
        if names is not None and name not in names:
            hard[name] = Reason(ReasonCode.NOT_IN_CLUSTER_NAMES, "not in clusterNames")
            continue
        if selector is not None and not selector.matches(labels):
            hard[name] = Reason(
                ReasonCode.SELECTOR_MISMATCH, f"not matched by clusterSelector {selector_text}"
            )
            continue
        taints = untolerated(cluster.taints, tolerations) if cluster.taints else ()
        no_execute = next((t for t in taints if t.effect is TaintEffect.NO_EXECUTE), None)
        if no_execute is not None:
            hard[name] = Reason(
                ReasonCode.TAINT_NO_EXECUTE,
                f"excluded by taint {no_execute.describe()}",
                subject=no_execute.key,
            )
            continue
        missing = next(((i, key) for i, key in spread_keys if key not in labels), None)
        if missing is not None:
            hard[name] = Reason(
                ReasonCode.NO_SPREAD_LABEL,
                f"has no label {missing[1]} (spreadConstraints[{missing[0]}].topologyKey)",
            )
            continue
        if static is not None and weights is not None:
            matched = [w.weight for w in static if w.matches(name, labels)]
            if not matched:
                hard[name] = Reason(ReasonCode.NO_WEIGHT, "matched by no replicaScheduling.weights entry")
                continue
            weights[name] = max(matched)
        no_schedule = next((t for t in taints if t.effect is TaintEffect.NO_SCHEDULE), None)
        if no_schedule is not None:
            soft[name] = Reason(
                ReasonCode.TAINT_NO_SCHEDULE,
                f"excluded by taint {no_schedule.describe()}",
                subject=no_schedule.key,
            )
        elif not cluster.ready:
            soft[name] = Reason(ReasonCode.NOT_READY, "not ready")
        else:
            fresh.append(name)
        prefer = sum(1 for t in taints if t.effect is TaintEffect.PREFER_NO_SCHEDULE)
        if prefer:
            penalties[name] = prefer
    return Filtered(hard=hard, soft=soft, fresh=tuple(fresh), weights=weights, prefer_no_schedule=penalties)


def static_weights(placement: Placement) -> tuple[ClusterWeight, ...] | None:
    """The weights Divided replicas are shared by, or None when they are shared otherwise."""
    s = placement.scheduling
    return s.weights if s.type is ReplicaSchedulingType.DIVIDED and s.weights else None


def uses_dynamic_weights(placement: Placement) -> bool:
    s = placement.scheduling
    return s.type is ReplicaSchedulingType.DIVIDED and s.dynamic is DynamicWeight.AVAILABLE_REPLICAS
