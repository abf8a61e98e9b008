"""The member copies the leader's status writer cannot see: those of members whose propagators
run on other replicas (`federation.propagate.shard`).

The status writer aggregates a template's status from each member's copy, which it looks up in
the local propagators' informers. For a member leased by another replica it looks here instead:
a cache of what that member's propagator collected into `member_status` (every propagator writes
its copies' statuses there in batches anyway), shaped as the part of a member object
aggregation reads: its status, and the spec fields health assessment uses (from what was applied).

The cache follows the table: a notification after every batch written (migration 0006's trigger)
makes the next read prompt; a read every `catch_up` seconds, of what was collected since the
last one, makes a lost notification only a delay; and a full reload every `resync` seconds
drops what left the table (works deleted). Reads by ``collected_at`` go back `slack` seconds:
``collected_at`` is when a batch's transaction started, and a transaction that began earlier
may commit later. Each copy that changed is reported (`on_change`): the writer re-aggregates
its template, and the hub controller re-evaluates the policy's status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

import anyio

from federation.errors import StoreError
from federation.kube import Obj
from federation.kube.keys import ResourceKey
from federation.status.aggregate import supports_hub_status
from federation.store import Store
from federation.store.repo.collected import CollectedStatus

log = logging.getLogger(__name__)

#: Told that a remote member's copy of a resource changed.
ChangeListener = Callable[[ResourceKey], None]


def member_object(row: CollectedStatus) -> Obj:
    """The member copy as aggregation reads it: identity, the applied spec's health fields, status."""
    api_version = f"{row.api_group}/v1" if row.api_group else "v1"
    metadata: dict[str, Any] = {"name": row.name}
    if row.namespace:
        metadata["namespace"] = row.namespace
    if row.member_resource_version:
        metadata["resourceVersion"] = row.member_resource_version
    return {
        "apiVersion": api_version,
        "kind": row.kind,
        "metadata": metadata,
        "spec": row.spec,
        "status": row.status,
    }


class RemoteStatuses:
    def __init__(
        self,
        *,
        store: Store,
        remote: Callable[[], Collection[str]],
        on_change: ChangeListener,
        catch_up: float = 5.0,
        resync: float = 120.0,
        min_interval: float = 0.25,
        slack: float = 5.0,
    ) -> None:
        self.store = store
        self.remote = remote
        self.on_change = on_change
        self.catch_up = catch_up
        self.resync = resync
        self.min_interval = min_interval
        self.slack = timedelta(seconds=slack)
        self._objects: dict[tuple[ResourceKey, str], Obj] = {}
        self._versions: dict[tuple[ResourceKey, str], str | None] = {}
        self._since: datetime | None = None
        self._remote: frozenset[str] | None = None
        self._due = anyio.Event()
        self.loaded = anyio.Event()

    def get(self, key: ResourceKey, cluster: str) -> Obj | None:
        """The copy of `key` in `cluster` as last collected (None: none collected, or not a kind
        whose status is aggregated into the hub)."""
        return self._objects.get((key, cluster))

    def notified(self) -> None:
        """A batch of statuses was written somewhere: read what is new soon."""
        self._due.set()

    async def run(self) -> None:
        last_full = -self.resync
        while True:
            now = anyio.current_time()
            full = now - last_full >= self.resync
            try:
                await self._read(full=full)
                if full:
                    last_full = now
                self.loaded.set()
            except StoreError as exc:
                log.warning("reading the statuses other replicas collected failed: %s", exc)
            with anyio.move_on_after(self.catch_up):
                await self._due.wait()
            self._due = anyio.Event()
            await anyio.sleep(self.min_interval)  # coalesces a burst of notifications into one read

    async def _read(self, *, full: bool) -> None:
        remote = frozenset(self.remote())
        # A member handed from here to another replica has rows older than any watermark.
        full = full or remote != self._remote
        self._remote = remote
        since = None if full or self._since is None else self._since - self.slack
        # No member elsewhere (one replica, or they all lease here): nothing to read.
        rows = await self.store.collected_statuses(since=since, clusters=sorted(remote)) if remote else []
        seen: set[tuple[ResourceKey, str]] = set()
        for row in rows:
            key = ResourceKey(row.api_group, row.kind, row.namespace, row.name)
            where = (key, row.cluster)
            seen.add(where)
            if self._since is None or row.collected_at > self._since:
                self._since = row.collected_at
            if where in self._versions and self._versions[where] == row.member_resource_version:
                continue
            self._versions[where] = row.member_resource_version
            obj = member_object(row)
            if supports_hub_status(obj):
                self._objects[where] = obj
            self.on_change(key)
        if full:
            for where in set(self._versions) - seen:
                del self._versions[where]
                self._objects.pop(where, None)
                self.on_change(where[0])
