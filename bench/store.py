"""Benchmark of the state store's bulk writes, beside COPY of the same rows in the same run.

    .venv/bin/python -m bench.store [--rows 100000] [--batch 10000]

A fresh embedded PostgreSQL is started with durability off (fsync, synchronous_commit and
full_page_writes off, as for every throwaway fleet), so the figures are about our statements
and not about this machine's disk; it is migrated to the newest schema. Then:

- the reference: the rows loaded with binary COPY, in one stream, into a scratch table with the
  same columns and no index or constraint (COPY's best case: the practical limit of ingestion);
- works: 100,000 (resource, cluster) rows (1,000 resources × 100 clusters, a ~0.7 kB
  Deployment manifest each) through `Store.upsert_desired_works`, in calls of `--batch` rows:
  new rows; the same rows again (what a controller restart does: nothing is written); every hash
  changed; and, after emptying the table, new rows through a store limited to one connection;
- member_status: the same for 100,000 rows (~0.3 kB Deployment status each) through
  `Store.upsert_member_statuses`;
- small calls: `--calls` one-row reads through `Store.get_checkpoint` beside the same statement
  on a connection taken from a bare asyncpg pool: what the store's unit of work (retry, pool,
  error translation) adds to a call that is one round trip, the common case of the controller.

The store's defaults cut a call into statements of 2,500 rows (sorted by resource, cluster) and
run two at a time on two connections; the "1 connection" rows show the same API without that.
The target is new rows at ≥ 0.3× COPY's rate with the default settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg

from federation.devfleet import EmbeddedPostgres
from federation.devfleet.postgres import FAST_SETTINGS
from federation.store import (
    Checkpoint,
    ClusterRow,
    Health,
    MemberStatusRow,
    ResourceId,
    ResourceRow,
    ResourceWork,
    Store,
    StoreSettings,
    migrate,
)
from federation.store.db import init_connection
from federation.store.repo import checkpoints

TARGET = 0.3
RESOURCES = 1000


@dataclass
class Result:
    phase: str
    rows: int
    written: int
    seconds: float
    #: The phase later phases are compared with (until the next reference).
    reference: bool = False

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def manifest(resource: int, cluster: str, generation: int) -> dict[str, Any]:
    name = f"app-{resource:04d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "labels": {"app": name, "federation.io/managed-by": "hub-1", "federation.io/cluster": cluster},
            "annotations": {
                "federation.io/generation": str(generation),
                "federation.io/source": f"bench/{name}",
            },
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example/app:{generation}.{resource % 7}",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "env": [
                                {"name": "CLUSTER", "value": cluster},
                                {"name": "LOG_LEVEL", "value": "info"},
                            ],
                        }
                    ]
                },
            },
        },
    }


def status(resource: int, ready: int) -> dict[str, Any]:
    return {
        "observedGeneration": 4,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def batches(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def timed(
    phase: str, rows: Sequence[Any], size: int, write: Callable[[Sequence[Any]], Awaitable[int]]
) -> Result:
    written = 0
    started = time.perf_counter()
    for batch in batches(rows, size):
        written += await write(batch)
    return Result(phase, len(rows), written, time.perf_counter() - started)


async def copy_rows(
    conn: asyncpg.Connection[asyncpg.Record], table: str, columns: list[str], records: list[tuple[Any, ...]]
) -> Result:
    """The reference: every row in one binary COPY stream, COPY's best case."""
    started = time.perf_counter()
    await conn.copy_records_to_table(table, records=records, columns=columns)
    elapsed = time.perf_counter() - started
    return Result(f"COPY into {table}, one stream", len(records), len(records), elapsed, reference=True)


async def no_reset(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """As the store's pool: no reset round trip on release."""


async def small_calls(url: str, store: Store, calls: int) -> list[Result]:
    """One-row reads, bare asyncpg pool then the store's, twice each (the machine drifts)."""
    await store.set_checkpoints([Checkpoint("member-000", "apps/v1/deployments", "42")])
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, init=init_connection, reset=no_reset)
    results: list[Result] = []
    try:
        for _ in range(2):
            started = time.perf_counter()
            for _ in range(calls):
                async with pool.acquire() as conn:
                    await checkpoints.get_checkpoint(conn, "member-000", "apps/v1/deployments")
            elapsed = time.perf_counter() - started
            results.append(Result("small calls: bare asyncpg pool", calls, 0, elapsed, reference=True))
            started = time.perf_counter()
            for _ in range(calls):
                await store.get_checkpoint("member-000", "apps/v1/deployments")
            elapsed = time.perf_counter() - started
            results.append(Result("small calls: Store.get_checkpoint", calls, 0, elapsed))
    finally:
        await pool.close()
    return results


