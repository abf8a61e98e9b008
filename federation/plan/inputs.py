"""Reading the files given to ``federation plan`` into policies, overrides and templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.api import (
    KINDS,
    ClusterEntry,
    ClusterOverridePolicy,
    ClusterPropagationPolicy,
    MemberCluster,
    OverridePolicy,
    OverridePolicyLike,
    PolicyLike,
    PropagationPolicy,
    YamlDocument,
    is_federation_object,
    load_clusters_file,
    parse_document,
    read_yaml_file,
)
from federation.errors import InvalidObjectError

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "CSIDriver",
        "APIService",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
"""Built-in kinds that have no namespace. Any other kind without one gets the default namespace,
as ``kubectl apply`` would do (most custom resources are namespaced)."""


@dataclass(frozen=True)
class PlanInputs:
    policies: tuple[PolicyLike, ...]
    overrides: tuple[OverridePolicyLike, ...]
    resources: tuple[Mapping[str, Any], ...]
    clusters: tuple[ClusterEntry, ...]


def _with_namespace(data: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta = data.get("metadata")
    if isinstance(meta, dict) and not meta.get("namespace") and data.get("kind") not in CLUSTER_SCOPED_KINDS:
        return {**data, "metadata": {**meta, "namespace": namespace}}
    return data


def _check_template(doc: YamlDocument) -> dict[str, Any]:
    data = doc.data
    if not isinstance(data, dict):
        raise InvalidObjectError(
            f"{doc.where()}: expected a Kubernetes object (a mapping), got {type(data).__name__}"
        )
    for field in ("apiVersion", "kind"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise InvalidObjectError(f"{doc.where()}: object: {field}: required field is missing")
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InvalidObjectError(
            f"{doc.where(('metadata',))}: {data['kind']}: metadata.name: required field is missing"
        )
    return data


def load_plan_inputs(*, files: Sequence[Path], clusters_file: Path, namespace: str = "default") -> PlanInputs:
    """Everything ``plan`` needs, or the first problem as an error with file and line."""
    policies: list[PolicyLike] = []
    overrides: list[OverridePolicyLike] = []
    resources: list[Mapping[str, Any]] = []
    for path in files:
        for doc in read_yaml_file(path):
            data = _check_template(doc)
            if is_federation_object(data):
                model = KINDS[data["kind"]]
                if model in (PropagationPolicy, OverridePolicy):
                    data = _with_namespace(data, namespace)
                obj = parse_document(
                    model, YamlDocument(doc.source, doc.index, data, doc.start_line, doc.lines)
                )
                if isinstance(obj, PropagationPolicy | ClusterPropagationPolicy):
                    policies.append(obj)
                elif isinstance(obj, OverridePolicy | ClusterOverridePolicy):
                    overrides.append(obj)
                elif isinstance(obj, MemberCluster):
                    raise InvalidObjectError(
                        f"{doc.where()}: {obj.ref}: give clusters with --clusters, "
                        "not as MemberCluster objects"
                    )
            else:
                resources.append(_with_namespace(data, namespace))
    clusters = load_clusters_file(clusters_file)
    return PlanInputs(
        policies=tuple(policies),
        overrides=tuple(overrides),
        resources=tuple(resources),
        clusters=tuple(clusters),
    )
