"""Placement benchmark: 10,000 resources × 1,000 clusters, decided on one core.

Run: .venv/bin/python bench/placement.py [--resources N] [--clusters N] [--policies N]

Prints, side by side in one process, wall and CPU seconds (this process) for:
- cached (the controller's path): one Placer per fleet snapshot, decisions for every resource,
  first with no previous decision (initial placement), then against a changed snapshot with
  each resource's previous decision (steady state after a cluster event);
- reference (naive): ``decide()`` per resource, which filters by scanning and scores the whole
  fleet every time, timed on a subset and extrapolated — clearly labelled as such;
- worst case: every resource with its own placement spec (nothing to share by spec), measured on
  every resource: the fleet index answers each spec's filters;
- worse still: every spec also excludes a different real cluster, so no two filter alike and
  no selection is shared either; on a subset and extrapolated.
It also prints the fleet index's build time and memory (tracemalloc). The target is the cached
passes and the worst case under 2 s each for 10k × 1k.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from federation.api import Placement, Taint, TaintEffect
from federation.placement import Allocatable, ClusterSnapshot, Decision, Placer, decide
from federation.placement.index import FleetIndex

T = TypeVar("T")

TARGET_SECONDS = 2.0
REGIONS = [f"r{i}" for i in range(10)]


def make_fleet(n: int, *, seed: int) -> list[ClusterSnapshot]:
    rng = random.Random(seed)
    fleet = []
    for i in range(n):
        region = REGIONS[i % len(REGIONS)]
        taints: list[Taint] = []
        roll = rng.random()
        if roll < 0.03:
            taints.append(Taint(key="maintenance", value="true", effect=TaintEffect.NO_SCHEDULE))
        elif roll < 0.04:
            taints.append(Taint(key="broken", value="true", effect=TaintEffect.NO_EXECUTE))
        elif roll < 0.09:
            taints.append(Taint(key="spot", value="true", effect=TaintEffect.PREFER_NO_SCHEDULE))
        fleet.append(
            ClusterSnapshot(
                name=f"c{i:04d}",
                labels={
                    "region": region,
                    "zone": f"{region}-{rng.randrange(3)}",
                    "tier": "prod" if rng.random() < 0.7 else "staging",
                    **({"gpu": "true"} if rng.random() < 0.1 else {}),
                },
                taints=tuple(taints),
                ready=rng.random() >= 0.02,
                allocatable=Allocatable(
                    cpu_millicores=rng.randrange(4_000, 256_000),
                    memory_bytes=rng.randrange(16, 1024) * 2**30,
                    pods=rng.randrange(110, 5000),
                ),
                available_replicas=rng.randrange(0, 500),
            )
        )
    return fleet


def make_policies(n: int, *, seed: int) -> list[tuple[str, Placement]]:
    """A mix of the placements people write, in fixed proportions."""
    rng = random.Random(seed)
    out: list[tuple[str, Placement]] = []
    for i in range(n):
        kind = i % 5
        regions = rng.sample(REGIONS, rng.randrange(1, 5))
        by_region = {
            "clusterSelector": {"matchExpressions": [{"key": "region", "operator": "In", "values": regions}]}
        }
        if kind == 0:
            spec: dict[str, Any] = {**by_region, "replicaScheduling": {"type": "Duplicated"}}
            label = "Duplicated to 1-4 regions"
        elif kind == 1:
            spec = {
                "clusterSelector": {"matchLabels": {"tier": "prod"}},
                "replicaScheduling": {
                    "type": "Divided",
                    "weights": [
                        {"clusterSelector": {"matchLabels": {"region": r}}, "weight": w + 1}
                        for w, r in enumerate(regions)
                    ],
                },
            }
            label = "Divided by region weights (prod)"
        elif kind == 2:
            spec = {
                "maxClusters": rng.randrange(5, 21),
                "spreadConstraints": [{"topologyKey": "region", "minGroups": 2, "maxGroups": 4}],
                "replicaScheduling": {"type": "Divided", "dynamic": "AvailableReplicas"},
            }
            label = "Divided by available replicas, maxClusters 5-20, spread 2-4 regions"
        elif kind == 3:
            spec = {
                "maxClusters": 3,
                "spreadConstraints": [{"topologyKey": "zone", "minGroups": 3}],
                "tolerations": [{"key": "spot", "operator": "Exists"}],
            }
            label = "pick 3 clusters in 3 zones, Duplicated"
        else:
            spec = {
                "tolerations": [{"key": "maintenance", "operator": "Exists", "effect": "NoSchedule"}],
                "clusterSelector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            }
            label = "every GPU cluster, tolerating maintenance"
        out.append((label, Placement.model_validate(spec)))
    return out


def make_resources(n: int, policies: int, *, seed: int) -> list[tuple[int, int | None]]:
    """(policy index, replicas): 40% non-workloads (ConfigMaps, CRs), the rest 1-20 replicas."""
    rng = random.Random(seed)
    return [(i % policies, None if rng.random() < 0.4 else rng.randrange(1, 21)) for i in range(n)]


def changed(fleet: Sequence[ClusterSnapshot]) -> list[ClusterSnapshot]:
    """The fleet after three cluster events: one goes NotReady (kept), one is cordoned with
    NoSchedule (kept), one is failed over with NoExecute (its resources move)."""
    out = list(fleet)
    a, b, c = out[17], out[423], out[640]
    out[17] = ClusterSnapshot(a.name, a.labels, a.taints, False, a.allocatable, a.available_replicas)
    drain = (*b.taints, Taint(key="drain", effect=TaintEffect.NO_SCHEDULE))
    out[423] = ClusterSnapshot(b.name, b.labels, drain, b.ready, b.allocatable, b.available_replicas)
    evict = (*c.taints, Taint(key="failover", effect=TaintEffect.NO_EXECUTE))
    out[640] = ClusterSnapshot(c.name, c.labels, evict, c.ready, c.allocatable, c.available_replicas)
    return out


def _distinct(placement: Placement, i: int, *, exclude: str | None = None) -> Placement:
    """The same placement made unique: an extra excluded cluster no fleet has (nothing shared by
    spec), or ``exclude``, a real one (nothing shared by filter outcome either)."""
    return Placement.model_validate({**placement.to_dict(), "excludeClusters": [exclude or f"x{i}"]})


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float


def timed(run: Callable[[], T]) -> tuple[Timed, T]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return Timed(time.perf_counter() - wall, time.process_time() - cpu), out


def run_cached(
    fleet: Sequence[ClusterSnapshot],
    placements: Sequence[Placement],
    resources: Sequence[tuple[int, int | None]],
    previous: Sequence[Decision | None],
) -> tuple[Timed, list[Decision]]:
    def run() -> list[Decision]:
        placer = Placer(fleet)
        return [
            placer.decide(placement=placements[p], replicas=r, previous=prev)
            for (p, r), prev in zip(resources, previous, strict=True)
        ]

    return timed(run)


def run_naive(
    fleet: Sequence[ClusterSnapshot],
    placements: Sequence[Placement],
    resources: Sequence[tuple[int, int | None]],
) -> Timed:
    def run() -> None:
        for p, r in resources:
            decide(placement=placements[p], clusters=fleet, replicas=r, previous=None)

    return timed(run)[0]


def index_cost(fleet: Sequence[ClusterSnapshot]) -> tuple[float, int]:
    """Seconds to build the fleet index, and the bytes it holds (allocated while building it)."""
    ordered = sorted(fleet, key=lambda c: c.name)
    tracemalloc.start()
    start = time.process_time()
    index = FleetIndex(ordered)
    seconds = time.process_time() - start
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del index
    return seconds, size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--subset", type=int, default=200, help="resources timed on the uncached paths")
    args = parser.parse_args(argv)

    fleet = make_fleet(args.clusters, seed=1)
    policies = make_policies(args.policies, seed=2)
    resources = make_resources(args.resources, args.policies, seed=3)
    n = len(resources)

    print(
        f"placement benchmark — Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs (one used)"
    )
    print(
        f"fleet: {args.clusters} clusters in {len(REGIONS)} regions; "
        "3% NoSchedule, 1% NoExecute, 5% PreferNoSchedule, 2% NotReady"
    )
    print(
        f"resources: {n} over {args.policies} policies (~{n // args.policies} per policy); "
        "40% without replicas, the rest 1-20 replicas"
    )
    for label, count in sorted(Counter(label for label, _ in policies).items()):
        print(f"  {count:3d} policies: {label}")
    print()

    shared = [p for _, p in policies]
    cold, first = run_cached(fleet, shared, resources, [None] * n)
    steady, second = run_cached(changed(fleet), shared, resources, first)
    moved = sum(1 for a, b in zip(first, second, strict=True) if a.targets != b.targets)
    targets = sum(len(d.targets) for d in first)

    # The first resources, which cycle through every policy (a stride of n / subset = 50 would
    # land on policy 0 alone, as it once did: a subset of one kind of placement).
    subset = resources[: args.subset]
    naive = run_naive(fleet, shared, subset)
    own = [(i, r) for i, (_, r) in enumerate(resources)]
    own_specs = [_distinct(shared[p], i) for i, (p, _) in enumerate(resources)]
    worst, _ = run_cached(fleet, own_specs, own, [None] * n)
    apart = [_distinct(shared[p], i, exclude=fleet[i % len(fleet)].name) for i, (p, _) in enumerate(subset)]
    worse, _ = run_cached(fleet, apart, [(i, r) for i, (_, r) in enumerate(subset)], [None] * len(subset))
    index_seconds, index_bytes = index_cost(fleet)

    def row(name: str, t: Timed, note: str, *, scale: float = 1.0) -> str:
        wall, cpu = t.wall * scale, t.cpu * scale
        return f"  {name:<40} {wall:8.3f} s {cpu:8.3f} CPU-s {cpu / n * 1e6:8.1f} CPU-µs/decision   {note}"

    extrapolate = n / len(subset)
    print(
        f"results for {n} resources × {args.clusters} clusters "
        f"({targets} cluster targets in the initial placement):"
    )
    print(row("cached Placer, initial placement", cold, f"measured; {args.policies} specs shared"))
    print(row("cached Placer, after 3 cluster events", steady, f"measured; {moved} resources moved"))
    print(row("worst case: one spec per resource", worst, f"measured; {n} specs, nothing shared by spec"))
    print(
        row(
            "reference: decide() uncached (scan)",
            naive,
            f"extrapolated from {len(subset)} measured",
            scale=extrapolate,
        )
    )
    print(
        row(
            "worse: specs that also filter apart",
            worse,
            f"extrapolated from {len(subset)} measured (no selection shared either)",
            scale=extrapolate,
        )
    )
    print(
        f"  fleet index for {args.clusters} clusters: built in {index_seconds * 1e3:.1f} CPU-ms, "
        f"{index_bytes / 1024:.0f} KiB ({index_bytes / max(args.clusters, 1):.0f} bytes per cluster)"
    )
    passes = {"initial": cold.cpu, "steady": steady.cpu, "worst case": worst.cpu}
    verdict = "MET" if max(passes.values()) < TARGET_SECONDS else "MISSED"
    print()
    print(
        f"target: {n} × {args.clusters} under {TARGET_SECONDS:.0f} CPU-s per pass on one core — {verdict} ("
        + ", ".join(f"{k} {v:.2f} s" for k, v in passes.items())
        + ")"
    )
    print(f"worst case vs uncached reference: {naive.cpu * extrapolate / worst.cpu:.0f}× less CPU")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (a shared machine)")
    return 0 if verdict == "MET" else 1


if __name__ == "__main__":
    sys.exit(main())
