"""The placement engine's entry points: ``decide`` for one resource, ``Placer`` for many.

A ``Placer`` is bound to one snapshot of the fleet. For each placement spec it filters the
clusters once (selectors, taints, readiness, labels, weights), answered from an inverted index
of the snapshot (`federation.placement.index`) by set operations rather than a pass over every
cluster, and then answers every resource governed by that placement from memos keyed by what
can still differ between those resources: the template's replicas, and the part of its previous
decision that matters (clusters kept despite NoSchedule/NotReady and, when clusters are ranked,
the current placements). Identical questions get the very same immutable ``Decision`` object
back. Specs that differ only in what this fleet cannot tell apart (one policy per application,
copied from one another) share one entry, and selections are shared between specs that filter
and pick alike: with per-application policies nothing is shared by spec text.

The controller makes a new Placer whenever the fleet snapshot changes (a cluster joins,
leaves, changes labels, taints, readiness or capacity); there is nothing to invalidate.
``decide()`` is the same pipeline on a throw-away Placer that filters by scanning every cluster
(`filter_clusters`): the plain reference that property tests hold the indexed, cached path to,
decision by decision (tests/unit/test_placement_index.py).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from federation.api import Placement, ReplicaSchedulingType
from federation.errors import ConfigError
from federation.placement.decision import Decision, Target
from federation.placement.division import divide
from federation.placement.filters import Filtered, filter_clusters, uses_dynamic_weights
from federation.placement.index import FleetIndex, judge
from federation.placement.reasons import Reason, ReasonCode
from federation.placement.scoring import score_clusters
from federation.placement.selection import Selection, needs_ranking, select
from federation.placement.snapshot import ClusterSnapshot

_MEMO_LIMIT = 4096
"""Entries per memo of one placement before it is cleared (bounds memory on odd workloads)."""


@dataclass(frozen=True)
class PlacementRequest:
    """One resource to place with ``Placer.decide_many``."""

    replicas: int | None
    previous: Decision | None = None


class _Compiled:
    """One placement against the Placer's snapshot, with the memo of its decisions."""

    __slots__ = ("_eligible_all", "decisions", "filtered", "placement", "ranked", "selection_key")

    def __init__(self, placement: Placement, filtered: Filtered) -> None:
        self.placement = placement
        self.filtered = filtered
        self.ranked = needs_ranking(placement)
        self.selection_key = _selection_key(placement, filtered)
        self._eligible_all: frozenset[str] | None = None
        self.decisions: dict[tuple[int | None, frozenset[str], PerReplica | None], Decision] = {}

    def relevant_previous(self, previous: Decision | None) -> frozenset[str]:
        """The part of ``previous`` that can change this placement's answer."""
        if previous is None or not previous.targets:
            return frozenset()
        prev = previous.cluster_names
        keep: Collection[str]
        if self.ranked:
            if self._eligible_all is None:  # only with a previous decision: initial placement never pays
                self._eligible_all = frozenset(self.filtered.fresh).union(self.filtered.soft)
            keep = self._eligible_all
        else:
            keep = self.filtered.soft.keys()
        if len(keep) <= len(prev):
            return frozenset(n for n in keep if n in prev)
        return frozenset(n for n in prev if n in keep)


_SelectionKey = tuple[object, ...]


def _selection_key(placement: Placement, filtered: Filtered) -> _SelectionKey | None:
    """What `select` reads besides the previous placements, or None when it picks every eligible
    cluster (nothing worth remembering). Two specs that filter the fleet alike and pick alike
    (per-application policies copied from one another) then share one selection."""
    if not placement.spread_constraints and placement.max_clusters is None:
        return None
    spread = tuple((c.topology_key, c.min_groups, c.max_groups) for c in placement.spread_constraints)
    penalties = frozenset(filtered.prefer_no_schedule.items()) if needs_ranking(placement) else None
    return (filtered.fresh, tuple(filtered.soft), placement.max_clusters, spread, penalties)


