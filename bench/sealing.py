"""What sealing Secrets' data costs, beside the same work unsealed, in the same run.

    .venv/bin/python -m bench.sealing [--rows 20000]

Two parts:

- CPU per manifest (no database): for a Secret of three keys (~0.5 kB) — sealing it (finding its
  sensitive paths, AES-256-GCM of each, the JSON copy) and opening it again; for a Deployment —
  the walk that finds it holds nothing sensitive (what every other row pays). Against the JSON
  encoding every bulk write does anyway (`json_texts`).
- The store, end to end, on a fresh embedded PostgreSQL (durability off, as in `bench.store`):
  `--rows` Secret works (100 resources × rows/100 clusters) through `Store.upsert_desired_works`
  with a sealer, and the same rows through a store without one (plaintext: the reference, what
  the code did before); then the same rows again (a restart: nothing is written, but every row
  is sealed to be compared), and `claim_due_works` of all of them (each opened).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from federation.devfleet import EmbeddedPostgres
from federation.sealing import KeyRing, Sealer, new_key
from federation.store import ClusterRow, ResourceId, ResourceRow, ResourceWork, Store, migrate
from federation.store.db import json_texts
from federation.store.sealing import SealedRow

RESOURCES = 100


def secret(resource: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"db-{resource:04d}",
            "namespace": "bench",
            "labels": {"app": "db", "federation.io/hub": "hub-1", "federation.io/managed-by": "federation"},
            "annotations": {"federation.io/source": f"core/v1/Secret/bench/db-{resource:04d}"},
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(os.urandom(24)).decode() for k in ("username", "password", "token")},
    }


def deployment(resource: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"app-{resource:04d}", "namespace": "bench", "labels": {"app": "a"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    }


def per_item(what: str, n: int, fn: Callable[[int], object]) -> tuple[str, float]:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return what, (time.perf_counter() - started) / n * 1e6


def cpu(n: int) -> list[tuple[str, float]]:
    sealer = Sealer(keys=KeyRing(keys=(new_key("k1"),), source="bench"))
    secrets_ = [secret(i) for i in range(n)]
    deployments = [deployment(i) for i in range(n)]
    rows = [SealedRow.of_work(s, resource_id=i, cluster="member-1") for i, s in enumerate(secrets_)]
    sealed = [sealer.seal(s, r) for s, r in zip(secrets_, rows, strict=True)]
    return [
        per_item("JSON-encode a Secret (every write does this)", n, lambda i: json_texts([secrets_[i]])),
        per_item(
            "seal a Secret + JSON-encode it", n, lambda i: json_texts([sealer.seal(secrets_[i], rows[i])])
        ),
        per_item("open a sealed Secret", n, lambda i: sealer.unseal(sealed[i], rows[i])),
        per_item("JSON-encode a Deployment", n, lambda i: json_texts([deployments[i]])),
        per_item(
            "seal a Deployment (nothing sensitive) + JSON-encode it",
            n,
            lambda i: json_texts([sealer.seal(deployments[i], rows[i])]),
        ),
    ]


async def timed(what: str, action: Callable[[], Awaitable[object]], rows: int) -> tuple[str, float, float]:
    started = time.perf_counter()
    await action()
    seconds = time.perf_counter() - started
    return what, rows / seconds, seconds / rows * 1e6


async def one_store(
    url: str, label: str, sealer: Sealer | None, clusters: list[str]
) -> list[tuple[str, float, float]]:
    store = await Store.connect(url, sealer=sealer)
    try:
        await store.upsert_clusters([ClusterRow(name=c, ready=True) for c in clusters])
        templates = [
            ResourceRow("", "v1", "Secret", "bench", f"db-{r:04d}", f"u{r}", 1, "1", secret(r))
            for r in range(RESOURCES)
        ]
        ids: list[ResourceId] = await store.upsert_resources(templates)
        works = [ResourceWork(ids[r], c, secret(r), f"h-{r}-{c}") for c in clusters for r in range(RESOURCES)]

        async def upsert() -> None:
            await store.upsert_desired_works(works)

        async def claim_all() -> None:
            for c in clusters:
                await store.claim_due_works(c, holder="bench", limit=RESOURCES, lease_seconds=60)

        out = [
            await timed(f"{label}: new works", upsert, len(works)),
            await timed(f"{label}: same works again (a restart)", upsert, len(works)),
            await timed(f"{label}: claim (and open) every work", claim_all, len(works)),
        ]
        await store.run_in_transaction("reset", lambda c: c.execute("TRUNCATE works, resources CASCADE"))
        return out
    finally:
        await store.close()


async def database(url: str, rows: int) -> list[tuple[str, float, float]]:
    clusters = [f"member-{i:03d}" for i in range(max(1, rows // RESOURCES))]
    sealer = Sealer(keys=KeyRing(keys=(new_key("k1"),), source="bench"))
    return [
        *await one_store(url, "unsealed (no sealer: plaintext)", None, clusters),
        *await one_store(url, "sealed", sealer, clusters),
    ]


async def main_async(rows: int) -> None:
    print("CPU per manifest (µs), one core:")
    for what, micros in cpu(min(rows, 20_000)):
        print(f"  {what:<58} {micros:8.1f}")
    base = Path(tempfile.mkdtemp(prefix="federation-bench-sealing-"))
    server = EmbeddedPostgres(base / "data", durable=False)
    server.start()
    try:
        await migrate.upgrade(server.url)
        print(f"\nStore, {rows} Secret works (rows/s, µs per row):")
        for what, rate, micros in await database(server.url, rows):
            print(f"  {what:<62} {rate:10,.0f} {micros:8.1f}")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main_async(args.rows))


if __name__ == "__main__":
    main()
