"""The result of placing one resource: where it goes, and why every other cluster does not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from federation.placement.reasons import Reason, ReasonCode


@dataclass(frozen=True, slots=True)
class Target:
    """One chosen cluster; ``replicas`` is None for resources without spec.replicas."""

    cluster: str
    replicas: int | None


@dataclass(frozen=True)
class Decision:
    """Where one resource goes.

    ``targets`` are sorted by cluster name. ``excluded`` names EVERY cluster of the snapshot that
    is not a target, with a `Reason` (words a person can act on, and a code). ``unschedulable``
    is set when the placement cannot be satisfied at all (then ``targets`` is empty); what the
    controller keeps then is its rule, not the engine's (`federation.hub.pipeline`).

    Decisions are shared between resources by the Placer's memo, so they are deeply immutable.
    """

    targets: tuple[Target, ...]
    excluded: Mapping[str, Reason] = field(default_factory=dict)
    unschedulable: Reason | None = None
    room: Mapping[str, int] | None = None
    """Divided by dynamic weight: how many replicas each chosen cluster had room for (what the
    division followed). A share above it cannot all run there (`short`)."""

    def short(self, cluster: str) -> int:
        """Replicas of `cluster`'s share it has no room for (0 when it fits, or not measured)."""
        room = self.room.get(cluster) if self.room is not None else None
        replicas = self.replicas_of(cluster)
        return max(0, replicas - room) if room is not None and replicas is not None else 0

    def __post_init__(self) -> None:
        if not isinstance(self.excluded, MappingProxyType):
            object.__setattr__(
                self, "excluded", MappingProxyType({c: as_reason(r) for c, r in self.excluded.items()})
            )
        if self.unschedulable is not None and not isinstance(self.unschedulable, Reason):
            object.__setattr__(self, "unschedulable", as_reason(self.unschedulable))

    @cached_property
    def cluster_names(self) -> frozenset[str]:
        """The chosen clusters (computed once per decision; the Placer keys its memo on it)."""
        return frozenset(t.cluster for t in self.targets)

    def replicas_of(self, cluster: str) -> int | None:
        for t in self.targets:
            if t.cluster == cluster:
                return t.replicas
        raise KeyError(cluster)


def as_reason(words: str, code: ReasonCode = ReasonCode.RECORDED) -> Reason:
    """``words`` as a `Reason` (words read back from a stored decision row get `RECORDED`)."""
    return words if isinstance(words, Reason) else Reason(code, words)