class Placer:
    """Decides placements against one fleet snapshot, reusing work across resources.

    Not thread-safe (its memos are plain dicts): use one per task, as the asyncio controller does.
    """

    def __init__(self, clusters: Iterable[ClusterSnapshot], *, indexed: bool = True) -> None:
        """``indexed=False`` filters every placement by asking every cluster (`filter_clusters`):
        the plain reference the index is checked against, and what ``decide()`` uses."""
        ordered = sorted(clusters, key=lambda c: c.name)
        by_name: dict[str, ClusterSnapshot] = {}
        for c in ordered:
            if c.name in by_name:
                raise ConfigError(f"cluster snapshot lists cluster {c.name!r} twice")
            by_name[c.name] = c
        self._clusters = tuple(ordered)
        self._by_name = by_name
        self._by_id: dict[int, tuple[Placement, _Compiled]] = {}
        self._by_spec: dict[str, _Compiled] = {}
        self._indexed = indexed
        self._selections: dict[tuple[_SelectionKey, frozenset[str]], Selection] = {}
        self._target_memo: dict[int | None, dict[str, Target]] = {}
        self._index: FleetIndex | None = None
        self._by_effect: dict[Hashable, _Compiled] = {}

    @property
    def clusters(self) -> tuple[ClusterSnapshot, ...]:
        return self._clusters

    def _compiled(self, placement: Placement) -> _Compiled:
        hit = self._by_id.get(id(placement))
        if hit is not None and hit[0] is placement:
            return hit[1]
        spec = placement.model_dump_json()
        compiled = self._by_spec.get(spec)
        if compiled is None:
            compiled = self._compile(placement)
            self._by_spec[spec] = compiled
        # Keeping `placement` in the entry keeps its id from being reused by another object.
        self._by_id[id(placement)] = (placement, compiled)
        return compiled

    def _compile(self, placement: Placement) -> _Compiled:
        if not self._indexed:
            return _Compiled(placement, filter_clusters(placement, self._clusters))
        if self._index is None:  # built on first use: a Placer that only hits its memos never pays
            self._index = FleetIndex(self._clusters)
        verdicts = judge(placement, self._index)
        # Everything a decision reads besides the verdicts: two specs equal in these and in their
        # verdicts decide alike for every resource, so they share one compiled entry and its memo.
        s = placement.scheduling
        effect = (
            verdicts.key,
            placement.max_clusters,
            tuple((c.topology_key, c.min_groups, c.max_groups) for c in placement.spread_constraints),
            s.type,
            s.dynamic,
        )
        compiled = self._by_effect.get(effect)
        if compiled is None:
            compiled = self._by_effect[effect] = _Compiled(placement, verdicts.filtered(self._index))
        return compiled

    def decide(
        self,
        *,
        placement: Placement,
        replicas: int | None,
        previous: Decision | None,
        per_replica: PerReplica | None = None,
    ) -> Decision:
        """Where a resource with ``replicas`` (None for non-workloads) goes under ``placement``.

        ``per_replica``: what one replica requests (millicores, bytes), for Divided by dynamic
        weight, where a cluster's measured free capacity is divided by it (`room`)."""
        if replicas is not None and replicas < 0:
            raise ConfigError(f"spec.replicas must not be negative (got {replicas})")
        compiled = self._compiled(placement)
        prev = compiled.relevant_previous(previous)
        if not uses_dynamic_weights(placement):
            per_replica = None  # the answer does not depend on it: one memo entry for all
        key = (replicas, prev, per_replica)
        decision = compiled.decisions.get(key)
        if decision is None:
            if len(compiled.decisions) >= _MEMO_LIMIT:
                compiled.decisions.clear()
            decision = self._build(compiled, replicas=replicas, previous=prev, per_replica=per_replica)
            compiled.decisions[key] = decision
        return decision

    def decide_many(self, placement: Placement, requests: Iterable[PlacementRequest]) -> list[Decision]:
        """``decide`` for many resources governed by the same placement."""
        return [self.decide(placement=placement, replicas=r.replicas, previous=r.previous) for r in requests]

    # -- building one decision ---------------------------------------------------------------

    def _selection(self, compiled: _Compiled, previous: frozenset[str]) -> Selection:
        f = compiled.filtered
        kept = [n for n in previous if n in f.soft]
        eligible = sorted([*f.fresh, *kept]) if kept else list(f.fresh)
        if compiled.selection_key is None:
            return Selection(chosen=tuple(eligible))
        key = (compiled.selection_key, previous)
        selection = self._selections.get(key)
        if selection is None:
            if len(self._selections) >= _MEMO_LIMIT:
                self._selections.clear()

            def scores() -> Mapping[str, float]:
                return score_clusters(
                    eligible, clusters=self._by_name, prefer_no_schedule=f.prefer_no_schedule
                )

            selection = select(
                compiled.placement,
                eligible=eligible,
                previous=previous,
                labels=lambda n: self._by_name[n].labels,
                scores=scores,
            )
            self._selections[key] = selection
        return selection

    def _targets(self, names: Iterable[str], replicas: int | None) -> tuple[Target, ...]:
        """Targets are immutable: one object per (cluster, replicas) serves every decision."""
        memo = self._target_memo.get(replicas)
        if memo is None:
            memo = self._target_memo[replicas] = {}
        out = []
        for name in names:
            target = memo.get(name)
            if target is None:
                target = memo[name] = Target(name, replicas)
            out.append(target)
        return tuple(out)

    def _build(
        self,
        compiled: _Compiled,
        *,
        replicas: int | None,
        previous: frozenset[str],
        per_replica: PerReplica | None = None,
    ) -> Decision:
        f = compiled.filtered
        selection = self._selection(compiled, previous)
        excluded: dict[str, Reason] = dict(f.hard)
        for name, reason in f.soft.items():
            if name not in previous:
                excluded[name] = reason
        excluded.update(selection.dropped)
        if selection.unschedulable is not None:
            return self._unschedulable(excluded, selection.unschedulable)
        chosen = selection.chosen
        if not chosen:
            # One wording whatever the fleet holds, so an unrelated cluster never changes a decision.
            return _decision((), excluded, Reason(ReasonCode.NO_CLUSTER, "no cluster passed the filters"))
        placement = compiled.placement
        if replicas is None or placement.scheduling.type is ReplicaSchedulingType.DUPLICATED:
            return _decision(self._targets(chosen, replicas), excluded)
        weights = self._weights(placement, filtered=f, chosen=chosen, per_replica=per_replica)
        total_weight = sum(w for _, w in weights)
        if total_weight == 0:
            return self._unschedulable(
                excluded,
                Reason(
                    ReasonCode.NO_CAPACITY,
                    "Divided by dynamic: AvailableReplicas, but no chosen cluster has room for a replica",
                ),
            )
        if replicas == 0:  # scaled to zero: keep the workload everywhere it is, with no replicas
            return _decision(self._targets(chosen, 0), excluded)
        shares = divide(replicas, weights)
        targets = []
        zero: dict[int, Reason] = {}  # one Reason per weight: the words name only the weight
        for name, weight in weights:
            if shares[name] > 0:
                targets.append(Target(name, shares[name]))
            else:
                nothing = zero.get(weight)
                if nothing is None:
                    nothing = zero[weight] = Reason(
                        ReasonCode.ZERO_SHARE,
                        f"Divided share is 0 of {replicas} replicas (weight {weight} of {total_weight})",
                    )
                excluded[name] = nothing
        room = MappingProxyType(dict(weights)) if uses_dynamic_weights(placement) else None
        return _decision(tuple(targets), excluded, room=room)

    def _weights(
        self,
        placement: Placement,
        *,
        filtered: Filtered,
        chosen: Sequence[str],
        per_replica: PerReplica | None = None,
    ) -> list[tuple[str, int]]:
        if filtered.weights is not None:
            return [(n, filtered.weights[n]) for n in chosen]
        if uses_dynamic_weights(placement):
            return [(n, room(self._by_name[n], per_replica)) for n in chosen]
        return [(n, 1) for n in chosen]

    def _unschedulable(self, excluded: dict[str, Reason], reason: Reason) -> Decision:
        why = Reason(ReasonCode.UNSCHEDULABLE, f"unschedulable: {reason}")
        for c in self._clusters:
            if c.name not in excluded:
                excluded[c.name] = why
        return _decision((), excluded, reason)


