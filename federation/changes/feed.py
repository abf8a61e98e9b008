"""One reader of the change log per process, fanned out to every watcher it serves.

A hundred watchers of the API cost one query per `interval` (or per notification from the
sequencer), not a hundred: the feed reads each new page of changes once and offers every
watcher what its filter passes. A watcher that starts behind (``since`` a position in the past,
a reconnect) first catches up from the store page by page, then follows the feed, with neither a
gap nor a repeat: the feed's position at the moment it subscribed is the seam.

Memory is bounded per watcher: its queue holds at most `queue` changes. A watcher that reads
slower than the fleet changes is dropped — its stream ends with `WatcherDroppedError`, which says the last
position it received, so it reconnects from there and loses nothing (the log keeps the rest).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from federation.changes.filters import ChangeFilter
from federation.errors import FederationError, StoreError
from federation.metrics import CHANGE_WATCHERS, CHANGE_WATCHERS_DROPPED
from federation.store import ChangeRow, Store

log = logging.getLogger(__name__)


class WatcherDroppedError(FederationError):
    """The watcher fell too far behind (or the feed stopped); resume after `position`."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"{reason}; resume after position {position}")
        self.position = position
        self.reason = reason


class TooManyWatchersError(FederationError):
    pass


class PositionGoneError(FederationError):
    """The position asked for is older than the log keeps (its retention)."""


@dataclass(eq=False)
class Subscription:
    filter: ChangeFilter
    live_from: int
    send: MemoryObjectSendStream[ChangeRow]
    receive: MemoryObjectReceiveStream[ChangeRow]
    dropped: str | None = None


@dataclass
class FeedSettings:
    interval: float = 0.25
    """Seconds between reads when no notification came (the sequencer notifies each numbering)."""
    page: int = 1000
    queue: int = 1000
    """Changes a watcher may have waiting before it is dropped as too slow."""
    max_watchers: int = 100


class ChangeFeed:
    def __init__(self, store: Store, settings: FeedSettings | None = None) -> None:
        self.store = store
        self.settings = settings or FeedSettings()
        self.position = 0
        self._subscriptions: set[Subscription] = set()
        self._started = anyio.Event()
        self._wake = anyio.Event()

    def notify(self) -> None:
        """New changes were numbered (the sequencer's notification): read now."""
        self._wake.set()

    async def run(self) -> None:
        while not self._started.is_set():
            try:
                self.position = await self.store.last_position()
                self._started.set()
            except StoreError as exc:
                log.warning("the change feed cannot start yet: %s", exc)
                await anyio.sleep(2.0)
        while True:
            try:
                if not self._subscriptions and await self._skip_unwatched():
                    rows = []
                else:
                    rows = await self.store.changes_after(self.position, limit=self.settings.page)
            except StoreError as exc:
                log.warning("reading the change log failed: %s", exc)
                rows = []
            for row in rows:
                self._offer(row)
                self.position = row.position
            if len(rows) < self.settings.page:
                with anyio.move_on_after(self.settings.interval):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _skip_unwatched(self) -> bool:
        """With nobody watching, move past the log's end without reading it: a controller no
        one watches pays nothing for the feed (during a bulk rollout, reading and decoding
        every change cost its loop ~40 µs each). True if skipped.

        Safe because the position only means "offered to every subscriber": a subscriber added
        meanwhile starts from the position it saw (`_follow` catches it up from the store), and
        one added during the read below is seen before the position moves."""
        last = await self.store.last_position()
        if self._subscriptions:
            return False
        self.position = max(self.position, last)
        return True

    def _offer(self, row: ChangeRow) -> None:
        for sub in list(self._subscriptions):
            if row.position <= sub.live_from or not sub.filter.matches(row):
                continue
            try:
                sub.send.send_nowait(row)
            except anyio.WouldBlock:
                self._drop(sub, f"too slow: more than {self.settings.queue} changes were waiting")

    def _drop(self, sub: Subscription, reason: str) -> None:
        sub.dropped = reason
        self._subscriptions.discard(sub)
        sub.send.close()
        CHANGE_WATCHERS_DROPPED.inc()

    async def open(self, since: int | None, filter: ChangeFilter) -> AsyncIterator[ChangeRow]:
        """Every change after `since` (None: from now on) that `filter` passes, in order, for
        as long as the caller reads; the iterator raises `WatcherDroppedError` if the caller
        reads too slowly. Checked before anything is sent: `PositionGoneError` if `since` is
        older than the log keeps, `TooManyWatchersError` past the limit."""
        await self._started.wait()
        if len(self._subscriptions) >= self.settings.max_watchers:
            raise TooManyWatchersError(f"{self.settings.max_watchers} watchers already follow the change log")
        if since is not None and since < self.position:
            oldest = await self.store.first_position()
            if oldest > since + 1:
                raise PositionGoneError(
                    f"position {since} is older than the change log keeps (the oldest is {oldest})"
                )
        return self._follow(since, filter)

    async def _follow(self, since: int | None, filter: ChangeFilter) -> AsyncIterator[ChangeRow]:
        # Subscribed at the first read (a generator never read holds nothing): the feed's
        # position now is the seam between catching up from the store and following live.
        send, receive = anyio.create_memory_object_stream[ChangeRow](self.settings.queue)
        sub = Subscription(filter, self.position, send, receive)
        self._subscriptions.add(sub)
        CHANGE_WATCHERS.inc()
        cursor = sub.live_from if since is None else since
        try:
            if cursor < sub.live_from:
                async for row in self._catch_up(cursor, sub):
                    cursor = row.position
                    yield row
                cursor = max(cursor, sub.live_from)
            async with sub.receive:
                async for row in sub.receive:
                    if row.position > cursor:
                        cursor = row.position
                        yield row
            if sub.dropped is not None:
                raise WatcherDroppedError(cursor, sub.dropped)
        finally:
            self._subscriptions.discard(sub)
            sub.send.close()
            CHANGE_WATCHERS.dec()

    async def _catch_up(self, cursor: int, sub: Subscription) -> AsyncIterator[ChangeRow]:
        """The store's pages from `cursor` up to the seam (`live_from`)."""
        while cursor < sub.live_from:
            rows = await self.store.changes_after(cursor, limit=self.settings.page, **sub.filter.query())
            if not rows:
                return
            for row in rows:
                if row.position > sub.live_from:
                    return
                cursor = row.position
                if sub.filter.matches(row):  # the store filters by as much as it can
                    yield row
