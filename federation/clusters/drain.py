"""Removing a cluster from the fleet without leaving its copies behind.

A MemberCluster carries our finalizer while the controller manages it. Deleting it (`federation
clusters unjoin`, `kubectl delete membercluster`) then first takes the cluster out of placement,
so every resource placed there is re-placed and its work in that cluster becomes a deletion
(or an orphan, per the policy's deletionPolicy); the cluster's connection and propagator stay up
until those are done, and only then is the finalizer removed and the object goes. A cluster that
cannot be reached never drains: `federation clusters unjoin --force` removes the finalizer, and
what was left is recorded as orphaned (copies stay in the member). It does so in one patch that
also sets the FORCE_ANNOTATION, so the controller does not put the finalizer back before the
delete arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

DRAIN_FINALIZER = "federation.io/drain"
#: Set by `clusters unjoin --force`: remove without draining (the finalizer is not re-added).
FORCE_ANNOTATION = "federation.io/unjoin"

#: Why a work was orphaned when its cluster was removed before it was drained.
ABANDONED = "cluster removed from the fleet before its copies were deleted; this copy was left in place"


class DrainHooks(Protocol):
    """What the registry needs from the state store to drain a cluster (the Store has both)."""

    async def works_to_drain(self, cluster: str) -> int:
        """Works of the cluster whose copy is still to be deleted (or kept in step)."""
        ...

    async def abandon_cluster(self, cluster: str, reason: str) -> int:
        """Mark what is left of a removed cluster orphaned; how many works."""
        ...


def has_finalizer(obj: Mapping[str, Any]) -> bool:
    return DRAIN_FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or [])


def forced(obj: Mapping[str, Any]) -> bool:
    """`clusters unjoin --force` marked it: it goes without being drained."""
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(FORCE_ANNOTATION) == "force"


def force_patch(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Mark for removal without draining, and drop the finalizer, in one conditional patch."""
    patch = finalizer_patch(obj, present=False)
    patch["metadata"]["annotations"] = {FORCE_ANNOTATION: "force"}
    return patch


def finalizer_patch(obj: Mapping[str, Any], *, present: bool) -> dict[str, Any]:
    """A merge patch adding or removing our finalizer, conditional on the resourceVersion seen:
    MemberCluster is a custom resource (no strategic merge), so the list is written whole, and
    the precondition keeps us from dropping a finalizer someone added meanwhile."""
    meta = obj.get("metadata") or {}
    others = [f for f in meta.get("finalizers") or [] if f != DRAIN_FINALIZER]
    finalizers = [*others, DRAIN_FINALIZER] if present else others
    return {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
