"""What changed in the fleet, typed: listeners act on the kind, people read `describe()`.

Placement decides from the fleet as it is now; a listener only needs to know *that* it changed
and, for a failover, that re-placements must be spread out (`FleetChangeKind.FAILOVER`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class FleetChangeKind(enum.Enum):
    JOINED = "joined the fleet"
    LEAVING = "is leaving the fleet"
    LEFT = "left the fleet"
    LABELS = "labels or taints changed"
    CREDENTIALS = "its credentials Secret changed"
    READY = "ready"
    NOT_READY = "not ready"
    FAILOVER = "unreachable past the grace period: failing over"
    REACHABLE = "reachable again"
    CAPACITY = "capacity changed"
    NODES_FAILED = "no Ready node past the grace period: failing over"


@dataclass(frozen=True)
class FleetChange:
    cluster: str
    kind: FleetChangeKind

    @property
    def failover(self) -> bool:
        """Re-placements this change causes are rate limited (a dying cluster must not turn
        into a stampede of thousands at once)."""
        return self.kind in (FleetChangeKind.FAILOVER, FleetChangeKind.NODES_FAILED)

    def describe(self) -> str:
        sep = ": " if self.kind in (FleetChangeKind.LABELS, FleetChangeKind.CREDENTIALS) else " "
        return f"cluster {self.cluster}{sep}{self.kind.value}"


#: Called whenever the fleet changed in a way placement must see.
FleetListener = Callable[[FleetChange], None]