#: What one replica of a workload requests: (millicores, bytes); zero where it requests nothing.
PerReplica = tuple[int, int]


def room(cluster: ClusterSnapshot, per_replica: PerReplica | None) -> int:
    """How many more replicas of a workload `cluster` has room for.

    From its measured free capacity when there is one (each resource the replica requests, and
    a pod slot each: the tightest bound wins), else the figure it reports
    (``status.availableReplicas``). Its own running replicas already use part of the free
    capacity, in proportion to the share they were given, so dividing by room keeps the
    proportions of the clusters' capacities and a split does not drift as it lands."""
    free = cluster.free
    if free is None:
        return max(cluster.available_replicas or 0, 0)
    bounds = [free.pods if free.pods is not None else 0]
    cpu, memory = per_replica or (0, 0)
    if cpu:
        bounds.append((free.cpu_millicores or 0) // cpu)
    if memory:
        bounds.append((free.memory_bytes or 0) // memory)
    return max(0, min(bounds))


def _decision(
    targets: tuple[Target, ...],
    excluded: dict[str, Reason],
    unschedulable: Reason | None = None,
    *,
    room: Mapping[str, int] | None = None,
) -> Decision:
    """A Decision over a map this module built and no one else holds: wrapped read-only as is,
    without the copy `Decision` makes of a map handed to it (a thousand entries per decision)."""
    return Decision(
        targets=targets, excluded=MappingProxyType(excluded), unschedulable=unschedulable, room=room
    )


def decide(
    *,
    placement: Placement,
    clusters: Sequence[ClusterSnapshot],
    replicas: int | None,
    previous: Decision | None,
    per_replica: PerReplica | None = None,
) -> Decision:
    """Where one resource goes: the pure, uncached entry point (a Placer used once)."""
    return Placer(clusters, indexed=False).decide(
        placement=placement, replicas=replicas, previous=previous, per_replica=per_replica
    )
