"""Our informer beside client-go's, against the same apiserver and the same data.

    .venv/bin/python bench/informer.py [--sizes 10000,50000] [--duration 20] [--deployments 5000]

For each N (ConfigMaps of ~1 KiB in one namespace), each informer runs in its own process,
one after the other, and reports:
  (a) time from start to has_synced,
  (b) while a writer (Go, 32 concurrent merge patches) updates the objects as fast as the
      apiserver accepts for --duration seconds: events/s delivered to a handler, and the lag
      from write acknowledgement to handler (p50/p99; joined on resourceVersion),
  (c) RSS growth per 10,000 cached objects (after GC).
The reference is client-go v0.36.3's SharedInformer (bench/informer-go), as Go controllers use
it. The apiserver is a local fleet's hub (or --kubeconfig/--context).

With --deployments N (0 to skip), it also reports bytes and CPU per cached object over N
Deployments written as a member holds our copies: our cache whole (as before the transform),
without managedFields (every informer now) and as a propagator caches its copies, beside
client-go whole and with SetTransform (bench/informer_memory.py). --sizes "" skips the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent
TARGETS = {"sync": 1.5, "throughput": 0.7, "memory": 2.0}


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- the Python informer, run as a child process ------------------------------------------


async def python_informer(kubeconfig: str, context: str, namespace: str, expect: int, out: str) -> None:
    from federation.informers import Handlers, Informer, InformerKey
    from federation.kube import GVK, Discovery, KubeClient, Obj

    gc.collect()
    before = rss_bytes()
    client = await KubeClient.connect("bench", kubeconfig=Path(kubeconfig), context=context or None)
    res = await Discovery(client).resource_for(GVK("", "v1", "ConfigMap"))
    informer = Informer(client, InformerKey(res, namespace))
    events: list[tuple[int, int]] = []
    stop = anyio.Event()

    def on_update(_old: Obj, new: Obj) -> None:
        events.append((int(new["metadata"]["resourceVersion"]), time.time_ns()))

    def on_add(obj: Obj) -> None:
        if obj["metadata"]["name"] == "bench-stop":
            stop.set()

    informer.add_handler(Handlers(on_add=on_add, on_update=on_update))
    async with anyio.create_task_group() as tg:
        started = time.perf_counter()
        tg.start_soon(informer.run)
        await informer.wait_for_sync()
        sync = time.perf_counter() - started
        objects = len(informer.store)
        if expect and objects != expect:
            raise SystemExit(f"synced {objects} objects, expected {expect}")
        gc.collect()
        synced = rss_bytes()
        cpu_synced = time.process_time()
        print("synced", flush=True)
        await stop.wait()
        cpu_end = time.process_time()
        tg.cancel_scope.cancel()
    await client.close()
    print(
        f"    python informer: {len(events)} update events, {informer.reflector.lists} lists, "
        f"{informer.reflector.watches_opened} watches opened",
        file=sys.stderr,
    )
    Path(out).write_text(  # noqa: ASYNC240 - once, after the measurement
        json.dumps(
            {
                "syncSeconds": sync,
                "rssBefore": before,
                "rssSynced": synced,
                "objects": objects,
                "events": events,
                "cpuSynced": cpu_synced,
                "cpuEnd": cpu_end,
            }
        )
    )


# -- orchestration ------------------------------------------------------------------------


@dataclass
class Run:
    sync: float
    events_per_s: float
    delivered: int
    writes: int
    write_rate: float
    lag_p50_ms: float
    lag_p99_ms: float
    rss_per_10k_mib: float
    cpu_ms_per_1k_events: float


def run_one(
    impl: str,
    *,
    tool: Path,
    kubeconfig: str,
    context: str,
    namespace: str,
    n: int,
    duration: float,
    tmp: Path,
) -> Run:
    out, acks_out = tmp / f"{impl}-{n}.json", tmp / f"acks-{impl}-{n}.json"
    common = ["--kubeconfig", kubeconfig, "--namespace", namespace]
    if context:
        common += ["--context", context]
    delete_stop_marker(common)  # the previous run's writer left one
    if impl == "client-go":
        cmd = [str(tool), "informer", *common, "--expect", str(n), "--out", str(out)]
    else:
        cmd = [sys.executable, __file__, "--child", "--kubeconfig", kubeconfig, "--context", context,
               "--namespace", namespace, "--expect", str(n), "--out", str(out)]  # fmt: skip
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "synced":
        child.kill()
        raise SystemExit(f"{impl} informer failed before syncing (got {line!r})")
    subprocess.run(
        [
            str(tool),
            "writer",
            *common,
            "--objects",
            str(n),
            "--duration",
            f"{duration}s",
            "--out",
            str(acks_out),
        ],
        check=True,
    )
    if child.wait(timeout=600) != 0:
        raise SystemExit(f"{impl} informer exited with {child.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    acks: dict[str, Any] = json.loads(acks_out.read_text())
    ack_at = {rv: t for rv, t in acks["acks"]}
    seen = [(rv, t) for rv, t in result["events"] if rv in ack_at]
    lags = sorted((t - ack_at[rv]) / 1e6 for rv, t in seen)
    span = (max(t for _, t in seen) - min(t for _, t in seen)) / 1e9 if len(seen) > 1 else float("nan")
    return Run(
        sync=result["syncSeconds"],
        events_per_s=len(seen) / span,
        delivered=len(seen),
        writes=len(ack_at),
        write_rate=len(ack_at) / acks["seconds"],
        lag_p50_ms=statistics.median(lags),
        lag_p99_ms=lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        rss_per_10k_mib=(result["rssSynced"] - result["rssBefore"]) / n * 10_000 / 2**20,
        cpu_ms_per_1k_events=(result["cpuEnd"] - result["cpuSynced"]) * 1000 / max(len(seen), 1) * 1000,
    )


def delete_stop_marker(common: list[str]) -> None:
    """Remove the previous run's stop marker (the writer creates one when it finishes)."""
    from federation.errors import NotFoundError
    from federation.kube import GVK, Discovery, KubeClient

    args = dict(zip(common[::2], common[1::2], strict=True))

    async def delete() -> None:
        client = await KubeClient.connect(
            "bench", kubeconfig=Path(args["--kubeconfig"]), context=args.get("--context") or None
        )
        try:
            res = await Discovery(client).resource_for(GVK("", "v1", "ConfigMap"))
            with contextlib.suppress(NotFoundError):
                await client.delete(res, "bench-stop", args["--namespace"])
        finally:
            await client.close()

    anyio.run(delete)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,50000", help="comma-separated object counts")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds the writer writes")
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting a local hub")
    parser.add_argument("--context", default="")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--deployments", type=int, default=5000, help="Deployments for bytes per object")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        import informer_memory

        anyio.run(
            informer_memory.child, args.kubeconfig, args.context, args.namespace, args.variant, args.trace,
            args.out,
        )  # fmt: skip
        return
    if args.child:
        anyio.run(python_informer, args.kubeconfig, args.context, args.namespace, args.expect, args.out)
        return

    from federation.devfleet import LocalFleet
    from federation.devfleet.build import ensure_go_binary

    tool = ensure_go_binary(ROOT / "informer-go", "informer-bench", progress=lambda m: print(f"  {m}"))
    fleet = None
    kubeconfig, context = args.kubeconfig, args.context
    if not kubeconfig:
        fleet = LocalFleet(members=0, postgres=False)
        fleet.start()
        kubeconfig, context = str(fleet.clusters["hub"].kubeconfig), "hub"
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            rows: list[tuple[int, Run, Run]] = []
            if args.deployments:
                memory(tool, kubeconfig, context, args.deployments, tmp)
            for n in (int(x) for x in args.sizes.split(",") if x):
                ns = f"bench-{n}-{int(time.time())}"
                print(f"seeding {n} ConfigMaps of ~1 KiB into {ns} …", flush=True)
                t = time.perf_counter()
                common = ["--kubeconfig", kubeconfig, "--namespace", ns] + (
                    ["--context", context] if context else []
                )
                subprocess.run(
                    [str(tool), "seed", *common, "--objects", str(n), "--concurrency", "64"], check=True
                )
                print(f"  seeded in {time.perf_counter() - t:.1f}s", flush=True)
                runs = {}
                for impl in ("client-go", "python"):
                    print(f"  {impl} informer …", flush=True)
                    runs[impl] = run_one(
                        impl, tool=tool, kubeconfig=kubeconfig, context=context, namespace=ns, n=n,
                        duration=args.duration, tmp=tmp,
                    )  # fmt: skip
                rows.append((n, runs["client-go"], runs["python"]))
            if rows:
                report(rows)
    finally:
        if fleet is not None:
            fleet.stop()


