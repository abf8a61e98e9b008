"""Event sinks: the change log delivered as CloudEvents 1.0, at least once, in order.

Each sink (`federation.api.sinksfile`) runs on the leader as a loop over the log: read the next
page after its position (from Postgres: `sink_positions`), keep what its filter passes, deliver
it, then — only then — save the position of the page's last change. A crash or a leader change
between a delivery and the save repeats at most that batch, with the same event ids (the
change's position), so consumers dedupe by id; nothing is skipped, because the position only
moves past what was delivered. Order: changes go out in position order, one batch after the
other, so every consumer sees each resource's changes in the order they happened.

A sink that fails (down, refusing) is retried with backoff (0.5 s doubling to 30 s), its
position unmoved: the log is its backlog, and the lag (changes and seconds behind) is a metric.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import anyio
import orjson

from federation.api.rollout import seconds
from federation.api.sinksfile import MAX_BATCH, HttpMode, HttpSink, KafkaSink, NatsSink, SinkEntry, Start
from federation.changes.filters import ChangeFilter
from federation.errors import FederationError, StoreError
from federation.metrics import SINK_DELIVERED, SINK_FAILURES, SINK_LAG_CHANGES, SINK_LAG_SECONDS
from federation.store import ChangeRow, Store

log = logging.getLogger(__name__)

SPEC_VERSION = "1.0"
TYPE_PREFIX = "io.federation."


class SinkError(FederationError):
    """A delivery failed; the batch will be retried."""


def cloud_event(change: ChangeRow, *, hub: str) -> dict[str, Any]:
    """The change as a CloudEvents 1.0 event (structured JSON). ``id`` is its position: the same
    change always has the same id, whichever replica or retry sends it."""
    ref = change.ref
    if ref is not None:
        subject = f"{ref.api_group or 'core'}/{ref.kind}/{ref.namespace or '_'}/{ref.name}"
    else:
        subject = f"clusters/{change.cluster or '_'}"
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": str(change.position),
        "source": f"/federation/{hub}",
        "type": TYPE_PREFIX + change.type,
        "subject": subject,
        "time": change.time.isoformat(),
        "datacontenttype": "application/json",
        "federationposition": change.position,
        "data": change.to_json(),
    }
    if change.cluster:
        event["federationcluster"] = change.cluster
    # Context as it was when the change happened (migration 0010), as extension attributes too,
    # so a router can act on them without parsing the data.
    if change.actor:
        event["federationactor"] = change.actor
    if change.policy:
        event["federationpolicy"] = change.policy
    if change.placement_revision is not None:
        event["federationrevision"] = change.placement_revision
    return event


def partition_key(event: Mapping[str, Any]) -> str:
    """What orders events per resource on a partitioned bus (a Kafka message key)."""
    return str(event["subject"])


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A change ready to send: its CloudEvent encoded once, however many sinks send it."""

    change: ChangeRow
    id: str
    key: str
    """`partition_key`: the resource (or cluster) the change is about."""
    body: bytes
    """The structured-mode CloudEvent, JSON."""


def outgoing(change: ChangeRow, *, hub: str) -> Outgoing:
    event = cloud_event(change, hub=hub)
    return Outgoing(change, str(event["id"]), partition_key(event), orjson.dumps(event))


