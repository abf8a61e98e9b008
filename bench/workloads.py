"""Members that run workloads, measured beside bare members (the reference) in one invocation.

    .venv/bin/python bench/workloads.py [--rounds 3] [--nodes 3] [--idle 30]

Prints:
  - warm start of hub + 3 members, bare apiservers vs members with a controller-manager, a
    scheduler and kwok (`--nodes` simulated nodes each), every round and the spread;
  - RSS of each process of one workload member (apiserver, controller-manager, scheduler, kwok)
    beside a bare member's apiserver;
  - CPU at idle over `--idle` seconds, per process kind, both fleets;
  - hub apply → aggregated Ready (6/6, Available=True) for a Deployment Divided over the 3
    workload members, with the controller running: each round, and the spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.devfleet import rss_mib  # noqa: E402
from bench.propagation import connect, tree_cpu  # noqa: E402
from federation.clusters.crds import install_crds  # noqa: E402
from federation.devfleet import LocalFleet  # noqa: E402
from federation.devfleet.members import join_members  # noqa: E402
from federation.kube import GVK, Discovery  # noqa: E402
from tests.controllerhelpers import ControllerProcess  # noqa: E402
from tests.storehelpers import create_database  # noqa: E402

MEMBERS = ["member-1", "member-2", "member-3"]


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):.1f}s (min {min(values):.1f}, max {max(values):.1f}; runs: "
        + (", ".join(f"{v:.1f}" for v in values) + ")")
    )


def processes(fleet: LocalFleet) -> dict[str, int]:
    """pid of every control-plane process: 'apiserver NAME' and 'KIND NAME' for components."""
    status: dict[str, Any] = fleet.backend.status()  # type: ignore[attr-defined]
    out = {}
    for name, c in status["clusters"].items():
        if c.get("pid"):
            out[f"apiserver {name}"] = int(c["pid"])
        for kind, comp in (c.get("components") or {}).items():
            if comp.get("pid"):
                out[f"{kind} {name}"] = int(comp["pid"])
    return out


def idle_cpu(fleet: LocalFleet, seconds: float) -> dict[str, float]:
    """CPU seconds of each process kind (summed over clusters) over `seconds` of idling."""
    pids = processes(fleet)
    before = {k: tree_cpu(p) for k, p in pids.items()}
    time.sleep(seconds)  # the measurement window itself: the fleet idles, we read its CPU after
    kinds: dict[str, float] = {}
    for k, p in pids.items():
        kind = k.split()[0] if not k.endswith(" hub") else "apiserver (hub)"
        kinds[kind] = kinds.get(kind, 0.0) + tree_cpu(p) - before[k]
    return kinds


def start(workloads: bool, nodes: int) -> tuple[LocalFleet, float]:
    fleet = LocalFleet(members=3, workloads=workloads, nodes_per_member=nodes)
    t = time.monotonic()
    fleet.start()
    return fleet, time.monotonic() - t


async def time_to_ready(fleet: LocalFleet, rounds: int) -> list[float]:
    hub = await connect(fleet, "hub")
    await install_crds(hub)
    await join_members(hub, {m: fleet.clusters[m] for m in MEMBERS}, labels={})
    url = await create_database(fleet.database_url, "bench_workloads")
    log = Path("/tmp") / f"bench-workloads-{time.time():.0f}.log"
    proc = ControllerProcess(fleet, database_url=url, hub_id="bench-hub", log_path=log)
    await anyio.to_thread.run_sync(proc.start)
    times = []
    try:
        disco = Discovery(hub)
        deploy = await disco.resource_for(GVK("apps", "v1", "Deployment"))
        ns_res = await disco.resource_for(GVK("", "v1", "Namespace"))
        pol = await disco.resource_for(GVK("federation.io", "v1alpha1", "PropagationPolicy"))
        await hub.apply(ns_res, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
                        field_manager="bench")  # fmt: skip
        await hub.apply(
            pol,
            {
                "apiVersion": "federation.io/v1alpha1",
                "kind": "PropagationPolicy",
                "metadata": {"name": "divided", "namespace": "bench"},
                "spec": {
                    "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                    "placement": {"replicaScheduling": {"type": "Divided"}},
                },
            },
            field_manager="bench",
        )
        for i in range(rounds):
            name = f"web-{i}"
            obj = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {
                    "replicas": 6,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
                    },
                },
            }
            t = time.monotonic()
            await hub.apply(deploy, obj, field_manager="bench")
            with anyio.fail_after(180):
                while True:
                    status = (await hub.get(deploy, name, "bench")).get("status") or {}
                    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
                    if status.get("readyReplicas") == 6 and conds.get("Available") == "True":
                        break
                    await anyio.sleep(0.05)  # a benchmark's poll of the hub object, under a deadline
            times.append(time.monotonic() - t)
    finally:
        await anyio.to_thread.run_sync(proc.stop)
        await hub.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()

    bare_starts, work_starts = [], []
    for _ in range(args.rounds):  # alternated, so a slow spell of the machine hits both
        fleet, t = start(False, args.nodes)
        bare_starts.append(t)
        fleet.stop()
        fleet, t = start(True, args.nodes)
        work_starts.append(t)
        fleet.stop()
    print("warm start, hub + 3 members:")
    print(f"  bare apiservers (reference)           {spread(bare_starts)}")
    print(f"  workload members ({args.nodes} nodes each)     {spread(work_starts)}")

    fleet, _ = start(False, args.nodes)
    try:
        time.sleep(5)  # let the start's own work settle before reading RSS and idle CPU
        bare_rss = rss_mib(processes(fleet)["apiserver member-1"])
        bare_idle = idle_cpu(fleet, args.idle)
    finally:
        fleet.stop()

    fleet, _ = start(True, args.nodes)
    try:
        time.sleep(5)
        pids = processes(fleet)
        print("\nRSS of one member (MiB):")
        print(f"  bare member: apiserver                 {bare_rss:.0f}")
        total = 0.0
        for kind in ("apiserver", "controller-manager", "scheduler", "kwok"):
            rss = rss_mib(pids[f"{kind} member-1"])
            total += rss
            print(f"  workload member: {kind:<20}  {rss:.0f}")
        print(f"  workload member: total                 {total:.0f}")
        work_idle = idle_cpu(fleet, args.idle)
        print(f"\nCPU at idle over {args.idle:.0f}s (CPU-seconds, summed over clusters):")
        for kind in sorted(set(bare_idle) | set(work_idle)):
            print(
                f"  {kind:<22} bare {bare_idle.get(kind, 0.0):6.2f}"
                f"   workloads {work_idle.get(kind, 0.0):6.2f}"
            )
        print(
            f"  {'total':<22} bare {sum(bare_idle.values()):6.2f}   workloads {sum(work_idle.values()):6.2f}"
            f"  ({100 * sum(work_idle.values()) / args.idle:.0f}% of one core)"
        )
        times = anyio.run(time_to_ready, fleet, args.rounds)
        print(
            "\nhub apply → aggregated Ready (6/6 Available) of a Deployment Divided over 3 workload members:"
        )
        print(f"  {spread(times)}")
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
