"""The member registry: clusters from MemberCluster objects or a clusters file, their
connections, health probes, and the failover taint after a grace period."""

from federation.clusters.changes import FleetChange, FleetChangeKind, FleetListener
from federation.clusters.health import (
    UNREACHABLE_TAINT,
    UNREACHABLE_TAINT_KEY,
    ClusterHealth,
    HealthTracker,
    Transition,
)
from federation.clusters.registry import ClusterRegistry, Member, RegistrySettings

__all__ = [
    "UNREACHABLE_TAINT",
    "UNREACHABLE_TAINT_KEY",
    "ClusterHealth",
    "ClusterRegistry",
    "FleetChange",
    "FleetChangeKind",
    "FleetListener",
    "HealthTracker",
    "Member",
    "RegistrySettings",
    "Transition",
]
