"""The change feed's promises, in memory: one reader for many watchers, a catch-up that meets the
live feed with no gap and no repeat, a slow watcher dropped with the position to resume after,
and the limits checked before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from federation.changes import ChangeFeed, ChangeFilter, WatcherDroppedError
from federation.changes.feed import FeedSettings, PositionGoneError, TooManyWatchersError
from federation.store import ChangeRow, ObjectRef
from tests.kubehelpers import eventually


class LogStore:
    """The store calls the feed makes, over a list of numbered changes."""

    def __init__(self) -> None:
        self.rows: list[ChangeRow] = []
        self.last = 0
        self.read = 0

    def add(self, n: int, *, cluster: str = "member-1") -> None:
        for _ in range(n):
            self.last = pos = self.last + 1
            ref = ObjectRef("", "ConfigMap", "shop", f"cm-{pos}")
            self.rows.append(ChangeRow(pos, datetime.now(UTC), "CopyApplied", cluster, ref, {}))

    async def last_position(self) -> int:
        return self.last

    async def first_position(self) -> int:
        return self.rows[0].position if self.rows else 0

    async def changes_after(self, position: int, *, limit: int = 500, **filters: Any) -> list[ChangeRow]:
        wanted = ChangeFilter.of(
            types=filters.get("types") or (), namespace=filters.get("namespace"), kind=filters.get("kind"),
            cluster=filters.get("cluster"),
        )  # fmt: skip
        page = [r for r in self.rows if r.position > position and wanted.matches(r)][:limit]
        self.read += len(page)
        return page


async def take(changes: Any, n: int) -> list[int]:
    out = []
    async for row in changes:
        out.append(row.position)
        if len(out) == n:
            break
    return out


async def test_a_watcher_catches_up_and_follows_live_with_no_gap_or_repeat() -> None:
    store = LogStore()
    store.add(10)
    feed = ChangeFeed(store, FeedSettings(interval=0.01, page=3))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run)
        changes = await feed.open(4, ChangeFilter())
        store.add(5)  # while the watcher is catching up
        feed.notify()
        with anyio.fail_after(5):
            assert await take(changes, 11) == list(range(5, 16))
        tg.cancel_scope.cancel()


async def test_nobody_watching_costs_no_read_and_a_late_watcher_misses_nothing() -> None:
    """With no watcher the feed moves past the log without reading it; a watcher that comes
    later still gets every change after its position, from the store, then live."""
    store = LogStore()
    feed = ChangeFeed(store, FeedSettings(interval=0.01, page=3))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run)
        store.add(20)
        feed.notify()

        async def past_the_end() -> bool:
            return feed.position == 20

        await eventually(past_the_end, timeout=5, what="the feed moved past the unwatched changes")
        assert store.read == 0
        changes = await feed.open(12, ChangeFilter())
        store.add(4)
        feed.notify()
        with anyio.fail_after(5):
            assert await take(changes, 12) == list(range(13, 25))
        tg.cancel_scope.cancel()


async def test_a_filter_passes_only_what_it_names() -> None:
    store = LogStore()
    feed = ChangeFeed(store, FeedSettings(interval=0.01))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run)
        changes = await feed.open(None, ChangeFilter.of(cluster="eu-*"))
        store.add(3, cluster="us-east")
        store.add(2, cluster="eu-west")
        with anyio.fail_after(5):
            assert await take(changes, 2) == [4, 5]
        tg.cancel_scope.cancel()


async def test_a_slow_watcher_is_dropped_with_the_position_to_resume_after() -> None:
    store = LogStore()
    feed = ChangeFeed(store, FeedSettings(interval=0.01, queue=3))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run)
        changes = await feed.open(None, ChangeFilter())
        got: list[int] = []

        async def dropped_by_the_feed() -> bool:
            assert not feed._subscriptions, "still subscribed"
            return True

        async def read_slowly() -> None:
            async for row in changes:
                got.append(row.position)
                if len(got) == 1:
                    store.add(10)  # more than its queue holds, while it does not read
                    feed.notify()
                    await eventually(
                        dropped_by_the_feed, timeout=5, interval=0.01, what="the watcher dropped"
                    )

        store.add(1)
        with anyio.fail_after(5), pytest.raises(WatcherDroppedError) as dropped:
            await read_slowly()
        assert dropped.value.position == got[-1] and "too slow" in dropped.value.reason
        # What it missed is still in the log: resuming from there loses nothing.
        again = await feed.open(dropped.value.position, ChangeFilter())
        with anyio.fail_after(5):
            assert await take(again, 11 - len(got)) == list(range(got[-1] + 1, 12))
        tg.cancel_scope.cancel()


async def test_limits_are_checked_before_anything_is_sent() -> None:
    store = LogStore()
    store.add(5)
    feed = ChangeFeed(store, FeedSettings(interval=0.01, max_watchers=1))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run)
        store.rows = store.rows[3:]  # positions 1-3 pruned
        with pytest.raises(PositionGoneError, match="oldest is 4"):
            await feed.open(1, ChangeFilter())
        first = await feed.open(None, ChangeFilter())
        store.add(1)
        with anyio.fail_after(5):
            assert await take(first, 1) == [6]
            with pytest.raises(TooManyWatchersError):
                await feed.open(None, ChangeFilter())
        tg.cancel_scope.cancel()
