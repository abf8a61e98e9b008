"""Hub informers for every kind some policy selects, started and stopped as policies change.

Each selected apiVersion+kind gets one shared informer on the hub (all namespaces). Template
changes are filtered by a *fingerprint* of what translation reads (everything but status and
server-set metadata), so our own status writes and other status-only updates never trigger a
re-placement. A selected kind the hub does not serve (its CRD is not installed yet) is retried
whenever discovery may have changed.

Each change says whether it is a fresh event (`Priority.NORMAL`; a creation `Priority.CREATED`,
just below) or part of an initial list (`Priority.LOW`: the informer's first list, or the replay
of its cache to a handler added late), so that a restart's thousands of templates, or a bulk of
new ones, do not delay someone's edit of one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from federation.errors import NotFoundError
from federation.hub.keys import ResourceKey
from federation.informers import Handlers, Informer, InformerFactory, Priority
from federation.kube import GVK, Discovery, Obj

log = logging.getLogger(__name__)

_VOLATILE_META = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")

#: Our finalizer on templates and policies: deletion waits until the members are clean.
FINALIZER = "federation.io/cleanup"

#: Told that a template may have changed, and how urgently (see the module docstring).
TemplateListener = Callable[[ResourceKey, Priority], None]


def fingerprint(obj: Mapping[str, Any]) -> str:
    """What a template's translation depends on, hashed: spec/data and user metadata.

    Other finalizers and the deletion timestamp are included: both change what the controller
    must do.
    """
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_META}
    if FINALIZER in (meta.get("finalizers") or ()):
        # Adding our own finalizer changes nothing we must act on.
        others = [f for f in meta["finalizers"] if f != FINALIZER]
        if others:
            meta["finalizers"] = others
        else:
            del meta["finalizers"]
    body = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    body["metadata"] = meta
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class TemplateWatcher:
    def __init__(
        self, *, factory: InformerFactory, discovery: Discovery, on_change: TemplateListener
    ) -> None:
        self.factory = factory
        self.discovery = discovery
        self.on_change = on_change
        self._informers: dict[GVK, Informer] = {}
        self._unremove: dict[GVK, Callable[[], None]] = {}
        self.missing: dict[GVK, str] = {}

    async def sync_kinds(self, wanted: set[GVK]) -> set[GVK]:
        """Watch exactly `wanted`; returns the kinds newly started."""
        started: set[GVK] = set()
        for gvk in sorted(wanted - self._informers.keys(), key=str):
            try:
                res = await self.discovery.resource_for(gvk)
            except NotFoundError as exc:
                if gvk not in self.missing:
                    log.warning("a policy selects %s, which the hub does not serve: %s", gvk, exc)
                self.missing[gvk] = str(exc)
                continue
            self.missing.pop(gvk, None)
            informer = self.factory.informer(res)
            replaying = [True]  # add_handler replays a synced cache as adds: an initial list too
            self._unremove[gvk] = informer.add_handler(self._handlers(informer, replaying), resync=False)
            replaying[0] = False
            self._informers[gvk] = informer
            started.add(gvk)
            log.info("watching %s on the hub", res.name)
        for gvk in set(self._informers) - wanted:
            self._unremove.pop(gvk)()
            self.factory.release(self._informers.pop(gvk))
            log.info("no policy selects %s any more; stopped watching it", gvk)
        for gvk in set(self.missing) - wanted:
            del self.missing[gvk]
        return started

    def _handlers(self, informer: Informer, replaying: list[bool]) -> Handlers:
        def priority() -> Priority:
            return Priority.LOW if replaying[0] or not informer.has_synced else Priority.NORMAL

        def add(obj: Obj) -> None:
            # A creation ranks below an edit of an existing template (Priority.CREATED).
            fresh = priority()
            self.on_change(ResourceKey.of(obj), Priority.CREATED if fresh is Priority.NORMAL else fresh)

        def update(old: Obj, new: Obj) -> None:
            if fingerprint(old) != fingerprint(new):
                self.on_change(ResourceKey.of(new), priority())

        def delete(obj: Obj) -> None:
            self.on_change(ResourceKey.of(obj), Priority.NORMAL)

        return Handlers(on_add=add, on_update=update, on_delete=delete)

    async def wait_for_sync(self) -> None:
        for informer in list(self._informers.values()):
            await informer.wait_for_sync()

    @property
    def synced(self) -> bool:
        return all(i.has_synced for i in self._informers.values())

    def informer_for(self, group: str, kind: str) -> Informer | None:
        for gvk, informer in self._informers.items():
            if gvk.group == group and gvk.kind == kind:
                return informer
        return None

    def get(self, key: ResourceKey) -> Obj | None:
        informer = self.informer_for(key.group, key.kind)
        if informer is None:
            return None
        return informer.store.get(f"{key.namespace}/{key.name}" if key.namespace else key.name)

    def keys_of(self, gvks: set[GVK]) -> list[ResourceKey]:
        """Every template of these kinds in the cache (for re-evaluating a changed policy)."""
        keys: list[ResourceKey] = []
        for gvk in gvks:
            informer = self._informers.get(gvk)
            if informer is not None:
                keys.extend(ResourceKey.of(o) for o in informer.store.objects())
        return keys

    def all_keys(self) -> list[ResourceKey]:
        return self.keys_of(set(self._informers))

    @property
    def kinds(self) -> set[GVK]:
        return set(self._informers)
