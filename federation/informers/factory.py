"""One shared informer per (cluster, resource, namespace, selectors): many consumers, one watch.

The factory owns its informers' tasks: `run()` is awaited inside the caller's task group and
starts every informer, including those asked for later (the controller starts informers as
policies come to select new kinds, and releases them when no policy does).

What the informers cache is the factory's `transform` (by default every object without its
managedFields), or the one the first user of an informer asks for: one watch has one cache,
so a later user asking for another transform is a bug, refused at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from federation.informers.clock import Clock, RealClock
from federation.informers.informer import Informer, InformerKey
from federation.informers.store import IndexFunc
from federation.informers.transform import Transform, strip_managed_fields
from federation.kube.client import KubeClient
from federation.kube.resources import ResourceInfo


@dataclass
class _Entry:
    informer: Informer
    users: int
    scope: anyio.CancelScope | None = None


class InformerFactory:
    """Shared informers for one cluster."""

    def __init__(
        self,
        client: KubeClient,
        *,
        resync_period: float | None = None,
        clock: Clock | None = None,
        reflector_options: Mapping[str, object] | None = None,
        transform: Transform = strip_managed_fields,
    ) -> None:
        self.client = client
        self.transform = transform
        self.resync_period = resync_period
        self.clock = clock or RealClock()
        self.reflector_options = dict(reflector_options or {})
        self._entries: dict[InformerKey, _Entry] = {}
        self._tg: TaskGroup | None = None

    def informer(
        self,
        resource: ResourceInfo,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        transform: Transform | None = None,
    ) -> Informer:
        """The shared informer for this slice of `resource`; each call counts one user.

        Indexers asked for by a later user are added to the shared store. `transform` (default:
        the factory's) must be the one the informer was made with.
        """
        key = InformerKey(resource, namespace, label_selector, field_selector)
        transform = transform or self.transform
        entry = self._entries.get(key)
        if entry is not None and entry.informer.transform is not transform:
            raise ValueError(
                f"informer {resource.name} ({key}) caches through {_name(entry.informer.transform)}; "
                f"another user asked for {_name(transform)}: one watch has one cache"
            )
        if entry is None:
            informer = Informer(
                self.client,
                key,
                resync_period=self.resync_period,
                indexers=dict(indexers or {}),
                clock=self.clock,
                reflector_options=self.reflector_options,
                transform=transform,
            )
            entry = self._entries[key] = _Entry(informer, 0)
            if self._tg is not None:
                self._tg.start_soon(self._run_one, entry)
        else:
            for name, func in (indexers or {}).items():
                entry.informer.store.add_indexer(name, func)
        entry.users += 1
        return entry.informer

    def release(self, informer: Informer) -> None:
        """One user is done with `informer`; the last one out stops its watch."""
        entry = self._entries.get(informer.key)
        if entry is None or entry.informer is not informer:
            return
        entry.users -= 1
        if entry.users <= 0:
            del self._entries[informer.key]
            if entry.scope is not None:
                entry.scope.cancel()

    @property
    def informers(self) -> list[Informer]:
        return [e.informer for e in self._entries.values()]

    async def run(self) -> None:
        """Run every informer (present and future) until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                for entry in list(self._entries.values()):
                    tg.start_soon(self._run_one, entry)
                await anyio.sleep_forever()
            finally:
                self._tg = None

    async def _run_one(self, entry: _Entry) -> None:
        with anyio.CancelScope() as scope:
            entry.scope = scope
            await entry.informer.run()

    async def wait_for_sync(self, *informers: Informer) -> None:
        """Wait until the given informers (default: all) have completed their first list."""
        for informer in informers or tuple(self.informers):
            await informer.wait_for_sync()


def _name(transform: Transform) -> str:
    return str(getattr(transform, "__name__", transform))
