"""Bytes and CPU per cached member object: our informer's cache whole, without managedFields,
and as a propagator keeps its copies (`federation.propagate.cache.member_copy`), beside
client-go's informer whole and with managedFields stripped by `SetTransform`.

Used by bench/informer.py (`--deployments N`). The objects are Deployments as a member holds
our copies: written by server-side apply (field manager `federation`, as the propagator
writes), with a status written by another manager (as the member's deployment controller
does), so their managedFields have the two entries a real copy has.
"""

from __future__ import annotations

import gc
import hashlib
import json
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

#: What each Python variant caches: name → transform (import path resolved in the child).
VARIANTS = {
    "whole (before)": "federation.informers.transform:keep_all",
    "managedFields stripped": "federation.informers.transform:strip_managed_fields",
    "member copy": "federation.propagate.cache:member_copy",
}


def deployment(i: int, namespace: str) -> dict[str, Any]:
    """A Deployment of realistic size: two containers with env, probes, resources, mounts."""
    name = f"web-{i:05d}"
    labels = {"app": name, "team": "storefront", "tier": "frontend"}

    def container(cname: str, image: str, port: int) -> dict[str, Any]:
        return {
            "name": cname,
            "image": image,
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [{"name": f"SETTING_{k}", "value": f"value-{k}-{i}"} for k in range(5)],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/live", "port": port}, "initialDelaySeconds": 10},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
        }

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, "federation.io/hub": "bench-hub", "federation.io/managed-by": "federation"},
            "annotations": {
                "federation.io/hash": hashlib.sha256(name.encode()).hexdigest(),
                "federation.io/policy": f"{namespace}/storefront",
            },
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {
                    "containers": [
                        container("app", f"registry.example.com/storefront/web:1.{i % 7}.0", 8080),
                        container("proxy", "registry.example.com/infra/envoy:1.31.2", 9901),
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
                },
            },
        },
    }


def status(generation: int) -> dict[str, Any]:
    when = "2026-11-27T10:00:00Z"
    return {
        "observedGeneration": generation,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": when,
             "lastTransitionTime": when},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": when,
             "lastTransitionTime": when},
        ],
    }  # fmt: skip


async def seed(kubeconfig: str, context: str, namespace: str, n: int, *, concurrency: int = 48) -> None:
    """Apply `n` Deployments as the propagator does, then write each one's status as another
    manager (the member's deployment controller)."""
    from federation.kube import GVK, Discovery, KubeClient

    client = await KubeClient.connect("bench", kubeconfig=Path(kubeconfig), context=context or None)
    try:
        namespaces = await Discovery(client).resource_for(GVK("", "v1", "Namespace"))
        await client.create(
            namespaces, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        res = await Discovery(client).resource_for(GVK("apps", "v1", "Deployment"))
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(i: int) -> None:
            async with limiter:
                applied = await client.apply(
                    res, deployment(i, namespace), field_manager="federation", force=True
                )
                await client.patch(
                    res,
                    applied["metadata"]["name"],
                    {"status": status(int(applied["metadata"]["generation"]))},
                    namespace=namespace,
                    subresource="status",
                    field_manager="kube-controller-manager",
                )

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
    finally:
        await client.close()


# -- the child: one informer, one variant, measured ----------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def child(kubeconfig: str, context: str, namespace: str, variant: str, trace: bool, out: str) -> None:
    import importlib

    from federation.informers import Informer, InformerKey
    from federation.kube import GVK, Discovery, KubeClient

    module, _, attr = VARIANTS[variant].partition(":")
    transform = getattr(importlib.import_module(module), attr)
    client = await KubeClient.connect("bench", kubeconfig=Path(kubeconfig), context=context or None)
    res = await Discovery(client).resource_for(GVK("apps", "v1", "Deployment"))
    informer = Informer(client, InformerKey(res, namespace), transform=transform)
    gc.collect()
    if trace:
        tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0] if trace else 0
    rss_before = rss_bytes()
    cpu_before = time.process_time()
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        await informer.wait_for_sync()
        sync = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        tg.cancel_scope.cancel()
    gc.collect()
    result = {
        "variant": variant,
        "objects": len(informer.store),
        "syncSeconds": sync,
        "cpuSeconds": cpu,
        "rssDelta": rss_bytes() - rss_before,
        "traced": (tracemalloc.get_traced_memory()[0] - traced_before) if trace else None,
        "estimated": informer.store.estimated_bytes(),
        "jsonBytes": sum(len(json.dumps(o, separators=(",", ":"))) for o in informer.store.objects()),
    }
    await client.close()
    Path(out).write_text(json.dumps(result))  # noqa: ASYNC240 - once, after the measurement


