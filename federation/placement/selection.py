"""Picking among eligible clusters: spread constraints (min/max groups) and maxClusters.

Ranking, wherever one is needed, is: clusters the resource is already on first (so a decision
is stable: a new, roomier cluster does not steal an existing placement), then higher score, then
cluster name. Groups of a spread constraint rank the same way: groups holding more current
placements, then the best score in the group, then the label value.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from federation.api import Placement
from federation.placement.reasons import Reason, ReasonCode


@dataclass(frozen=True)
class Selection:
    chosen: tuple[str, ...]
    dropped: Mapping[str, Reason] = field(default_factory=dict)
    unschedulable: Reason | None = None


def needs_ranking(placement: Placement) -> bool:
    """Whether previous placements and scores can change which clusters are chosen."""
    return placement.max_clusters is not None or any(
        c.max_groups is not None for c in placement.spread_constraints
    )


def select(
    placement: Placement,
    *,
    eligible: Sequence[str],
    previous: Collection[str],
    labels: Callable[[str], Mapping[str, str]],
    scores: Callable[[], Mapping[str, float]],
) -> Selection:
    """The chosen clusters among ``eligible`` (sorted names), with a reason for each one dropped.

    ``scores`` is called only when a ranking is needed (it costs a pass over the clusters).
    """
    spread = placement.spread_constraints
    max_clusters = placement.max_clusters
    if not spread and max_clusters is None:
        return Selection(chosen=tuple(eligible))
    score: Mapping[str, float] = scores() if needs_ranking(placement) else {}

    def rank(name: str) -> tuple[bool, float, str]:
        return (name not in previous, -score.get(name, 0.0), name)

    pool = list(eligible)
    dropped: dict[str, Reason] = {}
    for i, c in enumerate(spread):
        key = c.topology_key
        groups: dict[str, list[str]] = {}
        for name in pool:
            groups.setdefault(labels(name)[key], []).append(name)
        if c.max_groups is not None and len(groups) > c.max_groups:
            ordered = sorted(
                groups,
                key=lambda v: (
                    -sum(1 for n in groups[v] if n in previous),
                    -max(score.get(n, 0.0) for n in groups[v]),
                    v,
                ),
            )
            kept = set(ordered[: c.max_groups])
            for value in ordered[c.max_groups :]:
                # One Reason per group, shared by its clusters (the same words for each).
                left_out = Reason(
                    ReasonCode.DROPPED_BY_SPREAD,
                    f"dropped by spreadConstraints[{i}] ({key} maxGroups={c.max_groups}): "
                    f"group {key}={value} not chosen",
                )
                for name in groups[value]:
                    dropped[name] = left_out
            pool = [n for n in pool if labels(n)[key] in kept]
            groups = {v: groups[v] for v in kept}
        if len(groups) < c.min_groups:
            spans = ", ".join(sorted(groups)) or "none"
            return Selection(
                chosen=(),
                dropped=dropped,
                unschedulable=Reason(
                    ReasonCode.SPREAD_UNMET,
                    f"spreadConstraints[{i}] needs at least {c.min_groups} groups of label {key}, "
                    f"but the eligible clusters span {len(groups)} ({spans})",
                ),
            )
    if max_clusters is None or len(pool) <= max_clusters:
        return Selection(chosen=tuple(sorted(pool)), dropped=dropped)

    ranked = sorted(pool, key=rank)
    picked: list[str] = []
    picked_set: set[str] = set()
    for c in spread:  # first cover every constraint's minGroups with the best cluster of each group
        covered = {labels(n)[c.topology_key] for n in picked}
        for name in ranked:
            if len(covered) >= c.min_groups:
                break
            value = labels(name)[c.topology_key]
            if name not in picked_set and value not in covered:
                picked.append(name)
                picked_set.add(name)
                covered.add(value)
    if len(picked) > max_clusters:
        return Selection(
            chosen=(),
            dropped=dropped,
            unschedulable=Reason(
                ReasonCode.SPREAD_UNMET,
                f"maxClusters={max_clusters} is too few to meet the minGroups of every spread constraint",
            ),
        )
    for name in ranked:
        if len(picked) >= max_clusters:
            break
        if name not in picked_set:
            picked.append(name)
            picked_set.add(name)
    cutoff = min(score.get(n, 0.0) for n in picked)
    kept_previous = any(n in previous for n in picked)
    # Every cluster not picked gets words naming its score to two places: clusters with the same
    # words share one Reason (there are at most a few hundred distinct ones, not one per cluster).
    reasons: dict[tuple[str, bool], Reason] = {}
    for name in pool:
        if name in picked_set:
            continue
        s = score.get(name, 0.0)
        shown = f"{s:.2f}"
        below = s < cutoff
        reason = reasons.get((shown, below))
        if reason is None:
            if below:
                why = f"score {shown} < {cutoff:.2f}"
            elif kept_previous:
                why = f"score {shown}; clusters already holding the resource are kept first"
            else:
                why = f"score {shown}; equal scores are broken by spread and cluster name"
            reason = Reason(
                ReasonCode.DROPPED_BY_MAX_CLUSTERS, f"dropped by maxClusters={max_clusters} ({why})"
            )
            reasons[(shown, below)] = reason
        dropped[name] = reason
    return Selection(chosen=tuple(sorted(picked)), dropped=dropped)