class Pages:
    """The log after a position, read and encoded once for all the sinks of a process.

    Keeps a window of the log: every change with a position in (``lo``, ``hi``], in order, as
    read from the store. Positions are given in increasing order and never below one already
    given, so once read, that range can gain no row: a sink standing inside the window is
    answered from it, and only one standing at its end (or outside it) reads the store — and
    a read from the end extends the window for the others. Sinks catching up a backlog at
    different speeds therefore share one read of each change; the window is bounded
    (`keep` changes), so a sink far behind reads for itself. Unfiltered: each sink applies
    its own filter to what it gets (`SinkRunner`)."""

    def __init__(self, store: Store, *, hub: str, keep: int = 20_000) -> None:
        self.store = store
        self.hub = hub
        self.keep = keep
        self._window: list[Outgoing] = []
        self._positions: list[int] = []
        self._lo = self._hi = -1
        self._reading = anyio.Lock()

    async def after(self, position: int, limit: int) -> list[Outgoing]:
        page = self._from_window(position, limit)
        if page is not None:
            return page
        async with self._reading:
            page = self._from_window(position, limit)  # another sink's read may have answered
            if page is not None:
                return page
            rows = await self.store.changes_after(position, limit=limit)
            page = [outgoing(row, hub=self.hub) for row in rows]
            self._extend(position, page)
            return page

    def _from_window(self, position: int, limit: int) -> list[Outgoing] | None:
        if not self._lo <= position < self._hi:
            return None
        start = bisect.bisect_right(self._positions, position)
        return self._window[start : start + limit]

    def _extend(self, position: int, page: list[Outgoing]) -> None:
        if not page:
            return
        if position != self._hi:  # not contiguous with the window: start a new one
            self._window, self._positions, self._lo = [], [], position
        self._window.extend(page)
        self._positions.extend(e.change.position for e in page)
        self._hi = page[-1].change.position
        excess = len(self._window) - self.keep
        if excess > 0:
            self._lo = self._positions[excess - 1]
            del self._window[:excess], self._positions[:excess]


class Destination(Protocol):
    async def deliver(self, events: Sequence[Outgoing]) -> None: ...
    async def close(self) -> None: ...


class HttpDestination:
    """POST to a URL: an event per request (structured) or a batch per request."""

    def __init__(self, spec: HttpSink) -> None:
        self.spec = spec
        self.timeout = aiohttp.ClientTimeout(total=seconds(spec.timeout))
        self._session: aiohttp.ClientSession | None = None

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type}
        if self.spec.bearer_token_file is not None:
            headers["Authorization"] = "Bearer " + self.spec.bearer_token_file.read_text().strip()
        return headers

    async def _post(self, body: bytes, content_type: str) -> None:
        if self._session is None:
            context = ssl.create_default_context(cafile=self.spec.ca_file) if self.spec.ca_file else None
            connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)
        try:
            async with self._session.post(
                self.spec.url, data=body, headers=self._headers(content_type)
            ) as resp:
                if resp.status >= 300:
                    text = (await resp.text())[:200]
                    raise SinkError(f"POST {self.spec.url}: HTTP {resp.status} {text}".rstrip())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SinkError(f"POST {self.spec.url}: {type(exc).__name__}: {exc}") from exc

    async def deliver(self, events: Sequence[Outgoing]) -> None:
        if self.spec.mode is HttpMode.BATCH:
            body = b"[" + b",".join(e.body for e in events) + b"]"
            await self._post(body, "application/cloudevents-batch+json")
            return
        for event in events:
            await self._post(event.body, "application/cloudevents+json")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class NatsDestination:
    """JetStream publishes, pipelined: the whole batch sent on one connection, then every
    acknowledgement awaited (a publish acknowledged one at a time costs a round trip per event —
    ~1,400 events/s here, against the log's ~800/s during a bulk rollout plus everything else
    the controller does).

    Order: one connection's publishes reach the stream in the order they were sent, so what a
    failure leaves unstored is a suffix of the batch; the runner resends the batch from its
    first event, and the stream's deduplication (``Nats-Msg-Id``, the position) drops the ones
    already stored, so the stream holds each change once, in the log's order."""

    def __init__(self, spec: NatsSink) -> None:
        self.spec = spec
        self.timeout = seconds(spec.timeout)
        self._client: Any = None
        self._js: Any = None

    async def _jetstream(self) -> Any:
        if self._client is None or self._client.is_closed:
            import nats  # imported on use: only controllers with a NATS sink need it

            options: dict[str, Any] = {
                "servers": [self.spec.url],
                "connect_timeout": self.timeout,
                "max_reconnect_attempts": 2,
                "allow_reconnect": True,
            }
            if self.spec.credentials_file is not None:
                options["user_credentials"] = str(self.spec.credentials_file)
            try:
                self._client = await nats.connect(**options)
            except Exception as exc:  # nats-py raises several unrelated types for "cannot connect"
                raise SinkError(f"NATS {self.spec.url}: cannot connect: {type(exc).__name__}: {exc}") from exc
            # One context per connection: its first asynchronous publish subscribes the inbox
            # every acknowledgement comes back on.
            # Room for a whole batch: a publish that waits for room yields (and a stall timeout
            # costs a task per publish), where a batch sent without yielding goes out in one write.
            self._js = self._client.jetstream(timeout=self.timeout, publish_async_max_pending=MAX_BATCH)
        return self._js

    async def deliver(self, events: Sequence[Outgoing]) -> None:
        js = await self._jetstream()
        try:
            with anyio.fail_after(self.timeout):
                acks = [
                    await js.publish_async(self.spec.subject, e.body, headers={"Nats-Msg-Id": e.id})
                    for e in events
                ]
                for ack in acks:
                    await ack
        except Exception as exc:
            await self.close()  # a fresh connection next time; unacknowledged publishes die with it
            what = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if isinstance(exc, TimeoutError):
                what = f"no acknowledgement within {self.timeout:g}s"
            raise SinkError(f"NATS {self.spec.url} subject {self.spec.subject}: {what}") from exc

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception), anyio.move_on_after(self.timeout):
                await client.close()


