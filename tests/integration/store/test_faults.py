"""Postgres restarts and crashes under the store: every write committed once, none lost.

These tests kill the server, so they run on a Postgres of their own, started *durable* (fsync
and synchronous_commit on): with the throwaway settings a crash may lose transactions that
were already acknowledged, which is exactly what this test must be able to tell apart from a
bug of ours.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from federation.devfleet import EmbeddedPostgres
from federation.errors import StoreUnavailableError
from federation.store import (
    EventRow,
    EventType,
    ResourceWork,
    RetryPolicy,
    Store,
    StoreSettings,
    migrate,
)
from federation.store.db import Connection
from federation.store.repo import events, works
from tests.integration.store.factories import resource_row
from tests.storehelpers import query

WRITES = 300


@pytest.fixture(scope="module")
def durable_postgres() -> Iterator[EmbeddedPostgres]:
    base = Path(tempfile.mkdtemp(prefix="federation-test-durable-postgres-"))
    server = EmbeddedPostgres(base / "data", durable=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def durable_url(durable_postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    from tests.storehelpers import create_database, drop_database

    url = await create_database(durable_postgres.url, "faults")
    await migrate.upgrade(url)
    yield url
    await drop_database(durable_postgres.url, "faults")


class HealthLog:
    def __init__(self) -> None:
        self.changes: list[bool] = []

    def __call__(self, healthy: bool, fault: BaseException | None, /) -> None:
        self.changes.append(healthy)


async def test_a_crash_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    durable_postgres: EmbeddedPostgres, durable_url: str
) -> None:
    health = HealthLog()
    store = await Store.connect(
        durable_url,
        settings=StoreSettings(retry=RetryPolicy(first_delay=0.05, max_delay=0.5, deadline=120)),
        on_health_change=health,
    )
    try:
        ids = await store.upsert_resources([resource_row(f"app-{i}") for i in range(WRITES)])
        keys = [uuid.uuid4() for _ in range(WRITES)]
        a_third_written = threading.Event()
        crashed = threading.Event()

        def crash_postgres() -> None:
            assert a_third_written.wait(timeout=120)
            durable_postgres.restart(kill=True)  # SIGKILL the postmaster, then crash recovery
            crashed.set()

        async def write_batch() -> None:
            for i in range(WRITES):

                async def unit(conn: Connection, i: int = i) -> None:
                    # Two statements in one transaction: both or neither, however often retried.
                    await works.upsert_desired_works(
                        conn,
                        [ResourceWork(ids[i], "member-1", {"n": i}, f"hash-{i}")],
                    )
                    await events.append_events(
                        conn, [EventRow(EventType.APPLIED, f"write {i}", cluster="member-1", key=keys[i])]
                    )

                await store.run_in_transaction(f"works resource_id={ids[i]}", unit)
                if i == WRITES // 3:
                    a_third_written.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, crash_postgres)
            tg.start_soon(write_batch)

        assert crashed.is_set()
        # The crash really hit the batch: attempts failed, the store went unhealthy and came back.
        assert store.stats.connection_faults >= 1
        assert health.changes[0] is False and health.changes[-1] is True
        assert store.healthy
    finally:
        await store.close()

    (works_row,) = await query(
        durable_url,
        "SELECT count(*) AS n, count(DISTINCT resource_id) AS distinct_resources, "
        "count(*) FILTER (WHERE desired_hash = 'hash-' || (desired->>'n')) AS consistent FROM works",
    )
    assert (works_row["n"], works_row["distinct_resources"], works_row["consistent"]) == (WRITES,) * 3
    (events_row,) = await query(
        durable_url, "SELECT count(*) AS n, count(DISTINCT event_key) AS distinct_keys FROM events"
    )
    assert (events_row["n"], events_row["distinct_keys"]) == (WRITES, WRITES)
    stored_keys = {r["event_key"] for r in await query(durable_url, "SELECT event_key FROM events")}
    assert stored_keys == set(keys)


async def test_a_server_that_stays_down_is_reported_after_the_deadline(
    durable_postgres: EmbeddedPostgres, durable_url: str
) -> None:
    health = HealthLog()
    store = await Store.connect(
        durable_url,
        settings=StoreSettings(retry=RetryPolicy(first_delay=0.05, max_delay=0.2, deadline=1.0)),
        on_health_change=health,
    )
    try:
        await store.ping()
        await anyio.to_thread.run_sync(durable_postgres.stop)
        try:
            with pytest.raises(StoreUnavailableError) as info:
                await store.ping()
            assert f"127.0.0.1:{durable_postgres.port}/faults" in str(info.value)
            assert not store.healthy and health.changes == [False]
        finally:
            await anyio.to_thread.run_sync(durable_postgres.start)
        await store.ping()
        assert store.healthy and health.changes == [False, True]
    finally:
        await store.close()
