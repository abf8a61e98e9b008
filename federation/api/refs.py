"""How every message of ours names an object, from a typed model or a raw manifest dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def object_ref(kind: str, namespace: str | None, name: str) -> str:
    """How every message of ours names an object: ``Kind namespace/name`` or ``Kind name``."""
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def ref_of(obj: Mapping[str, Any], *, default_kind: str = "object") -> str:
    """``object_ref`` of a plain manifest dict, tolerant of a malformed one (it is for messages)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    name = meta.get("name")
    namespace = meta.get("namespace")
    return object_ref(
        kind if isinstance(kind, str) and kind else default_kind,
        namespace if isinstance(namespace, str) and namespace else None,
        name if isinstance(name, str) and name else "<unnamed>",
    )
