"""What the placement engine sees of a member cluster at one moment.

A snapshot is plain immutable data, built by the cluster registry from a MemberCluster (or a
clusters-file entry); the engine never reads anything else, which is what keeps it pure and
lets one ``Placer`` reuse its work for every resource decided against the same snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from federation.api import ClusterEntry, MemberCluster, Taint
from federation.api.quantity import millicores, whole
from federation.errors import InvalidObjectError


@dataclass(frozen=True, slots=True)
class Allocatable:
    """Free capacity; any part may be unknown."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    pods: int | None = None


@dataclass(frozen=True)
class ClusterSnapshot:
    """One member cluster as placement sees it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    allocatable: Allocatable | None = None
    available_replicas: int | None = None
    """Replicas of a workload that still fit (for Divided by dynamic weight); None = unknown."""
    free: Allocatable | None = None
    """Free capacity measured from the cluster's nodes and pods (`federation.clusters.capacity`);
    None when not measured. Divided by dynamic weight divides it by a replica's requests."""

    def __post_init__(self) -> None:
        # A read-only copy: snapshots are shared by every decision of a Placer.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


def snapshot_from_entry(entry: ClusterEntry) -> ClusterSnapshot:
    """A clusters-file entry as a snapshot: assumed ready, capacity unknown."""
    return ClusterSnapshot(name=entry.name, labels=dict(entry.labels), taints=entry.taints)


def snapshot_from_member_cluster(cluster: MemberCluster) -> ClusterSnapshot:
    """A MemberCluster as a snapshot: labels from metadata, readiness and capacity from status."""
    status = cluster.status
    allocatable = None
    if status is not None and status.allocatable is not None:
        res = status.allocatable
        try:
            allocatable = Allocatable(
                cpu_millicores=millicores(res.cpu) if res.cpu is not None else None,
                memory_bytes=whole(res.memory) if res.memory is not None else None,
                pods=whole(res.pods) if res.pods is not None else None,
            )
        except ValueError as exc:
            raise InvalidObjectError(f"{cluster.ref}: status.allocatable: {exc}") from None
    return ClusterSnapshot(
        name=cluster.metadata.name,
        labels=dict(cluster.metadata.labels),
        taints=cluster.spec.taints,
        ready=cluster.ready,
        allocatable=allocatable,
        available_replicas=status.available_replicas if status is not None else None,
    )
