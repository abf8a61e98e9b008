"""Where a manifest keeps its pod spec, for the code that reads or edits what pods run.

Image overrides and dependency discovery both need "the pod spec of this workload"; the paths
live here once so a new workload kind is taught to both at the same time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

TEMPLATE_POD_SPEC: Final = ("spec", "template", "spec")
"""Where Deployment-like workloads (and custom ones shaped like them) keep the pod spec."""

_BUILT_IN: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("apps", "Deployment"): TEMPLATE_POD_SPEC,
    ("apps", "StatefulSet"): TEMPLATE_POD_SPEC,
    ("apps", "DaemonSet"): TEMPLATE_POD_SPEC,
    ("apps", "ReplicaSet"): TEMPLATE_POD_SPEC,
    ("batch", "Job"): TEMPLATE_POD_SPEC,
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}


def _group(api_version: Any) -> str:
    return str(api_version).rpartition("/")[0] if isinstance(api_version, str) else ""


def pod_spec(manifest: Mapping[str, Any], *, any_kind: bool = False) -> dict[str, Any] | None:
    """The pod spec of a built-in workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
    Job, CronJob), or None. With ``any_kind``, any other kind is looked up at
    ``spec.template.spec`` too (custom workloads usually follow Deployment's shape).

    The dict returned is the manifest's own (callers that edit it edit the manifest).
    """
    path = _BUILT_IN.get((_group(manifest.get("apiVersion")), str(manifest.get("kind"))))
    if path is None:
        if not any_kind:
            return None
        path = TEMPLATE_POD_SPEC
    node: Any = manifest
    for part in path:
        if not isinstance(node, Mapping) or not isinstance(node.get(part), dict):
            return None
        node = node[part]
    return node  # type: ignore[no-any-return]
