"""The reflector: keep a sink in step with one resource of one cluster through list + watch.

Semantics (client-go's `tools/cache/reflector.go`):
- **list** in pages (`limit`/`continue`); if a continue token expires mid-way (410), list again
  in one piece. The sink's contents are *replaced* by the list, so objects deleted while we
  were not watching surface as deletes.
- **watch** from the list's resourceVersion with `allowWatchBookmarks=true` and a randomised
  `timeoutSeconds` (so a fleet of watches does not expire in lockstep); bookmarks and events
  advance the resourceVersion; a watch that ends normally is re-opened at once from there.
- **410 Gone / "too old resource version"** (as an HTTP answer or an ERROR event): relist.
  Never re-watch from an expired resourceVersion.
- **other errors** (connection refused, apiserver restarting, 5xx, 429): wait with jittered
  exponential backoff (0.8 s doubling to 30 s, reset after 2 healthy minutes) and re-watch from
  the last resourceVersion; if that one has expired meanwhile, the 410 triggers the relist.
- **a stalled stream** (no event and no bookmark within `stall_timeout`) is closed and
  re-opened from the last resourceVersion.
- **a transform** (client-go's `SetTransform`) trims every listed object and every event's
  object before the sink sees it, so the cache holds only what its consumers read
  (`federation.informers.transform`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from federation.errors import ApiError, ClusterUnreachableError, GoneError, WatchStalledError
from federation.informers.backoff import Backoff
from federation.informers.clock import Clock, RealClock
from federation.informers.transform import Transform, strip_managed_fields
from federation.kube.client import KubeClient, api_error
from federation.kube.resources import Obj, ResourceInfo
from federation.metrics import RELISTS, WATCH_EVENTS, WATCH_RESTARTS, WATCHES_OPEN

log = logging.getLogger(__name__)


class ReflectorSink(Protocol):
    """Where a reflector delivers what it learns (the informer)."""

    def replace(self, objs: Sequence[Obj], resource_version: str) -> None:
        """The complete current state, from a list."""
        ...

    def apply(self, event_type: str, obj: Obj) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        ...


class Reflector:
    """Lists and watches one resource (optionally one namespace / selector) of one cluster."""

    def __init__(
        self,
        client: KubeClient,
        resource: ResourceInfo,
        sink: ReflectorSink,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        min_watch_timeout: float = 300.0,
        stall_timeout: float = 180.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        transform: Transform = strip_managed_fields,
    ) -> None:
        self.client = client
        self.resource = resource
        self.sink = sink
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.min_watch_timeout = min_watch_timeout
        self.stall_timeout = stall_timeout
        self.transform = transform
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self.backoff = backoff or Backoff(clock=self._clock, rng=self._rng)
        self.last_resource_version = ""
        self.lists = 0
        self.watches_opened = 0
        labels = (client.cluster, resource.name)
        self._m_relists = RELISTS.labels(*labels)
        self._m_open = WATCHES_OPEN.labels(*labels)
        self._m_events = {
            t: WATCH_EVENTS.labels(*labels, t) for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")
        }
        self._m_restarts = {
            r: WATCH_RESTARTS.labels(*labels, r) for r in ("timeout", "stall", "error", "gone", "closed")
        }
        self._log_extra = {"cluster": client.cluster, "resource": resource.name, "namespace": namespace or ""}

    async def run(self) -> None:
        """List, then watch forever; returns only when cancelled.

        A reflector that already has a resourceVersion (it ran before, or was given a
        checkpoint) first tries to resume the watch from it; a 410 sends it to a relist.
        """
        need_list = not self.last_resource_version
        while True:
            try:
                if need_list:
                    await self.list_once()
                    need_list = False
                ended_normally = await self.watch_once()
                self._m_restarts["timeout" if ended_normally else "closed"].inc()
            except GoneError as exc:
                self._m_restarts["gone"].inc()
                log.info("watch resourceVersion expired, relisting: %s", exc, extra=self._log_extra)
                need_list = True
            except WatchStalledError as exc:
                self._m_restarts["stall"].inc()
                log.warning("%s; re-opening the watch", exc, extra=self._log_extra)
            except (ClusterUnreachableError, ApiError) as exc:
                self._m_restarts["error"].inc()
                delay = self.backoff.next_delay()
                log.warning("%s; retrying in %.1fs", exc, delay, extra=self._log_extra)
                await self._clock.sleep(delay)

    async def list_once(self) -> None:
        """One complete list, delivered to the sink as a replace."""
        self._m_relists.inc()
        self.lists += 1
        try:
            # From the apiserver's watch cache (resourceVersion=0), as client-go does: cheap
            # for the apiserver and etcd; the watch that follows fills in anything newer.
            items, rv = await self._list(paginate=True, resource_version="0")
        except ApiError as exc:
            log.info(
                "list from the watch cache failed (%s); doing a consistent list", exc, extra=self._log_extra
            )
            try:
                items, rv = await self._list(paginate=True, resource_version=None)
            except GoneError:
                # The continue token expired between pages: take the whole list in one answer.
                items, rv = await self._list(paginate=False, resource_version=None)
        self.sink.replace(items, rv)
        self.last_resource_version = rv

    async def _list(self, *, paginate: bool, resource_version: str | None) -> tuple[list[Obj], str]:
        items: list[Obj] = []
        token: str | None = None
        kind = self.resource.kind
        while True:
            page = await self.client.list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size if paginate else None,
                continue_token=token,
                # A continued page carries its snapshot in the token; a resourceVersion is
                # only valid on the first request.
                resource_version=None if token else resource_version,
                timeout=120,
            )
            api_version = self.resource.api_version
            transform = self.transform
            for item in page.get("items") or []:
                # Lists omit apiVersion/kind on items; handlers expect complete objects.
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(transform(item))
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    async def watch_once(self) -> bool:
        """One watch connection from the last resourceVersion until it ends.

        Returns True when the server ended it at its timeout (the normal case); raises
        GoneError when the resourceVersion is too old, other KubeErrors on failure.
        """
        timeout = int(self.min_watch_timeout * (1 + self._rng.random()))
        params: dict[str, str | int | bool] = {
            "watch": True,
            "resourceVersion": self.last_resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": timeout,
        }
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        async with self.client.stream_lines(
            self.resource.collection_path(self.namespace), params=params, read_timeout=self.stall_timeout
        ) as lines:
            self.watches_opened += 1
            self._m_open.inc()
            try:
                async for line in lines:
                    self._handle_line(line)
            finally:
                self._m_open.dec()
        return True

    def _handle_line(self, line: bytes) -> None:
        event: dict[str, Any] = orjson.loads(line)
        etype = event.get("type", "")
        obj = event.get("object") or {}
        if etype == "ERROR":
            code = int(obj.get("code") or 500)
            raise api_error(self.client.cluster, code, orjson.dumps(obj), what=f"watch {self.resource.name}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            self._m_events["BOOKMARK"].inc()
        elif etype in ("ADDED", "MODIFIED", "DELETED"):
            self._m_events[etype].inc()
            self.sink.apply(etype, self.transform(obj))
        else:
            log.warning("unknown watch event type %r ignored", etype, extra=self._log_extra)
        if rv:
            self.last_resource_version = str(rv)
