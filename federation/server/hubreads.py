"""What the webhook reads of the hub, shared and bounded: `HubReader` (the two reads the checks
need), `KubeHubReader` over the process's hub client, and `ReadCache`, through which every
review shares one result per key for a short while, with one read in flight per key.

A flood of reviews must cost the hub O(1) reads a second (`federation.server.webhook` says
why each bound is what it is); this module is the caching half of that, the webhook's token
bucket and concurrency limit the other.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio

from federation.api import GROUP, KINDS, VERSION
from federation.errors import CheckBudgetError, NotFoundError
from federation.kube import KubeClient, Obj
from federation.server.limits import Clock

T = TypeVar("T")


class HubReader(Protocol):
    """What the checks read from the hub."""

    async def list_objects(self, kind: str, *, namespace: str | None = None) -> list[Obj]:
        """The federation.io objects of ``kind`` (in ``namespace``, or cluster-wide)."""
        ...

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        """The Secret, or None when it does not exist."""
        ...


class KubeHubReader:
    """`HubReader` over the process's hub `KubeClient`, with a short timeout per request: the
    apiserver waits for the webhook ``timeoutSeconds`` at most (5 in deploy/)."""

    def __init__(self, hub: KubeClient, *, timeout: float = 2.0) -> None:
        self.hub = hub
        self.timeout = timeout

    async def list_objects(self, kind: str, *, namespace: str | None = None) -> list[Obj]:
        plural = KINDS[kind].crd.plural
        scope = f"/namespaces/{namespace}" if namespace else ""
        listed = await self.hub.request(
            "GET",
            f"/apis/{GROUP}/{VERSION}{scope}/{plural}",
            timeout=self.timeout,
            verb="list",
            what=f"list {plural}" + (f" in {namespace}" if namespace else ""),
        )
        return [item for item in listed.get("items") or [] if isinstance(item, dict)]

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.hub.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/secrets/{name}",
                timeout=self.timeout,
                verb="get",
                what=f"get Secret {namespace}/{name}",
            )
        except NotFoundError:
            return None


@dataclass
class _Entry:
    value: Any
    at: float


class _Flight:
    """One read in progress, which every review wanting the same key waits for."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class ReadCache:
    """Hub reads shared by every review: a result serves all for ``ttl`` seconds, and at most
    one read per key is in flight (the others wait for it). A load that is refused for lack of
    budget (`CheckBudgetError`) is answered from a result up to ``stale_ttl`` old instead."""

    _MAX_ENTRIES = 1024

    def __init__(self, *, ttl: float, stale_ttl: float, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._flights: dict[Hashable, _Flight] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        while True:
            entry = self._entries.get(key)
            if entry is not None and self.clock() - entry.at < self.ttl:
                return entry.value  # type: ignore[no-any-return]
            flight = self._flights.get(key)
            if flight is None:
                return await self._load(key, load, entry)
            await flight.done.wait()
            if flight.error is None:
                return flight.value  # type: ignore[no-any-return]
            if not isinstance(flight.error, anyio.get_cancelled_exc_class()):
                raise flight.error
            # The review that was reading ran out of time: read for ourselves.

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]], stale: _Entry | None) -> T:
        flight = self._flights[key] = _Flight()
        try:
            try:
                value = await load()
            except CheckBudgetError:
                if stale is None or self.clock() - stale.at >= self.stale_ttl:
                    raise
                value = stale.value
            else:
                self._store(key, value)
            flight.value = value
            return value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            flight.done.set()
            del self._flights[key]

    def _store(self, key: Hashable, value: Any) -> None:
        now = self.clock()
        if len(self._entries) >= self._MAX_ENTRIES:
            self._entries = {k: e for k, e in self._entries.items() if now - e.at < self.stale_ttl}
            if len(self._entries) >= self._MAX_ENTRIES:
                self._entries.clear()
        self._entries[key] = _Entry(value, now)

    def invalidate(self, match: Callable[[Hashable], bool]) -> None:
        """Drop the results whose key matches (a read in flight is left to finish)."""
        for key in [k for k in self._entries if match(k)]:
            del self._entries[key]