# -- orchestration -------------------------------------------------------------------------


@dataclass
class MemoryRow:
    impl: str
    bytes_per_object: float  # tracemalloc (Python) or live heap (Go), after GC
    rss_per_object: float
    cpu_us_per_object: float  # list + decode + transform + store, process CPU
    sync_seconds: float
    json_bytes: float = float("nan")  # the cached object as compact JSON (Python variants)
    estimated: float = float("nan")  # our gauge's estimate


def measure(tool: Path, kubeconfig: str, context: str, namespace: str, n: int, tmp: Path) -> list[MemoryRow]:
    rows: list[MemoryRow] = []
    for strip in (False, True):
        out = tmp / f"go-memory-{strip}.json"
        cmd = [str(tool), "memory", "--kubeconfig", kubeconfig, "--namespace", namespace,
               "--expect", str(n), "--out", str(out)]  # fmt: skip
        if context:
            cmd += ["--context", context]
        if strip:
            cmd.append("--strip-managed-fields")
        subprocess.run(cmd, check=True)
        r = json.loads(out.read_text())
        rows.append(
            MemoryRow(
                impl="client-go" + (" SetTransform strip" if strip else " whole"),
                bytes_per_object=(r["heapSynced"] - r["heapBefore"]) / n,
                rss_per_object=(r["rssSynced"] - r["rssBefore"]) / n,
                cpu_us_per_object=(r["cpuSynced"] - r["cpuBefore"]) / n * 1e6,
                sync_seconds=r["syncSeconds"],
            )
        )
    for variant in VARIANTS:
        measured: dict[bool, dict[str, Any]] = {}
        for trace in (False, True):  # tracemalloc slows the list: CPU and RSS from a run without
            out = tmp / f"py-memory-{trace}.json"
            subprocess.run(
                [sys.executable, str(Path(__file__).resolve().parent / "informer.py"), "--memory-child",
                 "--kubeconfig", kubeconfig, "--context", context, "--namespace", namespace,
                 "--variant", variant, "--out", str(out)] + (["--trace"] if trace else []),
                check=True,
            )  # fmt: skip
            measured[trace] = json.loads(out.read_text())
            if measured[trace]["objects"] != n:
                raise SystemExit(f"{variant}: cached {measured[trace]['objects']} objects, expected {n}")
        plain, traced = measured[False], measured[True]
        rows.append(
            MemoryRow(
                impl=f"federation {variant}",
                bytes_per_object=traced["traced"] / n,
                rss_per_object=plain["rssDelta"] / n,
                cpu_us_per_object=plain["cpuSeconds"] / n * 1e6,
                sync_seconds=plain["syncSeconds"],
                json_bytes=plain["jsonBytes"] / n,
                estimated=plain["estimated"] / n,
            )
        )
    return rows


def report(n: int, rows: list[MemoryRow]) -> None:
    print()
    print(f"bytes per cached Deployment ({n} objects, SSA-written: 2 managedFields entries)")
    print(f"{'informer':<38} {'bytes/obj':>10} {'RSS/obj':>9} {'CPU µs/obj':>11} {'sync s':>7} "
          f"{'JSON B/obj':>10} {'gauge B/obj':>11}")  # fmt: skip
    for r in rows:
        print(f"{r.impl:<38} {r.bytes_per_object:>10.0f} {r.rss_per_object:>9.0f} "
              f"{r.cpu_us_per_object:>11.0f} {r.sync_seconds:>7.2f} {r.json_bytes:>10.0f} "
              f"{r.estimated:>11.0f}")  # fmt: skip
    print("bytes/obj: tracemalloc (Python) or Go live heap after GC; RSS/obj: RSS growth over the list;")
    print("CPU: process CPU-seconds from start to synced (list, decode, transform, store) per object.")