class KafkaDestination:
    """An idempotent producer (acks=all): the batch sent in order, then every send awaited; the
    resource is the key, so a partition holds each resource's changes in the log's order."""

    def __init__(self, spec: KafkaSink) -> None:
        self.spec = spec
        self.timeout = seconds(spec.timeout)
        self._producer: Any = None

    async def _started(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer  # imported on use: only controllers with a Kafka sink

            producer = AIOKafkaProducer(
                bootstrap_servers=list(self.spec.bootstrap_servers),
                enable_idempotence=True,
                acks="all",
                partitioner=CachedPartitioner(),
                request_timeout_ms=int(self.timeout * 1000),
            )
            try:
                with anyio.fail_after(self.timeout):
                    await producer.start()
            except Exception as exc:
                with contextlib.suppress(Exception), anyio.move_on_after(self.timeout):
                    await producer.stop()
                raise SinkError(
                    f"Kafka {','.join(self.spec.bootstrap_servers)}: cannot connect: {exc!r}"
                ) from exc
            self._producer = producer
        return self._producer

    async def deliver(self, events: Sequence[Outgoing]) -> None:
        producer = await self._started()
        try:
            with anyio.fail_after(self.timeout * 2):
                sent = [
                    await producer.send(
                        self.spec.topic, e.body, key=e.key.encode(), headers=[("ce_id", e.id.encode())]
                    )
                    for e in events
                ]
                for future in sent:
                    await future
        except Exception as exc:
            await self.close()
            raise SinkError(f"Kafka topic {self.spec.topic}: {exc!r}") from exc

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # stop() flushes what is pending: with the brokers down it would wait forever (what
            # it holds is redelivered from the log anyway).
            with contextlib.suppress(Exception), anyio.move_on_after(self.timeout):
                await producer.stop()


class CachedPartitioner:
    """Kafka's default partitioner (murmur2 of the key, as the Java client: consumers and other
    producers agree on a resource's partition), remembered per key: aiokafka's murmur2 is pure
    Python (~20 µs an event), and a resource's changes share their key."""

    MAX = 100_000

    def __init__(self) -> None:
        from aiokafka.partitioner import DefaultPartitioner

        self._default = DefaultPartitioner()
        self._known: dict[tuple[bytes, int], Any] = {}

    def __call__(self, key: bytes | None, all_partitions: list[Any], available: list[Any]) -> Any:
        if key is None:
            return self._default(key, all_partitions, available)
        cached = (key, len(all_partitions))
        partition = self._known.get(cached)
        if partition is None:
            if len(self._known) >= self.MAX:
                self._known.clear()
            partition = self._known[cached] = self._default(key, all_partitions, available)
        return partition


def destination(entry: SinkEntry) -> Destination:
    if entry.kafka is not None:
        return KafkaDestination(entry.kafka)
    if entry.nats is not None:
        return NatsDestination(entry.nats)
    assert entry.http is not None, "the sinks file's validation requires a destination"
    return HttpDestination(entry.http)


@dataclass
class SinkSettings:
    interval: float = 0.5
    """Seconds between reads when the sink is caught up and no numbering woke it (numbering by
    another process: a CLI following the log with no controller)."""
    retry_initial: float = 0.5
    retry_cap: float = 30.0


class SinkRunner:
    def __init__(
        self,
        store: Store,
        entry: SinkEntry,
        *,
        hub: str,
        target: Destination | None = None,
        settings: SinkSettings | None = None,
        pages: Pages | None = None,
    ) -> None:
        self.store = store
        self.entry = entry
        self.hub = hub
        self.target = target or destination(entry)
        self.pages = pages or Pages(store, hub=hub)
        self.settings = settings or SinkSettings()
        f = entry.filter
        self.filter = ChangeFilter.of(types=f.types, namespace=f.namespaces, kind=f.kinds, cluster=f.clusters)
        self.position = 0
        self._wake = anyio.Event()
        self._lag_at = float("-inf")

    def notify(self) -> None:
        """New changes were numbered: read now rather than at the next interval."""
        self._wake.set()

    async def _start(self) -> int:
        saved = await self.store.sink_position(self.entry.name)
        if saved is not None:
            return saved
        start = 0 if self.entry.start is Start.OLDEST else await self.store.last_position()
        await self.store.save_sink_position(self.entry.name, start)
        log.info(
            "event sink %s starts after position %d (%s)", self.entry.name, start, self.entry.start.value
        )
        return start

    async def run(self) -> None:
        name = self.entry.name
        while True:
            try:
                self.position = await self._start()
                break
            except StoreError as exc:
                log.warning("event sink %s cannot start yet: %s", name, exc)
                await anyio.sleep(2.0)
        delay = self.settings.retry_initial
        try:
            while True:
                self._wake = anyio.Event()  # before the read: a numbering during it is not missed
                try:
                    page = await self.pages.after(self.position, self.entry.batch_size)
                    await self._lag(page)
                    if page:
                        await self._deliver(page)
                    delay = self.settings.retry_initial
                except SinkError as exc:
                    SINK_FAILURES.labels(name).inc()
                    log.warning("event sink %s: %s (retrying in %.1fs)", name, exc, delay)
                    await self._note_error(str(exc))
                    await anyio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_cap)
                    continue
                except StoreError as exc:
                    log.warning("event sink %s: %s", name, exc)
                    await anyio.sleep(2.0)
                    continue
                if len(page) < self.entry.batch_size:
                    with anyio.move_on_after(self.settings.interval):
                        await self._wake.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self.target.close()

    async def _deliver(self, page: Sequence[Outgoing]) -> None:
        events = [e for e in page if self.filter.matches(e.change)]
        if events:
            await self.target.deliver(events)
            SINK_DELIVERED.labels(self.entry.name).inc(len(events))
        # Past the whole page, matched or not: what the filter dropped is done too.
        self.position = page[-1].change.position
        await self.store.save_sink_position(self.entry.name, self.position)

    async def _note_error(self, error: str) -> None:
        with contextlib.suppress(StoreError):  # the error is logged already; the store may be the cause
            await self.store.save_sink_position(self.entry.name, self.position, error[:500])

    async def _lag(self, page: Sequence[Outgoing]) -> None:
        """The lag metrics, at most once a second (a read of the log's end each time)."""
        now = time.monotonic()
        if now - self._lag_at < 1.0:
            return
        self._lag_at = now
        behind = (await self.store.last_position()) - self.position
        SINK_LAG_CHANGES.labels(self.entry.name).set(max(0, behind))
        oldest = page[0].change.time.timestamp() if page else None
        SINK_LAG_SECONDS.labels(self.entry.name).set(max(0.0, time.time() - oldest) if oldest else 0.0)


def runners(store: Store, entries: Sequence[SinkEntry], *, hub: str) -> list[SinkRunner]:
    """One runner per sink, sharing their reads of the log."""
    pages = Pages(store, hub=hub)
    return [SinkRunner(store, e, hub=hub, pages=pages) for e in entries]
