"""When the hub kinds the controller watches must be synced again.

A policy may select a kind the hub does not serve yet (its CRD is applied in the same breath,
or its aggregated API is not available yet). Such a kind used to wait for a 10 s poll, so the
first copy of a new custom resource came ~10 s late. Now the hub's own API objects are watched:
a CustomResourceDefinition (apiextensions.k8s.io/v1) or APIService (apiregistration.k8s.io/v1)
that is added, changes (established, available) or goes triggers a re-sync at once, with the
discovery cache dropped. The apiserver publishes a newly established kind in discovery a moment
after the event, so while a selected kind is still missing after an API change, the re-sync is
retried quickly (from `fast` seconds, doubling to 1 s) for `hurry` seconds. The slow poll
(`poll_interval`) stays as a safety net (a hub that forbids watching its API objects, an event
lost to a restart of the watch).

The trigger only says *when*; what to watch is `TemplateWatcher.sync_kinds`' job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from federation.errors import KubeError
from federation.informers import Clock, Handlers, InformerFactory, RealClock
from federation.kube import GVK, Discovery, Obj

log = logging.getLogger(__name__)

#: The hub objects whose changes change which kinds the hub serves.
API_KINDS = (
    GVK("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    GVK("apiregistration.k8s.io", "v1", "APIService"),
)


class KindsTrigger:
    def __init__(
        self,
        *,
        factory: InformerFactory,
        discovery: Discovery,
        poll_interval: float,
        fast: float = 0.05,
        hurry: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.factory = factory
        self.discovery = discovery
        self.poll_interval = poll_interval
        self.fast = fast
        self.hurry = hurry
        self.clock = clock or RealClock()
        self._dirty = anyio.Event()
        self._hurry_until = float("-inf")
        self._delay = fast
        self.syncs = 0

    def policy_changed(self) -> None:
        """A policy changed: it may select kinds not watched yet (or no longer)."""
        self._dirty.set()

    def api_changed(self) -> None:
        """The hub's API changed (a CRD or APIService event): what it serves may have too."""
        self.discovery.forget()
        self._hurry_until = self.clock.now() + self.hurry
        self._delay = self.fast
        self._dirty.set()

    async def watch_apis(self) -> None:
        """Watch the hub's CRDs and APIServices (not waiting for their first list)."""

        def changed(_obj: Obj) -> None:
            self.api_changed()

        for gvk in API_KINDS:
            try:
                res = await self.discovery.resource_for(gvk)
            except KubeError as exc:
                log.warning("not watching %s on the hub (%s): new kinds wait for the poll", gvk, exc)
                continue
            informer = self.factory.informer(res)
            informer.add_handler(
                Handlers(on_add=changed, on_update=lambda _o, n: changed(n), on_delete=changed), resync=False
            )

    async def run(self, sync: Callable[[], Awaitable[None]], *, missing: Callable[[], bool]) -> None:
        """Call `sync` whenever triggered; `missing()`: whether a selected kind is not served."""
        while True:
            timeout = self.poll_interval
            if missing() and self.clock.now() < self._hurry_until:
                timeout, self._delay = self._delay, min(self._delay * 2, 1.0)
            await self.clock.wait(self._dirty, timeout)
            self._dirty = anyio.Event()
            if missing():
                self.discovery.forget()
            self.syncs += 1
            await sync()
