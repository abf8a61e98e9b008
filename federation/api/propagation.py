"""PropagationPolicy and ClusterPropagationPolicy: which templates go to which clusters.

The placement vocabulary follows Karmada's (cluster names and selector, tolerations, spread
constraints, Duplicated/Divided replica scheduling), flattened into ``placement`` as issue 4
specifies, with OCM/KubeFleet's ``maxClusters`` for "pick N".
Cross-field rules live twice, on purpose: as CEL ``x-kubernetes-validations`` in the generated
CRDs (so ``kubectl apply`` refuses a bad policy) and as pydantic validators here (so ``federation
plan`` and the controller refuse the same objects with the same words).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from federation.api.base import CrdInfo, KubeModel, TopLevelObject
from federation.api.conditions import Condition
from federation.api.rollout import RolloutStrategy
from federation.api.selectors import LabelSelector, ResourceSelector
from federation.api.taints import Toleration

JSON_POINTER_PATTERN = r"^(/([^~/]|~[01])*)+$"
"""A non-empty RFC 6901 JSON pointer (the whole document is never a valid target)."""

JsonPointer = Annotated[str, StringConstraints(pattern=JSON_POINTER_PATTERN, max_length=1024)]

_INT32_MAX = 2**31 - 1


class TargetClusters(KubeModel):
    """A set of clusters named by exactly one of ``clusterNames`` or ``clusterSelector``.

    Used where one entry picks clusters on its own (a weight, an override rule's target): given
    both, it is unclear whether they intersect or add up, so both is refused rather than guessed.
    """

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
    def _exactly_one(self) -> Self:
        if (self.cluster_names is None) == (self.cluster_selector is None):
            raise ValueError("give exactly one of clusterNames or clusterSelector")
        return self

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.cluster_names is not None:
            return name in self.cluster_names
        return self.cluster_selector is not None and self.cluster_selector.matches(labels)


class ClusterWeight(TargetClusters):
    """The weight of the clusters of one entry when Divided replicas are shared by weight.

    A cluster matched by several entries takes the highest weight; a cluster matched by none
    gets no replicas (it is excluded, with that reason).
    """

    weight: int = Field(ge=1, le=_INT32_MAX)


class DynamicWeight(StrEnum):
    """What Divided replicas follow when they are shared by measured capacity."""

    AVAILABLE_REPLICAS = "AvailableReplicas"
    """In proportion to the replicas each cluster reports it still has room for."""


class ReplicaSchedulingType(StrEnum):
    DUPLICATED = "Duplicated"
    """Every chosen cluster runs spec.replicas."""
    DIVIDED = "Divided"
    """spec.replicas is shared among the chosen clusters (equal shares unless weights or dynamic)."""


class ReplicaScheduling(KubeModel):
    """How spec.replicas is spread: copied to every cluster, or shared (Divided).

    Divided shares equally unless ``weights`` (fixed) or ``dynamic`` (measured) is given; they
    are two answers to the same question, so at most one may be given.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type == 'Divided' || (!has(self.weights) && !has(self.dynamic))",
                    "message": "weights and dynamic are only valid with type Divided",
                },
                {
                    "rule": "!has(self.weights) || !has(self.dynamic)",
                    "message": "give at most one of weights or dynamic",
                },
            ]
        }
    )

    type: ReplicaSchedulingType = ReplicaSchedulingType.DUPLICATED
    weights: tuple[ClusterWeight, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Divided by fixed weights: a cluster takes the highest weight of the entries "
        "matching it; a cluster no entry matches gets no replicas.",
    )
    dynamic: DynamicWeight | None = Field(
        default=None, description="Divided in proportion to what each cluster reports it can still run."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ReplicaScheduling:
        if self.type is not ReplicaSchedulingType.DIVIDED and (
            self.weights is not None or self.dynamic is not None
        ):
            raise ValueError("weights and dynamic are only valid with type Divided")
        if self.weights is not None and self.dynamic is not None:
            raise ValueError("give at most one of weights or dynamic")
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
    """Where a template goes. The empty placement means: every ready cluster, Duplicated.

    ``clusterNames``, ``clusterSelector`` and ``excludeClusters`` must all hold for a cluster to
    be a candidate (each one left out does not restrict); ``tolerations`` let it onto tainted
    clusters; ``spreadConstraints`` and ``maxClusters`` then pick among the candidates.
    """

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

    cluster_names: tuple[str, ...] | None = Field(
        default=None, max_length=1000, description="Only these clusters (by name) are candidates."
    )
    cluster_selector: LabelSelector | None = Field(
        default=None, description="Only clusters whose labels match are candidates."
    )
    exclude_clusters: tuple[str, ...] = Field(
        default=(), max_length=1000, description="Never these clusters (by name)."
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(), max_length=64, description="The cluster taints this placement tolerates."
    )
    max_clusters: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Pick at most N clusters: those already holding the resource first, then the roomiest.",
    )
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


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    """Member copies are deleted when their template or policy is deleted, or when a cluster is
    dropped from the placement."""
    ORPHAN = "Orphan"
    """Member copies are left in place with our ownership stamp removed: from then on they belong
    to the member cluster (for migrations off the federation, or data that must outlive it)."""


