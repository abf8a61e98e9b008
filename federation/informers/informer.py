"""The informer: a reflector feeding an `Indexer`, and handlers told about every change.

Handlers are plain synchronous callbacks, called in event order (so, in order per key); they
must be quick — the usual handler only puts a key on a work queue. A handler that raises is
logged and counted, never allowed to stop the informer. Periodic *resync* re-delivers every
cached object as an update, so level-based reconcilers heal anything they missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from federation.informers.clock import Clock, RealClock
from federation.informers.reflector import Reflector
from federation.informers.store import Indexer, IndexFunc
from federation.informers.transform import Transform, strip_managed_fields
from federation.kube.client import KubeClient
from federation.kube.resources import Obj, ResourceInfo
from federation.metrics import INFORMER_SYNCED, STORE_BYTES, STORE_OBJECTS

log = logging.getLogger(__name__)

#: Seconds between two samplings of an informer's bytes per object (`_estimated_bytes`).
SIZE_SAMPLE_PERIOD = 60.0


class EventHandler(Protocol):
    def on_add(self, obj: Obj) -> None: ...

    def on_update(self, old: Obj, new: Obj) -> None: ...

    def on_delete(self, obj: Obj) -> None:
        """`obj` is the last state we knew; after a relist it may predate the real deletion."""
        ...


def _ignore(*_args: Obj) -> None:
    return None


@dataclass(frozen=True)
class Handlers:
    """An `EventHandler` from functions; any of them may be left out."""

    on_add: Callable[[Obj], None] = _ignore
    on_update: Callable[[Obj, Obj], None] = _ignore
    on_delete: Callable[[Obj], None] = _ignore


@dataclass
class _Registration:
    handler: EventHandler
    resync: bool


@dataclass(frozen=True)
class InformerKey:
    """What makes two informers the same watch: resource and the slice of it watched."""

    resource: ResourceInfo
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None


@dataclass
class Informer:
    """Watches one resource of one cluster into a cache and tells handlers what changed."""

    client: KubeClient
    key: InformerKey
    resync_period: float | None = None
    indexers: Mapping[str, IndexFunc] = field(default_factory=dict)
    clock: Clock = field(default_factory=RealClock)
    reflector_options: Mapping[str, object] = field(default_factory=dict)
    transform: Transform = strip_managed_fields
    """What of each object is cached (`federation.informers.transform`): by default all but
    `metadata.managedFields`."""

    def __post_init__(self) -> None:
        self.store = Indexer(indexers=self.indexers)
        self.reflector = Reflector(
            self.client,
            self.key.resource,
            self,
            namespace=self.key.namespace,
            label_selector=self.key.label_selector,
            field_selector=self.key.field_selector,
            clock=self.clock,
            transform=self.transform,
            **self.reflector_options,  # type: ignore[arg-type]
        )
        self._handlers: list[_Registration] = []
        self._synced = anyio.Event()
        labels = (self.client.cluster, self.key.resource.name)
        self._m_size = STORE_OBJECTS.labels(*labels)
        self._m_synced = INFORMER_SYNCED.labels(*labels)
        self._m_bytes = STORE_BYTES.labels(*labels)
        self._bytes_per_object = 0.0
        self._sized_at: float | None = None
        self._m_synced.set(0)
        self._extra = {"cluster": self.client.cluster, "resource": self.key.resource.name}

    @property
    def resource(self) -> ResourceInfo:
        return self.key.resource

    # -- handlers ---------------------------------------------------------------------

    def add_handler(self, handler: EventHandler, *, resync: bool = True) -> Callable[[], None]:
        """Register a handler; returns a function that unregisters it.

        A handler added after the first list gets an add for every cached object first, so
        late consumers see the same world as early ones.
        """
        reg = _Registration(handler, resync)
        self._handlers.append(reg)
        if self.has_synced:
            for obj in self.store.objects():
                self._call(reg, "on_add", obj)

        def remove() -> None:
            if reg in self._handlers:
                self._handlers.remove(reg)

        return remove

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    # -- running ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the reflector (and the resync timer) until cancelled."""
        self._m_bytes.set_function(self._estimated_bytes)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.reflector.run)
                if self.resync_period:
                    tg.start_soon(self._resync_loop, self.resync_period)
        finally:
            self._m_bytes.set_function(lambda: 0)  # a stopped informer holds nothing

    def _estimated_bytes(self) -> float:
        """For the gauge, when scraped: the count times a per-object size sampled at most once a
        minute (a sample walks objects; a fleet of members scraped every 15 s would pay for it)."""
        n = len(self.store)
        now = self.clock.now()
        if n and (self._sized_at is None or now - self._sized_at >= SIZE_SAMPLE_PERIOD):
            self._bytes_per_object = self.store.estimated_bytes(sample=16) / n
            self._sized_at = now
        return self._bytes_per_object * n

    async def _resync_loop(self, period: float) -> None:
        await self.wait_for_sync()
        while True:
            await self.clock.sleep(period)
            self.resync()

    def resync(self) -> None:
        """Re-deliver every cached object as an update to handlers that asked for resyncs."""
        regs = [r for r in self._handlers if r.resync]
        for obj in self.store.objects():
            for reg in regs:
                self._call(reg, "on_update", obj, obj)

    # -- ReflectorSink ----------------------------------------------------------------

    def replace(self, objs: Sequence[Obj], resource_version: str) -> None:
        added, updated, deleted = self.store.replace(objs)
        for obj in deleted:
            self._dispatch("on_delete", obj)
        for obj in added:
            self._dispatch("on_add", obj)
        for old, new in updated:
            self._dispatch("on_update", old, new)
        self._m_size.set(len(self.store))
        if not self._synced.is_set():
            self._synced.set()
            self._m_synced.set(1)
            log.info("informer synced with %d objects", len(self.store), extra=self._extra)

    def apply(self, event_type: str, obj: Obj) -> None:
        if event_type == "DELETED":
            old = self.store.remove(self.store.key_func(obj))
            self._dispatch("on_delete", obj if obj.get("metadata") else (old or obj))
        else:
            old = self.store.upsert(obj)
            if old is None:
                self._dispatch("on_add", obj)
            else:
                self._dispatch("on_update", old, obj)
        self._m_size.set(len(self.store))

    def _dispatch(self, method: str, *objs: Obj) -> None:
        for reg in self._handlers:
            self._call(reg, method, *objs)

    def _call(self, reg: _Registration, method: str, *objs: Obj) -> None:
        try:
            getattr(reg.handler, method)(*objs)
        except Exception:
            log.exception("informer handler %s failed", method, extra=self._extra)
