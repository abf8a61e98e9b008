"""What of a hub template must not reach a member cluster.

Server-managed metadata (uid, resourceVersion, managedFields, ...) belongs to the hub object;
``status`` is the member's to write; the hub's finalizers and ownerReferences point at hub
objects. Annotations and labels under ``federation.io/`` are ours and are re-stamped, so a
user's copy on the template can never forge ownership. A few kinds carry values a cluster
allocates for itself (a Service's clusterIP, a Job's generated selector): those are dropped too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from federation.translate.ownership import OWNERSHIP
from federation.translate.pointer import PointerError, json_copy, parse_pointer, resolve

HUB_ONLY_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "finalizers",
)
HUB_ONLY_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
)
_JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _clean_map(value: Any, drop: Iterable[str]) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    dropped = set(drop)
    out = {k: v for k, v in value.items() if k not in dropped and not str(k).startswith(OWNERSHIP.prefix)}
    return out or None


def prune_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``template`` without anything that belongs to the hub."""
    manifest = json_copy(dict(template))
    manifest.pop("status", None)
    meta = manifest.get("metadata")
    if isinstance(meta, dict):
        for key in HUB_ONLY_METADATA:
            meta.pop(key, None)
        for key, drop in (("annotations", HUB_ONLY_ANNOTATIONS), ("labels", ())):
            cleaned = _clean_map(meta.get(key), drop)
            if cleaned is None:
                meta.pop(key, None)
            else:
                meta[key] = cleaned
    kind = manifest.get("kind")
    spec = manifest.get("spec")
    if isinstance(spec, dict):
        if kind == "Service" and manifest.get("apiVersion") == "v1" and spec.get("clusterIP") != "None":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if kind == "Job" and str(manifest.get("apiVersion", "")).startswith("batch/"):
            if not spec.get("manualSelector"):
                spec.pop("selector", None)
            labels = spec.get("template", {}).get("metadata", {}).get("labels")
            if isinstance(labels, dict):
                for key in _JOB_UID_LABELS:
                    labels.pop(key, None)
    return manifest


def strip_fields(manifest: Mapping[str, Any], pointers: Iterable[str]) -> dict[str, Any]:
    """A copy of ``manifest`` without the fields the members own (retainFields).

    Propagation applies with server-side apply; a field left out of the applied manifest is not
    managed by us, so the member's value (an HPA's replicas, an operator's default) stands.
    Pointers that do not resolve are ignored: there is nothing to retain.
    """
    out = json_copy(dict(manifest))
    for pointer in pointers:
        try:
            tokens = parse_pointer(pointer)
        except PointerError:
            continue
        if not tokens:
            continue
        try:
            parent = resolve(out, tokens[:-1])
        except PointerError:
            continue
        last = tokens[-1]
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            parent.pop(int(last))
    return out