#: What a copy is named by: a member may not own these (`retainFields` leaves a field out of
#: the copy, and a copy without its kind or name is no copy of the template).
UNRETAINABLE = ("/apiVersion", "/kind", "/metadata", "/metadata/name", "/metadata/namespace")
_UNRETAINABLE_CEL = ", ".join(f"'{p}'" for p in UNRETAINABLE)


class PropagationSpec(KubeModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.retainFields) || self.retainFields.all(p, !(p in "
                    f"[{_UNRETAINABLE_CEL}]))",
                    "message": "retainFields may not name apiVersion, kind, metadata, metadata.name "
                    "or metadata.namespace: they are what the copy is",
                    "fieldPath": ".retainFields",
                }
            ]
        }
    )

    resource_selectors: tuple[ResourceSelector, ...] = Field(min_length=1, max_length=100)
    priority: int = Field(
        default=0,
        ge=-_INT32_MAX - 1,
        le=_INT32_MAX,
        description="When several policies select a resource, the highest priority governs it.",
    )
    placement: Placement = Field(default_factory=Placement)
    conflict_resolution: ConflictResolution = ConflictResolution.ABORT
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    retain_fields: tuple[JsonPointer, ...] = Field(
        default=(),
        max_length=64,
        description="JSON pointers (e.g. /spec/replicas) the member clusters own: never written by the hub.",
    )

    propagate_dependencies: bool = Field(
        default=False,
        description="The ConfigMaps, Secrets, ServiceAccounts and PersistentVolumeClaims a workload's "
        "pod template references follow the workload to its clusters.",
    )
    suspend: bool = Field(
        default=False,
        description="Decisions are still made and reported, but nothing is applied to, or deleted "
        "from, member clusters until this is false again.",
    )
    rollout: RolloutStrategy | None = Field(
        default=None,
        description="How a changed template reaches the chosen clusters: in stages, each gated on "
        "its copies being Healthy for a soak time (and optionally an approval). Without it, every "
        "chosen cluster gets the change at once.",
    )

    @model_validator(mode="after")
    def _retain_no_identity(self) -> Self:
        for i, pointer in enumerate(self.retain_fields):
            if pointer in UNRETAINABLE:
                raise ValueError(
                    f"retainFields[{i}] {pointer}: retainFields may not name apiVersion, kind, metadata, "
                    "metadata.name or metadata.namespace: they are what the copy is"
                )
        return self


class PropagationStatus(KubeModel):
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: tuple[Condition, ...] = ()
    matched_resources: int | None = Field(
        default=None,
        ge=0,
        description="How many templates this policy governs (it selects them and wins the precedence). "
        "A count, so the status stays small for any number of templates.",
    )


_POLICY_COLUMNS = (
    {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
    {"name": "Scheduling", "type": "string", "jsonPath": ".spec.placement.replicaScheduling.type"},
    {"name": "Matched", "type": "integer", "jsonPath": ".status.matchedResources"},
    {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
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
