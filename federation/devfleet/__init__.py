"""A local fleet for the demo, the tests and the benchmarks: real kube-apiservers on an
embedded etcd (built from the Kubernetes Go modules) plus an embedded PostgreSQL server.

The public API is `LocalFleet`; `FleetBackend` is the seam for other ways of getting
clusters (`KindBackend` for machines with Docker).
"""

from federation.devfleet.backend import ClusterInfo, FleetBackend, UnsupportedOperationError
from federation.devfleet.build import ensure_binary
from federation.devfleet.controlplane import ControlPlaneBackend
from federation.devfleet.fleet import (
    HUB,
    FleetInfo,
    LocalFleet,
    default_state_dir,
    member_names,
    read_state,
    state_dir_busy,
)
from federation.devfleet.kind import KindBackend
from federation.devfleet.postgres import EmbeddedPostgres

__all__ = [
    "HUB",
    "ClusterInfo",
    "ControlPlaneBackend",
    "EmbeddedPostgres",
    "FleetBackend",
    "FleetInfo",
    "KindBackend",
    "LocalFleet",
    "UnsupportedOperationError",
    "default_state_dir",
    "ensure_binary",
    "member_names",
    "read_state",
    "state_dir_busy",
]
