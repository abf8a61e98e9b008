"""Our kinds by name, and parsing any of our objects from a plain dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.api.base import API_VERSION, TopLevelObject
from federation.api.cluster import MemberCluster
from federation.api.overrides import ClusterOverridePolicy, OverridePolicy
from federation.api.propagation import ClusterPropagationPolicy, PropagationPolicy
from federation.api.refs import ref_of
from federation.errors import InvalidObjectError

KINDS: Mapping[str, type[TopLevelObject]] = {
    cls.__name__: cls
    for cls in (
        MemberCluster,
        PropagationPolicy,
        ClusterPropagationPolicy,
        OverridePolicy,
        ClusterOverridePolicy,
    )
}
"""Every kind of our API group, in the order the CRDs are generated."""

FederationObject = (
    MemberCluster | PropagationPolicy | ClusterPropagationPolicy | OverridePolicy | ClusterOverridePolicy
)


def is_federation_object(obj: Mapping[str, Any]) -> bool:
    """Whether a manifest is one of ours (by apiVersion and kind), not a template."""
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") in KINDS


def parse_object(obj: Mapping[str, Any]) -> TopLevelObject:
    """The typed object for a manifest of our API group; InvalidObjectError otherwise."""
    kind = obj.get("kind")
    if obj.get("apiVersion") != API_VERSION or not isinstance(kind, str) or kind not in KINDS:
        raise InvalidObjectError(
            f"{ref_of(obj)}: not a {API_VERSION} object (apiVersion {obj.get('apiVersion')!r}, kind {kind!r})"
        )
    return KINDS[kind].model_validate(obj)