def memory(tool: Path, kubeconfig: str, context: str, n: int, tmp: Path) -> None:
    import informer_memory

    ns = f"bench-deploy-{n}-{int(time.time())}"
    print(f"seeding {n} Deployments (server-side apply + a status by another manager) into {ns} …")
    t = time.perf_counter()
    anyio.run(informer_memory.seed, kubeconfig, context, ns, n)
    print(f"  seeded in {time.perf_counter() - t:.1f}s", flush=True)
    informer_memory.report(n, informer_memory.measure(tool, kubeconfig, context, ns, n, tmp))


def report(rows: list[tuple[int, Run, Run]]) -> None:
    print()
    print(f"{'N':>7} {'measure':<26} {'client-go':>12} {'federation':>12} {'ratio':>8}  target")
    for n, go, py in rows:
        lines = [
            ("sync time (s)", go.sync, py.sync, py.sync / go.sync, f"<= {TARGETS['sync']}x"),
            ("events/s to handler", go.events_per_s, py.events_per_s, py.events_per_s / go.events_per_s,
             f">= {TARGETS['throughput']}x"),
            ("lag p50 (ms)", go.lag_p50_ms, py.lag_p50_ms, float("nan"), ""),
            ("lag p99 (ms)", go.lag_p99_ms, py.lag_p99_ms, float("nan"), ""),
            ("RSS per 10k objects (MiB)", go.rss_per_10k_mib, py.rss_per_10k_mib,
             py.rss_per_10k_mib / go.rss_per_10k_mib, f"<= {TARGETS['memory']}x"),
            ("CPU ms per 1000 events", go.cpu_ms_per_1k_events, py.cpu_ms_per_1k_events,
             py.cpu_ms_per_1k_events / go.cpu_ms_per_1k_events, "(cost of keeping up)"),
            ("writer: writes (per s)", go.write_rate, py.write_rate, float("nan"), "same writer"),
            ("delivered / written", go.delivered / max(go.writes, 1), py.delivered / max(py.writes, 1),
             float("nan"), "1.0 = no event lost"),
        ]  # fmt: skip
        for name, a, b, ratio, target in lines:
            r = "" if ratio != ratio else f"{ratio:7.2f}x"
            print(f"{n:>7} {name:<26} {a:>12.2f} {b:>12.2f} {r:>8}  {target}")


if __name__ == "__main__":
    main()
