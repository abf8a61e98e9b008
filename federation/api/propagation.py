"""PropagationPolicy and ClusterPropagationPolicy: which templates go to which clusters.

The placement vocabulary follows Karmada's (affinity, tolerations, spread constraints,
Duplicated/Divided replica scheduling) with OCM/KubeFleet's ``maxClusters`` for "pick N".
Cross-field rules live twice, on purpose: as CEL ``x-kubernetes-validations`` in the generated
CRDs (so ``kubectl apply`` refuses a bad policy) and as pydantic validators here (so ``federation
plan`` and the controller refuse the same objects with the same words).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from federation.api.base import CrdInfo, KubeModel, TopLevelObject
from federation.api.conditions import Condition
from federation.api.selectors import LabelSelector, ResourceSelector
from federation.api.taints import Toleration

JSON_POINTER_PATTERN = r"^(/([^~/]|~[01])*)+$"
"""A non-empty RFC 6901 JSON pointer (the whole document is never a valid target)."""

JsonPointer = Annotated[str, StringConstraints(pattern=JSON_POINTER_PATTERN, max_length=1024)]

_INT32_MAX = 2**31 - 1


class ClusterAffinity(KubeModel):
    """Which clusters are candidates. All given fields must hold; nothing given = every cluster."""

    cluster_names: tuple[str, ...] | None = Field(default=None, max_length=1000)
    cluster_selector: LabelSelector | None = None
    exclude_clusters: tuple[str, ...] = Field(default=(), max_length=1000)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if name in self.exclude_clusters:
            return False
        if self.cluster_names is not None and name not in self.cluster_names:
            return False
        return self.cluster_selector is None or self.cluster_selector.matches(labels)


class TargetCluster(KubeModel):
    """The clusters a static weight applies to: exactly one of clusterNames or clusterSelector."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.clusterNames) != has(self.clusterSelector)",
                    "message": "give exactly one of clusterNames or clusterSelector",
                }
            ]
        }
    )

    cluster_names: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=1000)
    cluster_selector: LabelSelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetCluster:
        if (self.cluster_names is None) == (self.cluster_selector is None):
            raise ValueError("give exactly one of clusterNames or clusterSelector")
        return self

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.cluster_names is not None:
            return name in self.cluster_names
        return self.cluster_selector is not None and self.cluster_selector.matches(labels)


class StaticWeight(KubeModel):
    target_cluster: TargetCluster
    weight: int = Field(ge=1, le=_INT32_MAX)


class DynamicWeight(StrEnum):
    AVAILABLE_REPLICAS = "AvailableReplicas"


class WeightPreference(KubeModel):
    """How Divided replicas are shared: fixed weights, or in proportion to free capacity."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.staticWeights) != has(self.dynamicWeight)",
                    "message": "give exactly one of staticWeights or dynamicWeight",
                }
            ]
        }
    )

    static_weights: tuple[StaticWeight, ...] | None = Field(default=None, min_length=1, max_length=100)
    dynamic_weight: DynamicWeight | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WeightPreference:
        if (self.static_weights is None) == (self.dynamic_weight is None):
            raise ValueError("give exactly one of staticWeights or dynamicWeight")
        return self


class ReplicaSchedulingType(StrEnum):
    DUPLICATED = "Duplicated"
    """Every chosen cluster runs spec.replicas."""
    DIVIDED = "Divided"
    """spec.replicas is shared among the chosen clusters (equal weights unless weightPreference)."""


class ReplicaScheduling(KubeModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type == 'Divided' || !has(self.weightPreference)",
                    "message": "weightPreference is only valid with type Divided",
                }
            ]
        }
    )

    type: ReplicaSchedulingType = ReplicaSchedulingType.DUPLICATED
    weight_preference: WeightPreference | None = None

    @model_validator(mode="after")
    def _divided_only(self) -> ReplicaScheduling:
        if self.weight_preference is not None and self.type is not ReplicaSchedulingType.DIVIDED:
            raise ValueError("weightPreference is only valid with type Divided")
        return self


class SpreadConstraint(KubeModel):
    """Spread the chosen clusters over the values of one cluster label (region, zone, provider)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxGroups) || self.maxGroups >= self.minGroups",
                    "message": "maxGroups must be greater than or equal to minGroups",
                }
            ]
        }
    )

    topology_key: str = Field(min_length=1, max_length=317)
    min_groups: int = Field(default=1, ge=1, le=1000)
    max_groups: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> SpreadConstraint:
        if self.max_groups is not None and self.max_groups < self.min_groups:
            raise ValueError("maxGroups must be greater than or equal to minGroups")
        return self


