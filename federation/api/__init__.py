"""The federation.io/v1alpha1 API: pydantic models of our CRDs, and the clusters file.

Every model parses the Kubernetes JSON form (``Model.model_validate(obj_dict)``) and raises
``InvalidObjectError`` naming the object and field when it is invalid. The CRDs in
``deploy/crds/`` are generated from these models (``federation crds``).
"""

from federation.api.base import API_VERSION, GROUP, VERSION, KubeModel, ObjectMeta, TopLevelObject
from federation.api.cluster import (
    MemberCluster,
    MemberClusterSpec,
    MemberClusterStatus,
    ResourceList,
    SecretKeyRef,
)
from federation.api.clustersfile import ClusterEntry, load_clusters_file
from federation.api.conditions import Condition, ConditionStatus
from federation.api.crdgen import crd_manifest, render_crds
from federation.api.documents import parse_document
from federation.api.overrides import (
    ClusterOverridePolicy,
    ImageComponent,
    ImageOperator,
    ImageOverrider,
    JsonPatchOperation,
    MetadataOverrider,
    OverridePolicy,
    OverridePolicyLike,
    Overriders,
    OverrideRule,
    PatchOp,
)
from federation.api.propagation import (
    ClusterPropagationPolicy,
    ClusterWeight,
    ConflictResolution,
    DeletionPolicy,
    DynamicWeight,
    Placement,
    PolicyLike,
    PropagationPolicy,
    ReplicaScheduling,
    ReplicaSchedulingType,
    SpreadConstraint,
    TargetClusters,
)
from federation.api.quantity import parse_quantity
from federation.api.refs import object_ref, ref_of
from federation.api.registry import KINDS, is_federation_object, parse_object
from federation.api.selectors import (
    LabelSelector,
    LabelSelectorRequirement,
    ResourceSelector,
    SelectorOperator,
)
from federation.api.taints import Taint, TaintEffect, Toleration, TolerationOperator
from federation.api.yamlsource import YamlDocument, parse_yaml, read_yaml_file

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "ClusterEntry",
    "ClusterOverridePolicy",
    "ClusterPropagationPolicy",
    "ClusterWeight",
    "Condition",
    "ConditionStatus",
    "ConflictResolution",
    "DeletionPolicy",
    "DynamicWeight",
    "ImageComponent",
    "ImageOperator",
    "ImageOverrider",
    "JsonPatchOperation",
    "KubeModel",
    "LabelSelector",
    "LabelSelectorRequirement",
    "MemberCluster",
    "MemberClusterSpec",
    "MemberClusterStatus",
    "MetadataOverrider",
    "ObjectMeta",
    "OverridePolicy",
    "OverridePolicyLike",
    "OverrideRule",
    "Overriders",
    "PatchOp",
    "Placement",
    "PolicyLike",
    "PropagationPolicy",
    "ReplicaScheduling",
    "ReplicaSchedulingType",
    "ResourceList",
    "ResourceSelector",
    "SecretKeyRef",
    "SelectorOperator",
    "SpreadConstraint",
    "Taint",
    "TaintEffect",
    "TargetClusters",
    "Toleration",
    "TolerationOperator",
    "TopLevelObject",
    "YamlDocument",
    "crd_manifest",
    "is_federation_object",
    "load_clusters_file",
    "object_ref",
    "parse_document",
    "parse_object",
    "parse_quantity",
    "parse_yaml",
    "read_yaml_file",
    "ref_of",
    "render_crds",
]