async def run(url: str, *, rows: int, batch: int, calls: int, settings: StoreSettings) -> list[Result]:
    clusters = [f"member-{i:03d}" for i in range(rows // RESOURCES)]
    results: list[Result] = []
    store = await Store.connect(url, settings=settings)
    serial = await Store.connect(url, settings=replace(settings, bulk_parallelism=1, max_connections=1))
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    try:
        await store.upsert_clusters([ClusterRow(name=c, ready=True) for c in clusters])
        ids: list[ResourceId] = await store.upsert_resources(
            [
                ResourceRow(
                    api_group="apps",
                    api_version="apps/v1",
                    kind="Deployment",
                    namespace="bench",
                    name=f"app-{r:04d}",
                    uid=f"uid-{r}",
                    generation=1,
                    resource_version="1",
                    template=manifest(r, "hub", 1),
                )
                for r in range(RESOURCES)
            ]
        )

        def works(generation: int) -> list[ResourceWork]:
            return [
                ResourceWork(ids[r], c, manifest(r, c, generation), f"g{generation}-{r}-{c}")
                for c in clusters
                for r in range(RESOURCES)
            ]

        def statuses(ready: int) -> list[MemberStatusRow]:
            return [
                MemberStatusRow(ids[r], c, status(r, ready), Health.HEALTHY, 4, f"rv-{ready}")
                for c in clusters
                for r in range(RESOURCES)
            ]

        await conn.execute(
            "CREATE TABLE scratch_works AS "
            "SELECT resource_id, cluster, desired, desired_hash FROM works LIMIT 0"
        )
        await conn.execute(
            "CREATE TABLE scratch_status AS SELECT resource_id, cluster, status, health, "
            "observed_generation, member_resource_version FROM member_status LIMIT 0"
        )

        first, second = works(1), works(2)
        columns = ["resource_id", "cluster", "desired", "desired_hash"]
        copy = [(w.resource_id, w.cluster, w.desired, w.desired_hash) for w in first]
        results.append(await copy_rows(conn, "scratch_works", columns, copy))
        results.append(await timed("works: new rows", first, batch, store.upsert_desired_works))
        results.append(
            await timed("works: same rows again (a restart)", first, batch, store.upsert_desired_works)
        )
        results.append(await timed("works: every hash changed", second, batch, store.upsert_desired_works))
        await conn.execute("TRUNCATE works CASCADE")
        results.append(
            await timed("works: new rows, 1 connection", first, batch, serial.upsert_desired_works)
        )

        fresh, changed = statuses(2), statuses(3)
        columns = [
            "resource_id",
            "cluster",
            "status",
            "health",
            "observed_generation",
            "member_resource_version",
        ]
        copy = [
            (
                s.resource_id,
                s.cluster,
                s.status,
                s.health.value,
                s.observed_generation,
                s.member_resource_version,
            )
            for s in fresh
        ]
        results.append(await copy_rows(conn, "scratch_status", columns, copy))
        results.append(await timed("member_status: new rows", fresh, batch, store.upsert_member_statuses))
        results.append(
            await timed("member_status: same rows again", fresh, batch, store.upsert_member_statuses)
        )
        results.append(
            await timed("member_status: every row changed", changed, batch, store.upsert_member_statuses)
        )
        await conn.execute("TRUNCATE member_status")
        results.append(
            await timed("member_status: new rows, 1 connection", fresh, batch, serial.upsert_member_statuses)
        )
        results.extend(await small_calls(url, serial, calls))
    finally:
        await conn.close()
        await store.close()
        await serial.close()
    return results


def report(results: list[Result], *, version: str, rows: int, batch: int, settings: StoreSettings) -> bool:
    durability = " ".join(f"{k}={v}" for k, v in FAST_SETTINGS.items())
    print(f"federation store benchmark: {rows:,} rows per phase")
    print(f"server: embedded {version}, durability off ({durability})")
    print(f"client: Python {platform.python_version()}, asyncpg {asyncpg.__version__}, {os.cpu_count()} CPUs")
    print(
        f"store calls of {batch:,} rows, run as statements of {settings.bulk_chunk_rows:,} rows "
        f"on {settings.bulk_parallelism} connections (the default StoreSettings) unless marked 1 connection"
    )
    print()
    print(f"{'phase':<50} {'rows/s':>10} {'written':>9} {'× ref':>7}  (ref: the COPY or bare pool above)")
    reference = 0.0
    ratios: dict[str, float] = {}
    for r in results:
        if r.reference:
            reference = r.rate
        ratio = r.rate / reference
        print(f"{r.phase:<50} {r.rate:>10,.0f} {r.written:>9,} {ratio:>6.2f}×")
        if r.phase.endswith(": new rows"):
            ratios[r.phase.split(":")[0]] = ratio
    print()
    verdicts = ", ".join(f"{table} {ratio:.2f}×" for table, ratio in ratios.items())
    ok = all(ratio >= TARGET for ratio in ratios.values())
    print(
        f"new rows vs COPY, default settings: {verdicts} (target ≥ {TARGET}×): {'met' if ok else 'NOT met'}"
    )
    return ok


async def main_async(rows: int, batch: int, calls: int) -> bool:
    base = Path(tempfile.mkdtemp(prefix="federation-bench-store-"))
    server = EmbeddedPostgres(base / "data", durable=False)
    try:
        url = server.start()
        await migrate.upgrade(url)
        conn = await asyncpg.connect(url)
        version = str(await conn.fetchval("SELECT split_part(version(), ' on ', 1)"))
        await conn.close()
        settings = StoreSettings()
        results = await run(url, rows=rows, batch=batch, calls=calls, settings=settings)
        return report(results, version=version, rows=rows, batch=batch, settings=settings)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per phase (a multiple of 1000)")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store call")
    parser.add_argument("--calls", type=int, default=5_000, help="one-row calls per small-calls phase")
    args = parser.parse_args()
    if args.rows % RESOURCES:
        parser.error(f"--rows must be a multiple of {RESOURCES}")
    raise SystemExit(0 if asyncio.run(main_async(args.rows, args.batch, args.calls)) else 1)


if __name__ == "__main__":
    main()