class Placement(KubeModel):
    """Where a template goes. The empty placement means: every ready cluster, Duplicated."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxClusters) || !has(self.spreadConstraints)"
                    " || self.spreadConstraints.all(c, !has(c.minGroups) || c.minGroups <= self.maxClusters)",
                    "message": "every spreadConstraints[].minGroups must be at most maxClusters",
                }
            ]
        }
    )

    cluster_affinity: ClusterAffinity | None = None
    cluster_tolerations: tuple[Toleration, ...] = Field(default=(), max_length=64)
    max_clusters: int | None = Field(default=None, ge=1, le=100000)
    spread_constraints: tuple[SpreadConstraint, ...] = Field(default=(), max_length=8)
    replica_scheduling: ReplicaScheduling | None = None

    @model_validator(mode="after")
    def _spread_fits(self) -> Placement:
        if self.max_clusters is not None:
            for i, c in enumerate(self.spread_constraints):
                if c.min_groups > self.max_clusters:
                    raise ValueError(
                        f"spreadConstraints[{i}].minGroups={c.min_groups} "
                        f"is more than maxClusters={self.max_clusters}"
                    )
        return self

    @property
    def scheduling(self) -> ReplicaScheduling:
        return self.replica_scheduling or ReplicaScheduling()


class ConflictResolution(StrEnum):
    ABORT = "Abort"
    """An object that exists in the member and is not ours is left alone; the work is Conflict."""
    OVERWRITE = "Overwrite"
    """Such an object is adopted: force-applied and stamped with our ownership."""


class PropagationSpec(KubeModel):
    resource_selectors: tuple[ResourceSelector, ...] = Field(min_length=1, max_length=100)
    priority: int = Field(default=0, ge=-_INT32_MAX - 1, le=_INT32_MAX)
    placement: Placement = Field(default_factory=Placement)
    conflict_resolution: ConflictResolution = ConflictResolution.ABORT
    retain_fields: tuple[JsonPointer, ...] = Field(
        default=(),
        max_length=64,
        description="JSON pointers (e.g. /spec/replicas) the member clusters own: never written by the hub.",
    )


class PropagationStatus(KubeModel):
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()


_POLICY_COLUMNS = (
    {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
    {"name": "Scheduling", "type": "string", "jsonPath": ".spec.placement.replicaScheduling.type"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)


class PropagationPolicy(TopLevelObject):
    """Places templates of its own namespace."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="propagationpolicies", scope="Namespaced", short_names=("pp",), printer_columns=_POLICY_COLUMNS
    )

    kind: Literal["PropagationPolicy"] = "PropagationPolicy"
    spec: PropagationSpec
    status: PropagationStatus | None = None

    @model_validator(mode="after")
    def _own_namespace(self) -> PropagationPolicy:
        ns = self.metadata.namespace
        for i, sel in enumerate(self.spec.resource_selectors):
            if sel.namespace is not None and ns is not None and sel.namespace != ns:
                raise ValueError(
                    f"spec.resourceSelectors[{i}].namespace: a PropagationPolicy selects only in its own "
                    f"namespace {ns!r}, not {sel.namespace!r} (use a ClusterPropagationPolicy)"
                )
        return self


class ClusterPropagationPolicy(TopLevelObject):
    """Places templates of any namespace, and cluster-scoped templates."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="clusterpropagationpolicies",
        scope="Cluster",
        short_names=("cpp",),
        printer_columns=_POLICY_COLUMNS,
    )

    kind: Literal["ClusterPropagationPolicy"] = "ClusterPropagationPolicy"
    spec: PropagationSpec
    status: PropagationStatus | None = None


PolicyLike = PropagationPolicy | ClusterPropagationPolicy
