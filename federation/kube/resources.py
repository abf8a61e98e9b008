"""Identities of Kubernetes resources and objects, and the REST paths that serve them.

Plain frozen dataclasses and functions over plain dicts: no client-library model classes, so
hot paths (informers, propagation) never pay for generated-model round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

#: A Kubernetes object as the apiserver sends it: parsed JSON.
Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class GVK:
    """Group, version, kind: what a manifest's apiVersion + kind name."""

    group: str
    version: str
    kind: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> GVK:
        return cls.parse(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))

    @classmethod
    def parse(cls, api_version: str, kind: str) -> GVK:
        group, _, version = api_version.rpartition("/")
        return cls(group, version, kind)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.api_version}, Kind={self.kind}"


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What discovery tells about one resource: enough to build its URLs."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()
    has_status: bool = False

    @property
    def gvk(self) -> GVK:
        return GVK(self.group, self.version, self.kind)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        """`plural.group` (or `plural` for the core group), as kubectl and RBAC spell it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self, namespace: str | None = None) -> str:
        """The list/watch/create path; all namespaces when `namespace` is None."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None, subresource: str | None = None) -> str:
        path = f"{self.collection_path(namespace if self.namespaced else None)}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


def object_key(obj: Mapping[str, Any]) -> str:
    """The cache key client-go uses: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "")
    return f"{ns}/{name}" if ns else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def describe(obj: Mapping[str, Any]) -> str:
    """`Kind namespace/name` for messages and logs."""
    return f"{obj.get('kind', '?')} {object_key(obj)}"
