"""OverridePolicy and ClusterOverridePolicy: per-cluster changes to a template's copy.

Rules apply in order; ClusterOverridePolicies before OverridePolicies (so the namespace's own
policy has the last word), each kind sorted by name. Every string in an overrider may use
``${CLUSTER_NAME}``, replaced by the target cluster's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from federation.api.base import CrdInfo, KubeModel, TopLevelObject
from federation.api.conditions import Condition
from federation.api.propagation import JsonPointer, TargetClusters
from federation.api.selectors import ResourceSelector


class PatchOp(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"
    MOVE = "move"
    COPY = "copy"
    TEST = "test"


_VALUE_OPS = ("add", "replace", "test")
_FROM_OPS = ("move", "copy")


class JsonPatchOperation(KubeModel):
    """One RFC 6902 operation.

    "value is required for add, replace and test" is checked here only: CEL cannot see a field
    of any JSON type (``x-kubernetes-preserve-unknown-fields`` without a type), so the CRD
    cannot express it; the controller reports such a policy as invalid.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.op in ['move', 'copy']) == has(self.from)",
                    "message": "from is required for move and copy, and only for them",
                },
            ]
        }
    )

    op: PatchOp
    path: JsonPointer
    value: Any = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    from_: JsonPointer | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _operands(self) -> JsonPatchOperation:
        if (self.op.value in _FROM_OPS) != (self.from_ is not None):
            raise ValueError("from is required for move and copy, and only for them")
        if self.op.value in _VALUE_OPS and "value" not in self.model_fields_set:
            raise ValueError("value is required for add, replace and test")
        return self

    def to_rfc6902(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op.value, "path": self.path}
        if "value" in self.model_fields_set:
            out["value"] = self.value
        if self.from_ is not None:
            out["from"] = self.from_
        return out


class ImageComponent(StrEnum):
    """The part of an image reference ``registry/repository:tag@digest`` an overrider changes."""

    # Lowercase, unlike our other enums, as issue 4 spells them: they name the parts of the reference.
    REGISTRY = "registry"
    REPOSITORY = "repository"
    TAG = "tag"
    DIGEST = "digest"


class ImageOperator(StrEnum):
    REPLACE = "Replace"
    """Set the component (adding it when the image has none)."""
    REMOVE = "Remove"
    """Drop the component (registry, tag or digest; the repository cannot be removed)."""


class ImageOverrider(KubeModel):
    """Change one component of container images.

    Without ``path`` it applies to every container and initContainer of the pod template
    (``spec.template.spec`` for workloads, ``spec`` for a Pod, ``spec.jobTemplate.spec.template.spec``
    for a CronJob); with ``path`` it applies to the one image string at that JSON pointer.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator == 'Remove' || (has(self.value) && self.value != '')",
                    "message": "value is required unless operator is Remove",
                },
                {
                    "rule": "!(self.operator == 'Remove' && self.component == 'repository')",
                    "message": "the repository component cannot be removed",
                },
            ]
        }
    )

    component: ImageComponent
    operator: ImageOperator = ImageOperator.REPLACE
    value: str = Field(default="", max_length=512)
    path: JsonPointer | None = None

    @model_validator(mode="after")
    def _operands(self) -> ImageOverrider:
        if self.operator is ImageOperator.REPLACE and not self.value:
            raise ValueError("value is required unless operator is Remove")
        if self.operator is ImageOperator.REMOVE and self.component is ImageComponent.REPOSITORY:
            raise ValueError("the repository component cannot be removed")
        return self


class MetadataOverrider(KubeModel):
    """Labels or annotations to set and to remove (remove applies after set)."""

    set: Mapping[str, str] = Field(default_factory=dict)
    remove: tuple[str, ...] = Field(default=(), max_length=256)


class Overriders(KubeModel):
    """What one rule changes, applied in this field order: jsonPatch, mergePatch, image, labels,
    annotations, replicas."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.jsonPatch) || has(self.mergePatch) || has(self.image)"
                    " || has(self.labels) || has(self.annotations) || has(self.replicas)",
                    "message": "give at least one overrider",
                }
            ]
        }
    )

    json_patch: tuple[JsonPatchOperation, ...] | None = Field(default=None, max_length=256)
    merge_patch: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    image: tuple[ImageOverrider, ...] | None = Field(default=None, max_length=64)
    labels: MetadataOverrider | None = None
    annotations: MetadataOverrider | None = None
    replicas: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _something(self) -> Overriders:
        if all(
            getattr(self, f) is None
            for f in ("json_patch", "merge_patch", "image", "labels", "annotations", "replicas")
        ):
            raise ValueError("give at least one overrider")
        return self


class OverrideRule(KubeModel):
    """Overriders for the clusters of ``targetClusters`` (every cluster when it is omitted)."""

    target_clusters: TargetClusters | None = Field(
        default=None,
        description="The clusters this rule applies to: exactly one of clusterNames or clusterSelector. "
        "Omitted: every cluster.",
    )
    overriders: Overriders

    def applies_to(self, name: str, labels: Mapping[str, str]) -> bool:
        return self.target_clusters is None or self.target_clusters.matches(name, labels)


class OverrideSpec(KubeModel):
    resource_selectors: tuple[ResourceSelector, ...] = Field(min_length=1, max_length=100)
    rules: tuple[OverrideRule, ...] = Field(
        min_length=1,
        max_length=100,
        description="Applied in order; a later rule sees the earlier ones' result.",
    )


class OverrideStatus(KubeModel):
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()


_OVERRIDE_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


class OverridePolicy(TopLevelObject):
    """Overrides templates of its own namespace."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="overridepolicies", scope="Namespaced", short_names=("op",), printer_columns=_OVERRIDE_COLUMNS
    )

    kind: Literal["OverridePolicy"] = "OverridePolicy"
    spec: OverrideSpec
    status: OverrideStatus | None = None


class ClusterOverridePolicy(TopLevelObject):
    """Overrides templates of any namespace, and cluster-scoped templates."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        plural="clusteroverridepolicies",
        scope="Cluster",
        short_names=("cop",),
        printer_columns=_OVERRIDE_COLUMNS,
    )

    kind: Literal["ClusterOverridePolicy"] = "ClusterOverridePolicy"
    spec: OverrideSpec
    status: OverrideStatus | None = None


OverridePolicyLike = OverridePolicy | ClusterOverridePolicy
