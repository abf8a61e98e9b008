"""``GET /api/v1/watch``: the fleet's change log as a stream, resumable by position.

    GET /api/v1/watch?since=N&kind=&namespace=&cluster=eu-*&type=CopyApplied,HealthChanged

JSON lines (``application/x-ndjson``, one change per line) by default; Server-Sent Events with
``Accept: text/event-stream`` (the event's ``id`` is its position, so a browser's EventSource
resumes by itself through ``Last-Event-ID``). ``since`` omitted: from now on. Behind the same
access policy as the rest of the API (the middlewares run before this handler).

Bounded like every request on the port: at most `max_watchers` streams per process (503
beyond), a watcher's queue of at most `queue` changes (`federation.changes.feed`: a client that
reads slower than the fleet changes is dropped with a final ``Dropped`` line saying the
position to resume after), each write done within `write_timeout` seconds or the connection is
closed, and a stream ends after `max_seconds` with a final ``End`` line (clients reconnect with
``since``). A heartbeat every `heartbeat` seconds keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from aiohttp import web
from pydantic import ConfigDict, Field

from federation.changes import ChangeFeed, ChangeFilter, WatcherDroppedError
from federation.changes.feed import FeedSettings, PositionGoneError, TooManyWatchersError
from federation.server.access import STREAMS, ApiError, bounded
from federation.server.models import API_PREFIX, FilterText, Model, QueryInt
from federation.server.query import parse_query
from federation.store import ChangeRow, Store

log = logging.getLogger(__name__)

WATCH_PATH = API_PREFIX + "/watch"
assert WATCH_PATH in STREAMS, "the request deadline would cut the stream"
FEED: web.AppKey[ChangeFeed] = web.AppKey("change_feed", ChangeFeed)


@dataclass
class WatchSettings:
    heartbeat: float = 15.0
    write_timeout: float = 30.0
    max_seconds: float = 3600.0


class WatchQuery(Model):
    """Filters of GET /watch; every one optional."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    since: QueryInt | None = Field(
        default=None, ge=0, description="Resume after this position (omitted: from now on)."
    )
    kind: FilterText | None = Field(default=None, description="Kind of the object changed.")
    namespace: FilterText | None = Field(default=None, description="Namespace of the object changed.")
    cluster: FilterText | None = Field(default=None, description="Member cluster; a glob such as eu-*.")
    type: list[FilterText] = Field(default_factory=list, description="Change types, comma-separated.")


def add_watch_route(
    app: web.Application,
    store: Store,
    *,
    feed: FeedSettings | None = None,
    settings: WatchSettings | None = None,
) -> ChangeFeed:
    """Mount the watch route and run its feed while the app runs."""
    change_feed = ChangeFeed(store, feed)
    app[FEED] = change_feed
    watch = settings or WatchSettings()

    async def run_feed(_app: web.Application) -> AsyncIterator[None]:
        # A task of its own, not a task group across the yield: aiohttp may run the start and
        # the cleanup of a cleanup context in different tasks.
        task = asyncio.get_running_loop().create_task(change_feed.run(), name="change-feed")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run_feed)

    async def handle(request: web.Request) -> web.StreamResponse:
        query = parse_query(WatchQuery, request.query)
        since = _last_event_id(request) if "Last-Event-ID" in request.headers else query.since
        filter = ChangeFilter.of(
            types=query.type, namespace=query.namespace, kind=query.kind, cluster=query.cluster
        )
        try:
            changes = await bounded(lambda: change_feed.open(since, filter))
        except TooManyWatchersError as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": "10"}) from exc
        except PositionGoneError as exc:
            raise ApiError(410, str(exc), field="since") from exc
        sse = "text/event-stream" in request.headers.get("Accept", "")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream" if sse else "application/x-ndjson",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await _stream(response, changes, sse=sse, settings=watch, since=since or change_feed.position)
        return response

    app.router.add_get(WATCH_PATH, handle)
    return change_feed


def watch_document(paths: dict[str, Any]) -> dict[str, Any]:
    """The route's entry in the OpenAPI document (a stream: no response model of its own),
    with the security the other routes declare."""
    events = paths.get(API_PREFIX + "/events", {}).get("get", {})
    parameters = [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": info.description}
        for name, info in WatchQuery.model_fields.items()
        for schema in [
            {"type": "integer", "minimum": 0}
            if name == "since"
            else ({"type": "array", "items": {"type": "string"}} if name == "type" else {"type": "string"})
        ]
    ]
    operation: dict[str, Any] = {
        "operationId": "watchChanges",
        "summary": "The fleet's changes as a stream",
        "description": "JSON lines (application/x-ndjson), or Server-Sent Events with Accept: "
        "text/event-stream; each change carries its position, to resume with since= (or "
        "Last-Event-ID). A watcher too slow is dropped with a final Dropped line; a stream ends "
        "after an hour with an End line.",
        "tags": ["watch"],
        "parameters": parameters,
        "responses": {
            # The errors every route shares (400, 401/403 when credentials are configured, 503).
            **{code: answer for code, answer in events.get("responses", {}).items() if code != "200"},
            "200": {
                "description": "The stream",
                "content": {"application/x-ndjson": {}, "text/event-stream": {}},
            },
            "410": {"description": "since is older than the change log keeps"},
        },
    }
    if "security" in events:
        operation["security"] = events["security"]
    return {"get": operation}


def _last_event_id(request: web.Request) -> int:
    value = request.headers["Last-Event-ID"].strip()
    if not value.isdigit():
        raise ApiError(400, f"Last-Event-ID must be a position (a whole number), got {value[:40]!r}")
    return int(value)


async def _stream(
    response: web.StreamResponse,
    changes: AsyncIterator[ChangeRow],
    *,
    sse: bool,
    settings: WatchSettings,
    since: int,
) -> None:
    """Write changes until the client goes, the stream's time is up, or the client is dropped."""
    lock = anyio.Lock()
    last = since

    async def write(kind: str, body: dict[str, Any], position: int | None = None) -> None:
        data = orjson.dumps(body)
        if sse:
            head = f"id: {position}\n" if position is not None else ""
            chunk = f"{head}event: {kind}\ndata: ".encode() + data + b"\n\n"
        else:
            chunk = data + b"\n"
        async with lock:
            with anyio.fail_after(settings.write_timeout):
                await response.write(chunk)

    async def heartbeat() -> None:
        while True:
            await anyio.sleep(settings.heartbeat)
            await write("Heartbeat", {"type": "Heartbeat", "position": last})

    async def follow() -> None:
        nonlocal last
        try:
            async for change in changes:
                last = change.position
                await write(change.type, change.to_json(), change.position)
        except WatcherDroppedError as exc:
            await write("Dropped", {"type": "Dropped", "position": exc.position, "reason": exc.reason})

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            with anyio.move_on_after(settings.max_seconds) as scope:
                await follow()
            if scope.cancelled_caught:
                reason = f"a stream lasts at most {settings.max_seconds:g}s: reconnect with since={last}"
                await write("End", {"type": "End", "position": last, "reason": reason})
            tg.cancel_scope.cancel()
    except (TimeoutError, ConnectionResetError, OSError) as exc:
        log.info("a watcher went (or stopped reading): %s", type(exc).__name__)
    finally:
        aclose = getattr(changes, "aclose", None)
        if aclose is not None:
            await aclose()
