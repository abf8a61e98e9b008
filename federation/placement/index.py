"""An inverted index of one fleet snapshot, so a placement's filters are set operations.

With one policy per application, every placement spec is different and the Placer's memos
share nothing: each spec used to be filtered by asking every cluster every question
(`filter_clusters`), ~1,000 Python-level checks per resource. The index is built once per
snapshot: label (key, value) → clusters, label key → clusters, clusters grouped by their taints,
and the clusters that are not ready. A selector (matchLabels, In, NotIn, Exists, DoesNotExist),
clusterNames, excludeClusters, spread keys and weight entries then become unions,
intersections and complements, and taints are judged once per distinct taint list rather than
once per cluster.

A set of clusters is a Python int used as a bitmask over the clusters sorted by name (bit i is
the i-th cluster): AND/OR/NOT over a thousand clusters is one C loop over a few dozen machine
words, and a mask turns back into names *in cluster order* (the order every reason map of a
decision is written in, so the output is identical to the scan's) with ``compress`` over its
binary digits, also in C. `filter_indexed` returns exactly what `filter_clusters` returns for
the same placement (tests/unit/test_placement_index.py checks it, reason by reason and in
order); `filter_clusters` stays as the plain reference it is checked against.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import TypeVar

from federation.api import LabelSelector, Placement, TaintEffect, TargetClusters
from federation.api.selectors import SelectorOperator
from federation.api.taints import Taint, untolerated
from federation.placement.filters import Filtered, static_weights
from federation.placement.reasons import Reason, ReasonCode
from federation.placement.snapshot import ClusterSnapshot

V = TypeVar("V")

_SPARSE = 24
"""Up to this many members a mask is read bit by bit; above it, through its binary digits."""

_BITS = bytes.maketrans(b"01", b"\x00\x01")
"""'0'/'1' digits of ``bin()`` to the falsy/truthy bytes ``compress`` selects with."""


@dataclass(frozen=True, slots=True)
class TaintGroup:
    """The clusters that carry exactly the same taints (few distinct lists in a real fleet)."""

    taints: tuple[Taint, ...]
    members: int


class FleetIndex:
    """Clusters of one snapshot by label, label key, taints and readiness, as bitmasks."""

    __slots__ = ("_position", "_values", "_with_key", "everyone", "names", "not_ready", "taint_groups")

    def __init__(self, clusters: Sequence[ClusterSnapshot]) -> None:
        """``clusters`` sorted by name with unique names (as the Placer holds them)."""
        self.names: tuple[str, ...] = tuple(c.name for c in clusters)
        self.everyone = (1 << len(self.names)) - 1
        self._position = {name: i for i, name in enumerate(self.names)}
        values: dict[str, dict[str, int]] = {}
        with_key: dict[str, int] = {}
        groups: dict[tuple[tuple[str, str, TaintEffect], ...], tuple[tuple[Taint, ...], int]] = {}
        not_ready = 0
        for i, c in enumerate(clusters):
            bit = 1 << i
            for key, value in c.labels.items():
                by_value = values.setdefault(key, {})
                by_value[value] = by_value.get(value, 0) | bit
                with_key[key] = with_key.get(key, 0) | bit
            if c.taints:
                # Grouped by what judging a taint reads (key, value, effect), not timeAdded.
                sig = tuple((t.key, t.value, t.effect) for t in c.taints)
                taints, members = groups.get(sig, (c.taints, 0))
                groups[sig] = (taints, members | bit)
            if not c.ready:
                not_ready |= bit
        self._values = values
        self._with_key = with_key
        self.taint_groups = tuple(TaintGroup(t, m) for t, m in groups.values())
        self.not_ready = not_ready

    def names_of(self, mask: int) -> list[str]:
        """The clusters of ``mask``, in cluster (name) order."""
        if mask.bit_count() > _SPARSE:
            return list(compress(self.names, bin(mask)[:1:-1].encode().translate(_BITS)))
        names = self.names
        out = []
        while mask:  # few members: visit them rather than every cluster
            low = mask & -mask
            out.append(names[low.bit_length() - 1])
            mask ^= low
        return out

    def named(self, names: Iterable[str]) -> int:
        """The clusters of ``names`` that are in the snapshot (unknown names select nothing)."""
        mask = 0
        position = self._position
        for name in names:
            i = position.get(name)
            if i is not None:
                mask |= 1 << i
        return mask

    def with_label(self, key: str) -> int:
        return self._with_key.get(key, 0)

    def selected(self, selector: LabelSelector) -> int:
        """The clusters whose labels ``selector`` matches (Kubernetes semantics, as
        `LabelSelector.matches`: NotIn and DoesNotExist match clusters without the key)."""
        mask = self.everyone
        for key, value in selector.match_labels.items():
            mask &= self._values.get(key, {}).get(value, 0)
        for req in selector.match_expressions:
            op = req.operator
            if op is SelectorOperator.EXISTS:
                mask &= self.with_label(req.key)
            elif op is SelectorOperator.DOES_NOT_EXIST:
                mask &= ~self.with_label(req.key)
            else:
                by_value = self._values.get(req.key, {})
                any_of = 0
                for value in req.values:
                    any_of |= by_value.get(value, 0)
                mask &= any_of if op is SelectorOperator.IN else ~any_of
        return mask & self.everyone

    def targeted(self, target: TargetClusters) -> int:
        """The clusters one entry picks (by names or by selector, as `TargetClusters.matches`)."""
        if target.cluster_names is not None:
            return self.named(target.cluster_names)
        return self.selected(target.cluster_selector) if target.cluster_selector is not None else 0

    def labelled(self, groups: Sequence[tuple[int, V]]) -> dict[str, V]:
        """Disjoint masks, each with its value, as one map in cluster order (the scan's order).

        The largest group is written with every member of every group in one ``fromkeys`` (in
        C), and the others, typically a few clusters each, overwrite their members' values.
        """
        groups = [(mask, value) for mask, value in groups if mask]
        if not groups:
            return {}
        union = 0
        for mask, _ in groups:
            union |= mask
        largest = max(range(len(groups)), key=lambda i: groups[i][0].bit_count())
        out = dict.fromkeys(self.names_of(union), groups[largest][1])
        for i, (mask, value) in enumerate(groups):
            if i != largest:
                out.update(zip(self.names_of(mask), repeat(value)))
        return out


@dataclass(frozen=True)
class Verdicts:
    """One placement's filter verdicts as masks: cheap to compute and to compare, so specs that
    filter the fleet alike (per-application policies that differ in nothing that matters here)
    are recognised before any per-cluster map is written."""

    hard: tuple[tuple[int, Reason], ...]
    soft: tuple[tuple[int, Reason], ...]
    fresh: int
    weights: tuple[tuple[int, int], ...] | None
    prefer_no_schedule: tuple[tuple[int, int], ...]

    @property
    def key(self) -> Hashable:
        """Equal for equal verdicts: the same clusters with the same words, codes and subjects."""

        def reasons(groups: tuple[tuple[int, Reason], ...]) -> tuple[tuple[int, str, str, str | None], ...]:
            return tuple((m, str(r), r.code.value, r.subject) for m, r in groups)

        return (reasons(self.hard), reasons(self.soft), self.fresh, self.weights, self.prefer_no_schedule)

    def filtered(self, index: FleetIndex) -> Filtered:
        """The verdicts as `filter_clusters` writes them: maps by cluster name, in cluster order."""
        return Filtered(
            hard=index.labelled(self.hard),
            soft=index.labelled(self.soft),
            fresh=tuple(index.names_of(self.fresh)),
            weights=index.labelled(self.weights) if self.weights is not None else None,
            prefer_no_schedule=index.labelled(self.prefer_no_schedule),
        )


def filter_indexed(placement: Placement, index: FleetIndex) -> Filtered:
    """`filter_clusters` answered from the index: the same verdicts, words, codes and order."""
    return judge(placement, index).filtered(index)


def judge(placement: Placement, index: FleetIndex) -> Verdicts:
    """The verdicts of `filter_clusters`, as masks.

    Each step takes its clusters out of ``left`` so that a cluster keeps the first reason that
    applies, in the order `federation.placement.filters` documents.
    """
    left = index.everyone
    hard: list[tuple[int, Reason]] = []

    def exclude(mask: int, reason: Reason) -> None:
        nonlocal left
        if mask:
            hard.append((mask, reason))
            left &= ~mask

    if placement.exclude_clusters:
        exclude(
            index.named(placement.exclude_clusters) & left,
            Reason(ReasonCode.EXCLUDED_BY_NAME, "listed in excludeClusters"),
        )
    if placement.cluster_names is not None:
        exclude(
            left & ~index.named(placement.cluster_names),
            Reason(ReasonCode.NOT_IN_CLUSTER_NAMES, "not in clusterNames"),
        )
    selector = placement.cluster_selector
    if selector is not None:
        exclude(
            left & ~index.selected(selector),
            Reason(ReasonCode.SELECTOR_MISMATCH, f"not matched by clusterSelector {selector.describe()}"),
        )

    no_schedule: list[tuple[int, Reason]] = []
    prefer: list[tuple[int, int]] = []
    tolerations = placement.tolerations
    for group in index.taint_groups:
        members = group.members & left
        if not members:
            continue
        taints = untolerated(group.taints, tolerations)
        no_execute = next((t for t in taints if t.effect is TaintEffect.NO_EXECUTE), None)
        if no_execute is not None:
            exclude(members, _taint_reason(ReasonCode.TAINT_NO_EXECUTE, no_execute))
            continue
        soft_taint = next((t for t in taints if t.effect is TaintEffect.NO_SCHEDULE), None)
        if soft_taint is not None:
            no_schedule.append((members, _taint_reason(ReasonCode.TAINT_NO_SCHEDULE, soft_taint)))
        penalty = sum(1 for t in taints if t.effect is TaintEffect.PREFER_NO_SCHEDULE)
        if penalty:
            prefer.append((members, penalty))

    for i, c in enumerate(placement.spread_constraints):
        exclude(
            left & ~index.with_label(c.topology_key),
            Reason(
                ReasonCode.NO_SPREAD_LABEL,
                f"has no label {c.topology_key} (spreadConstraints[{i}].topologyKey)",
            ),
        )

    static = static_weights(placement)
    parts: list[tuple[int, int]] | None = None
    if static is not None:
        entries = [(index.targeted(w), w.weight) for w in static]
        covered = 0
        for mask, _ in entries:
            covered |= mask
        exclude(
            left & ~covered, Reason(ReasonCode.NO_WEIGHT, "matched by no replicaScheduling.weights entry")
        )
        # Heaviest first, each entry keeping the clusters no heavier entry took: a cluster several
        # entries match gets the highest weight, and the parts are disjoint.
        parts = []
        taken = 0
        for mask, weight in sorted(entries, key=lambda e: -e[1]):
            part = mask & left & ~taken
            if part:
                parts.append((part, weight))
                taken |= part

    soft: list[tuple[int, Reason]] = []
    held = 0
    for members, reason in no_schedule:
        if members & left:
            soft.append((members & left, reason))
            held |= members & left
    not_ready = index.not_ready & left & ~held
    if not_ready:
        soft.append((not_ready, Reason(ReasonCode.NOT_READY, "not ready")))
        held |= not_ready
    return Verdicts(
        hard=tuple(hard),
        soft=tuple(soft),
        fresh=left & ~held,
        weights=tuple(parts) if parts is not None else None,
        prefer_no_schedule=tuple((m & left, p) for m, p in prefer if m & left),
    )


def _taint_reason(code: ReasonCode, taint: Taint) -> Reason:
    return Reason(code, f"excluded by taint {taint.describe()}", subject=taint.key)
