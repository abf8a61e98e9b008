"""Identities of hub objects, as the controller keys its work queues."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.kube import GVK


@dataclass(frozen=True, slots=True, order=True)
class ResourceKey:
    """A hub template: (group, kind, namespace, name); namespace '' when cluster-scoped.

    The version is not part of the identity: one object is served at several versions.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ResourceKey:
        gvk = GVK.of(obj)
        meta = obj.get("metadata") or {}
        return cls(gvk.group, gvk.kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {where}"


@dataclass(frozen=True, slots=True, order=True)
class PolicyKey:
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> PolicyKey:
        meta = obj.get("metadata") or {}
        return cls(str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"
