"""Our finalizer on propagation policies (their deletion waits for the members), and its
release from templates that an older version finalized.

A propagation policy carries it always (policy status adds it) and loses it once no template is
governed through the policy any more, so a policy's deletion first unplaces what it placed.
Templates no longer get it (`federation.hub.binder`: Postgres records every copy, and the sweep
cleans up after a template deleted while no controller ran); one that still carries it from an
older version has it removed once its copies are gone, so its deletion does not hang.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.errors import ApiError, ConflictError, NotFoundError
from federation.hub.keys import PolicyKey
from federation.hub.templates import FINALIZER
from federation.kube import GVK, Discovery, KubeClient, Obj


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class Finalizers:
    def __init__(self, *, hub: KubeClient, discovery: Discovery) -> None:
        self.hub = hub
        self.discovery = discovery
        self._no_strategic_merge: set[GVK] = set()
        self._finalized: set[str] = set()

    async def set(self, template: Obj, present: bool) -> None:
        """Add or remove our finalizer on a template without clobbering anyone else's.

        Built-in kinds take a strategic merge patch, which merges into the finalizer list (no
        precondition, so no conflict with our own concurrent status writes); custom resources
        do not support it, and get a merge patch made conditional by the resourceVersion (a
        conflict is raised: the key is retried with the newer object).
        """
        meta = _meta(template)
        finalizers = list(meta.get("finalizers") or [])
        uid = str(meta.get("uid", ""))
        # The cache may not show our own patch yet (the watch lags under load): remember it.
        if (FINALIZER in finalizers or uid in self._finalized) == present:
            return
        res = await self.discovery.resource_for(GVK.of(template))
        name, namespace = str(meta["name"]), meta.get("namespace") if res.namespaced else None
        try:
            if res.gvk not in self._no_strategic_merge:
                patch = (
                    {"metadata": {"finalizers": [FINALIZER]}}
                    if present
                    else {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}}
                )
                try:
                    await self.hub.patch(
                        res,
                        name,
                        patch,
                        namespace=namespace,
                        patch_type="application/strategic-merge-patch+json",
                    )
                    return
                except ApiError as exc:
                    if exc.status != 415:
                        raise
                    self._no_strategic_merge.add(res.gvk)  # a custom resource
            finalizers = [*finalizers, FINALIZER] if present else [f for f in finalizers if f != FINALIZER]
            await self.hub.patch(
                res,
                name,
                {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}},
                namespace=namespace,
            )
            if present:
                self._finalized.add(uid)
            else:
                self._finalized.discard(uid)
        except NotFoundError:
            return

    async def ensure_policy(self, pkey: PolicyKey, raw: Obj) -> None:
        """A propagation policy carries our finalizer, so its deletion cleans up first."""
        finalizers = list(_meta(raw).get("finalizers") or [])
        if FINALIZER in finalizers:
            return
        try:
            await self._patch_policy(pkey, raw, [*finalizers, FINALIZER])
        except (ConflictError, NotFoundError):
            return  # the next policy event brings the newer object

    async def release_policy(self, pkey: PolicyKey, raw: Obj) -> None:
        """A deleted policy's finalizer goes (the caller knows nothing is governed through it)."""
        finalizers = list(_meta(raw).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        await self._patch_policy(pkey, raw, [f for f in finalizers if f != FINALIZER])

    async def _patch_policy(self, pkey: PolicyKey, raw: Obj, finalizers: list[str]) -> None:
        res = await self.discovery.resource_for(GVK("federation.io", "v1alpha1", pkey.kind))
        await self.hub.patch(
            res,
            pkey.name,
            {"metadata": {"finalizers": finalizers, "resourceVersion": _meta(raw).get("resourceVersion")}},
            namespace=pkey.namespace or None,
        )
