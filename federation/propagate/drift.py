"""Drift: has someone changed, in a member, a field the hub manages?

We compare *projections*: the part of the live object at exactly the paths our desired manifest
sets. Right after we apply, the projection of the apiserver's answer is the baseline (it already
contains whatever the apiserver normalises, such as "0.5" for "500m" or defaulted list-item
fields); later, a live object whose projection differs from that baseline has drifted. Fields we
do not set (status, fields other controllers own, retained fields stripped from the desired
manifest) are outside the projection, so their changes are never drift.

Comparing the live object directly with the desired manifest would instead report every
apiserver normalisation as drift, and re-apply in a loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

ABSENT = "<absent>"
_IGNORED_METADATA = frozenset({"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"})


def project(live: Any, desired: Any) -> Any:
    """The value of `live` at every path `desired` sets (ABSENT where live has nothing)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return ABSENT if live is None else live
        return {k: project(live.get(k), v) if k in live else ABSENT for k, v in desired.items()}
    if isinstance(desired, list):
        if not isinstance(live, list):
            return ABSENT if live is None else live
        out = [project(live[i], d) if i < len(live) else ABSENT for i, d in enumerate(desired)]
        if len(live) != len(desired):
            out.append({"$length": len(live)})
        return out
    return live


def project_object(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Project a whole manifest; server-set metadata is left out even if desired names it."""
    shape = dict(desired)
    if isinstance(shape.get("metadata"), Mapping):
        shape["metadata"] = {k: v for k, v in shape["metadata"].items() if k not in _IGNORED_METADATA}
    shape.pop("status", None)
    projected = project(live, shape)
    return projected if isinstance(projected, dict) else {}


def projection_hash(live: Mapping[str, Any], desired: Mapping[str, Any]) -> str:
    """A short stable hash of the projection: what we store as the baseline after an apply."""
    canonical = orjson.dumps(project_object(live, desired), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def differences(before: Any, after: Any, path: str = "", *, limit: int = 50) -> list[dict[str, Any]]:
    """Leaf-level differences between two projections, as [{path, hub, member}] (JSON pointers)."""
    out: list[dict[str, Any]] = []
    _diff(before, after, path, out, limit)
    return out


def _diff(a: Any, b: Any, path: str, out: list[dict[str, Any]], limit: int) -> None:
    if len(out) >= limit or a == b:
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key, ABSENT), b.get(key, ABSENT), f"{path}/{_escape(str(key))}", out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT, f"{path}/{i}", out, limit)
        return
    out.append({"path": path or "/", "hub": a, "member": b})


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
