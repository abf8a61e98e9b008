"""What a local fleet needs from whatever runs its Kubernetes control planes.

`LocalFleet` talks to a `FleetBackend` only, so the control planes can come from our own
`controlplane` binary (the default, and the only one the test suite uses, because it needs
neither Docker nor downloads) or from kind on a machine with Docker (`KindBackend`). Fault
injection (stopping one apiserver, compacting etcd) is optional: a backend that cannot do it
raises `UnsupportedOperationError`, and tests that need it ask for the controlplane backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from federation.errors import DevFleetError

#: Called with one line of human-readable progress.
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ClusterInfo:
    """How to reach one cluster of a local fleet."""

    name: str
    server: str
    kubeconfig: Path
    context: str

    @property
    def port(self) -> int:
        return int(self.server.rsplit(":", 1)[1])


class UnsupportedOperationError(DevFleetError):
    """The fleet backend cannot inject this fault (e.g. etcd compaction on kind)."""


class FleetBackend(Protocol):
    """Starts and stops the Kubernetes control planes of a local fleet."""

    name: str

    def start(self, clusters: Sequence[str], *, progress: Progress) -> dict[str, ClusterInfo]:
        """Start one control plane per name; return once every one answers /readyz."""
        ...

    def stop(self) -> None:
        """Stop everything started; idempotent, safe to call after a failed start."""
        ...

    def merged_kubeconfig(self) -> Path:
        """A kubeconfig with one context per cluster (context name = cluster name)."""
        ...

    def stop_cluster(self, name: str, *, kill: bool = False) -> None:
        """Stop one cluster's apiserver (SIGTERM, or SIGKILL with kill=True)."""
        ...

    def start_cluster(self, name: str) -> None:
        """Start a stopped cluster's apiserver again on the same address; wait for ready."""
        ...

    def cluster_pid(self, name: str) -> int | None:
        """The pid of the cluster's apiserver process, or None while it is stopped."""
        ...

    def compact(self) -> int:
        """Compact the storage to its current revision (watches from older RVs get 410)."""
        ...
