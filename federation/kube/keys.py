"""The identity of an object across clusters: (group, kind, namespace, name), no version.

The hub's queues are keyed by it, a member's copy is found by it, and status goes up by it, so
it sits here, beside `GVK`, below every package that uses it (`federation.hub.keys` re-exports
it with the hub's other keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.kube.resources import GVK


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
