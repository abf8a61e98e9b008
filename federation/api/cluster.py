"""MemberCluster: one member of the fleet as the hub sees it.

Labels (region, zone, gpu...) are the object's metadata labels, which is what placement
selectors match. Taints are in the spec so an admin can drain a cluster (NoSchedule) or
evict from it (NoExecute); the controller adds its own NotReady taint after a grace period.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from federation.api.base import CrdInfo, KubeModel, TopLevelObject
from federation.api.conditions import Condition
from federation.api.taints import Taint


class SecretKeyRef(KubeModel):
    """A kubeconfig stored in a hub Secret."""

    namespace: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="kubeconfig", min_length=1, max_length=253)


class MemberClusterSpec(KubeModel):
    kubeconfig_secret_ref: SecretKeyRef | None = Field(
        default=None, description="The hub Secret holding the kubeconfig that reaches the member."
    )
    context: str | None = Field(
        default=None,
        max_length=253,
        description="The kubeconfig context to use (default: the kubeconfig's current-context).",
    )  # Beyond issue 4's fields: one kubeconfig can then serve several members, as in the clusters file.
    taints: tuple[Taint, ...] = Field(default=(), max_length=64)


class ResourceList(KubeModel):
    """Capacity as Kubernetes quantities (``cpu: "8"``, ``memory: 32Gi``, ``pods: "110"``)."""

    cpu: str | None = None
    memory: str | None = None
    pods: str | None = None


class NodeCount(KubeModel):
    total: int = Field(ge=0)
    ready: int = Field(ge=0)


class MemberClusterStatus(KubeModel):
    conditions: tuple[Condition, ...] = Field(
        default=(), description="Ready: the last probe reached the member."
    )
    kubernetes_version: str | None = None
    allocatable: ResourceList | None = Field(
        default=None,
        description="Allocatable capacity summed over the member's nodes; placement ranks clusters by it.",
    )
    last_probe_time: str | None = Field(
        default=None, description="When the hub last probed the member (RFC 3339), successfully or not."
    )
    available_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Estimated replicas of a reference workload that still fit; what "
        "replicaScheduling.dynamic: AvailableReplicas divides by when the member's capacity is "
        "not measured.",
    )  # Beyond issue 4's fields: the dynamic division the issue asks for needs this figure.
    available: ResourceList | None = Field(
        default=None,
        description="Measured by the controller: allocatable minus what the pods on the member's "
        "Ready, schedulable nodes request. replicaScheduling.dynamic: AvailableReplicas divides it "
        "by a replica's requests.",
    )
    nodes: NodeCount | None = Field(default=None, description="The member's nodes, and how many are Ready.")


class MemberCluster(TopLevelObject):
    """A member cluster of the fleet."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="memberclusters",
        scope="Cluster",
        short_names=("mc",),
        printer_columns=(
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Version", "type": "string", "jsonPath": ".status.kubernetesVersion"},
            {"name": "Last Probe", "type": "date", "jsonPath": ".status.lastProbeTime"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    )

    kind: Literal["MemberCluster"] = "MemberCluster"
    spec: MemberClusterSpec = Field(default_factory=MemberClusterSpec)
    status: MemberClusterStatus | None = None

    @property
    def ready(self) -> bool:
        """Ready only when the Ready condition says True; a cluster never probed is not ready."""
        if self.status is None:
            return False
        return any(c.type == "Ready" and c.status.value == "True" for c in self.status.conditions)
