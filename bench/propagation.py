"""Propagation at scale: hub + 5 members, 1,000 Deployments Duplicated → 5,000 member objects.

    .venv/bin/python bench/propagation.py [--deployments 1000] [--members 5]

Prints, for the controller (`federation run`, its own process):
  - time from the first hub write to the last member copy applied, and objects/s;
  - hub write → member applied latency, p50/p99: during the bulk rollout (saturated); for
    single updates made *during* the bulk (one every 0.5 s, of templates already placed); for
    single updates spaced out after it (not saturated); and for single updates made right
    after a restart, while the controller re-reconciles every template (the priority queue
    ranks that initial list below them);
  - CPU milliseconds per member object of each process, beside the limit's (on 2 cores the CPU
    ratio is the throughput ratio);
  - member status write → hub aggregated status, p50/p99;
  - the controller's RSS and CPU seconds;
  - member writes after a restart with nothing changed (must be 0);
and, in the same run, the LIMIT: the same 5,000 objects written by a plain concurrent
server-side-apply loop straight to the members (no hub, no database, no placement).
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from federation.clusters.crds import install_crds  # noqa: E402
from federation.devfleet import LocalFleet  # noqa: E402
from federation.devfleet.members import join_members  # noqa: E402
from federation.informers import Handlers, Informer, InformerKey  # noqa: E402
from federation.kube import GVK, Discovery, KubeClient, Obj  # noqa: E402
from tests.controllerhelpers import ControllerProcess  # noqa: E402
from tests.storehelpers import create_database  # noqa: E402

DEPLOYMENT = GVK("apps", "v1", "Deployment")
CONCURRENCY = 64
#: The first template the single updates during the bulk change (the later phases change
#: others: 0–49 after the bulk, the last 100 for status).
PROBE_FIRST = 100


def deployment(i: int, namespace: str, *, tag: str = "1") -> dict[str, Any]:
    name = f"app-{i:05d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, "bench": "yes"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"tag": tag}},
                "spec": {"containers": [{"name": "app", "image": f"registry.example.com/app:{tag}"}]},
            },
        },
    }


def polled(proc: ControllerProcess, metric: str, failed: float = float("inf"), **labels: str) -> float:
    """A metric of the controller; `failed` when its endpoint does not answer in time (a loaded
    machine: a wait goes on, a figure reads nan, rather than the run ending)."""
    try:
        return proc.metric(metric, **labels)
    except (OSError, TimeoutError):
        return failed


def loop_lag(proc: ControllerProcess) -> tuple[float, float, float]:
    """The controller's event-loop lag histogram so far: (sum, count, wakes later than 0.1 s)."""
    name = "federation_event_loop_lag_seconds"
    count = polled(proc, f"{name}_count", math.nan)
    on_time = polled(proc, f"{name}_bucket", math.nan, le="0.1")
    return polled(proc, f"{name}_sum", math.nan), count, count - on_time


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


async def connect(fleet: LocalFleet, name: str) -> KubeClient:
    info = fleet.clusters[name]
    return await KubeClient.connect(name, kubeconfig=info.kubeconfig, context=info.context, timeout=60)


async def ensure_namespace(client: KubeClient, ns: str) -> None:
    res = await Discovery(client).resource_for(GVK("", "v1", "Namespace"))
    await client.apply(
        res, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, field_manager="bench"
    )


async def limit_run(fleet: LocalFleet, members: list[str], n: int) -> float:
    """The same N × members objects, applied straight to the members: the practical limit."""
    ns = "bench-limit"
    clients = {m: await connect(fleet, m) for m in members}
    try:
        for c in clients.values():
            await ensure_namespace(c, ns)
        res = await Discovery(clients[members[0]]).resource_for(DEPLOYMENT)
        limiter = anyio.CapacityLimiter(CONCURRENCY)

        async def one(m: str, i: int) -> None:
            async with limiter:
                await clients[m].apply(res, deployment(i, ns), field_manager="bench", force=True)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                for m in members:
                    tg.start_soon(one, m, i)
        return time.perf_counter() - started
    finally:
        for c in clients.values():
            await c.close()


class Seen:
    """When each member copy of each deployment was first seen at each tag (member informers)."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str, str], float] = {}

    def handler(self, cluster: str) -> Handlers:
        def seen(obj: Obj) -> None:
            tag = (obj["spec"]["template"]["metadata"].get("annotations") or {}).get("tag", "")
            self.first.setdefault((cluster, obj["metadata"]["name"], tag), time.time())

        return Handlers(on_add=seen, on_update=lambda _o, n: seen(n))

    def count(self, tag: str) -> int:
        return sum(1 for (_c, _n, t) in self.first if t == tag)


async def wait_settled(proc: ControllerProcess) -> None:
    """Until the controller has finished what a bulk rollout left (template reconciles, hub
    status writes): single updates are then measured unsaturated."""
    with anyio.fail_after(300):
        while any(
            polled(proc, "workqueue_depth", name=q)
            + polled(proc, "workqueue_unfinished_work_seconds", name=q)
            for q in ("hub-status", "hub-resources")
        ):
            await anyio.sleep(0.2)


async def single_updates(
    hub: KubeClient, res: Any, seen: Seen, members: Iterable[str], namespace: str, *, count: int
) -> list[float]:
    """Hub write → first seen on every member, one Deployment at a time, 200 ms apart."""
    members = list(members)
    latencies: list[float] = []
    for i in range(count):
        obj = deployment(i, namespace, tag="2")
        t = time.time()
        await hub.apply(res, obj, field_manager="bench")
        name = obj["metadata"]["name"]
        with anyio.fail_after(60):
            while not all((m, name, "2") in seen.first for m in members):
                await anyio.sleep(0.005)
        latencies.extend(seen.first[(m, name, "2")] - t for m in members)
        await anyio.sleep(0.2)
    return latencies


async def controller_run(
    fleet: LocalFleet, members: list[str], n: int, proc: ControllerProcess
) -> dict[str, Any]:
    ns = "bench-fed"
    hub = await connect(fleet, "hub")
    clients = {m: await connect(fleet, m) for m in members}
    seen = Seen()
    results: dict[str, Any] = {}
    try:
        await ensure_namespace(hub, ns)
        hub_res = await Discovery(hub).resource_for(DEPLOYMENT)
        async with anyio.create_task_group() as tg:
            # The policy first, then 1,000 templates as fast as the hub takes them.
            pol = await Discovery(hub).resource_for(GVK("federation.io", "v1alpha1", "PropagationPolicy"))
            await hub.apply(
                pol,
                {
                    "apiVersion": "federation.io/v1alpha1",
                    "kind": "PropagationPolicy",
                    "metadata": {"name": "bench", "namespace": ns},
                    "spec": {
                        "resourceSelectors": [
                            {
                                "apiVersion": "apps/v1",
                                "kind": "Deployment",
                                "labelSelector": {"matchLabels": {"bench": "yes"}},
                            }
                        ],
                        "placement": {"clusterNames": members},
                    },
                },
                field_manager="bench",
            )
            written: dict[str, float] = {}
            limiter = anyio.CapacityLimiter(CONCURRENCY)

            async def create(i: int) -> None:
                async with limiter:
                    obj = deployment(i, ns)
                    await hub.apply(hub_res, obj, field_manager="bench")
                    written[obj["metadata"]["name"]] = time.time()
                    if len(written) == n:  # the bulk's own writes are done (probes aside)
                        phases["templates_written"] = time.time()

            total = n * len(members)
            phases: dict[str, float] = {}

            async def watch_db() -> None:
                """When the hub side had written every work, and when all were applied (Postgres)."""
                conn = await asyncpg.connect(proc.database_url)
                try:
                    while True:
                        row = await conn.fetchrow(
                            "SELECT count(*) AS n, count(*) FILTER (WHERE state = 'applied') AS applied"
                            " FROM works"
                        )
                        assert row is not None
                        if row["n"] >= total:
                            phases.setdefault("works_created", time.time())
                        if row["applied"] >= total:
                            phases.setdefault("works_applied", time.time())
                            return
                        await anyio.sleep(0.1)
                finally:
                    await conn.close()

            probes: dict[str, float] = {}

            async def probe_during_bulk() -> None:
                """One single update every 0.5 s while the bulk runs, of templates the controller
                has placed already (their works exist): an edit of a running workload during
                someone else's rollout. (A template changed before the controller first listed
                its kind is, to the controller, one more template of that list.)"""
                conn = await asyncpg.connect(proc.database_url)
                try:
                    for i in range(PROBE_FIRST, min(n, PROBE_FIRST + 60)):
                        name = f"app-{i:05d}"
                        while not await conn.fetchval(
                            "SELECT count(*) FROM works w JOIN resources r ON r.id = w.resource_id"
                            " WHERE r.name = $1",
                            name,
                        ):
                            if "works_applied" in phases:
                                return
                            await anyio.sleep(0.05)  # a benchmark's poll of the database
                        if "works_applied" in phases:
                            return
                        obj = deployment(i, ns, tag="probe")
                        t = time.time()
                        await hub.apply(hub_res, obj, field_manager="bench")
                        probes[name] = t
                        await anyio.sleep(0.5)
                finally:
                    await conn.close()

            tg.start_soon(watch_db)
            lag_start = loop_lag(proc)
            t0 = time.time()
            async with anyio.create_task_group() as writers:
                writers.start_soon(probe_during_bulk)
                for i in range(n):
                    writers.start_soon(create, i)
            phases["hub_written"] = time.time()
            with anyio.fail_after(1800):
                while "works_applied" not in phases:
                    await anyio.sleep(0.05)  # a benchmark's progress poll, not a test
            # Completion and latency of the bulk come from Postgres (each work's applied_at, set
            # when its apply's result is recorded: a little after the member write, so against
            # us), not from watches on the members: those would cost the shared cores in this run
            # only (the limit run has no observer either).
            results["loop_lag"] = [b - a for a, b in zip(lag_start, loop_lag(proc), strict=True)]
            results["cpu_bulk_end"] = fleet_cpu(fleet)
            assert proc.proc is not None
            results["controller_cpu_bulk_end"] = proc_usage(proc.proc.pid)[1]
            applied = await applied_times(proc.database_url)
            done = max(applied.values())
            results["phases"] = {k: v - t0 for k, v in phases.items()}
            results["bulk_seconds"] = done - t0
            results["bulk_rate"] = total / (done - t0)
            lat = [at - written[name] for (name, _cluster), at in applied.items() if name not in probes]
            results["bulk_p50"], results["bulk_p99"] = pct(lat, 0.5), pct(lat, 0.99)
            hub_side: list[float] = []
            slowest: list[tuple[float, float, str]] = []
            during = await probe_latencies(
                proc.database_url, probes, "probe", len(members), hub_side=hub_side, slowest=slowest
            )
            results["during_slowest"] = [
                f"{name} {total:.2f} s (hub side {hub:.2f} s, written at {probes[name] - t0:.1f} s)"
                for total, hub, name in slowest
            ]
            results["during_p50"], results["during_p99"] = pct(during, 0.5), pct(during, 0.99)
            results["during_hub_p50"], results["during_hub_p99"] = pct(hub_side, 0.5), pct(hub_side, 0.99)
            results["during_n"] = len(probes)

            # From here on, the bench watches the members and the hub (outside the timed bulk).
            informers = []
            for m, c in clients.items():
                res = await Discovery(c).resource_for(DEPLOYMENT)
                inf = Informer(c, InformerKey(res, ns))
                inf.add_handler(seen.handler(m))
                informers.append(inf)
                tg.start_soon(inf.run)
            hub_inf = Informer(hub, InformerKey(hub_res, ns))
            status_seen: dict[str, float] = {}

            def hub_update(_old: Obj, new: Obj) -> None:
                if (new.get("status") or {}).get("readyReplicas") == 2 * len(members):
                    status_seen.setdefault(new["metadata"]["name"], time.time())

            hub_inf.add_handler(Handlers(on_update=hub_update))
            tg.start_soon(hub_inf.run)
            for inf in [*informers, hub_inf]:
                await inf.wait_for_sync()

            # Not saturated: first let the controller finish what the bulk rollout left (status
            # writes of 1,000 Deployments), then change one template every 200 ms.
            await wait_settled(proc)
            results["status_writes_settled"] = polled(proc, "federation_hub_status_writes_total", math.nan)
            single = await single_updates(hub, hub_res, seen, members, ns, count=50)
            results["single_p50"], results["single_p99"] = pct(single, 0.5), pct(single, 0.99)
            results["single_slowest"] = sorted(single)[-6:]

            # Status up: play the members' deployment controllers for 100 deployments.
            status_written: dict[str, float] = {}
            for i in range(n - min(100, n // 2), n):
                name = f"app-{i:05d}"
                for c in clients.values():
                    res = await Discovery(c).resource_for(DEPLOYMENT)
                    live = await c.get(res, name, ns)
                    live["status"] = {
                        "observedGeneration": live["metadata"]["generation"],
                        "replicas": 2,
                        "updatedReplicas": 2,
                        "readyReplicas": 2,
                        "availableReplicas": 2,
                    }
                    await c.replace(res, live, subresource="status")
                status_written[name] = time.time()
            with anyio.fail_after(120):
                while not all(k in status_seen for k in status_written):
                    await anyio.sleep(0.05)
            slat = [status_seen[k] - status_written[k] for k in status_written]
            results["status_p50"], results["status_p99"] = pct(slat, 0.5), pct(slat, 0.99)
            tg.cancel_scope.cancel()
    finally:
        await hub.close()
        for c in clients.values():
            await c.close()
    return results


async def probe_latencies(
    database_url: str,
    probes: dict[str, float],
    tag: str,
    copies: int,
    *,
    hub_side: list[float] | None = None,
    slowest: list[tuple[float, float, str]] | None = None,
) -> list[float]:
    """Hub write → member applied of each copy of the probed templates at `tag`, from Postgres
    (each work's applied_at once its applied hash is the desired one at that tag). `hub_side`,
    when given, gets hub write → the template's row rewritten (the hub side's share)."""
    if not probes:
        return []
    conn = await asyncpg.connect(database_url)
    try:
        with anyio.fail_after(300):
            while True:
                rows = await conn.fetch(
                    "SELECT r.name, extract(epoch FROM w.applied_at)::float8 AS at,"
                    " extract(epoch FROM r.updated_at)::float8 AS registered"
                    " FROM works w JOIN resources r ON r.id = w.resource_id"
                    " WHERE r.name = ANY($1::text[]) AND w.state = 'applied'"
                    " AND w.applied_hash = w.desired_hash"
                    " AND w.desired->'spec'->'template'->'metadata'->'annotations'->>'tag' = $2",
                    list(probes),
                    tag,
                )
                if len(rows) >= len(probes) * copies:
                    if hub_side is not None:
                        hub_side.extend(float(r["registered"]) - probes[r["name"]] for r in rows)
                    if slowest is not None:
                        worst = {}
                        for r in rows:
                            t = probes[r["name"]]
                            worst[r["name"]] = max(
                                worst.get(r["name"], (0.0, 0.0, "")),
                                (float(r["at"]) - t, float(r["registered"]) - t, r["name"]),
                            )
                        slowest.extend(sorted(worst.values())[-3:])
                    return [float(r["at"]) - probes[r["name"]] for r in rows]
                await anyio.sleep(0.2)  # a benchmark's progress poll, not a test
    finally:
        await conn.close()


async def restart_probe(fleet: LocalFleet, proc: ControllerProcess, n: int, copies: int) -> dict[str, Any]:
    """Single updates right after a restart, while the controller re-reconciles every template
    (its initial list, queued low): hub write → member applied, and how deep the queue was."""
    ns = "bench-fed"
    hub = await connect(fleet, "hub")
    try:
        hub_res = await Discovery(hub).resource_for(DEPLOYMENT)
        await anyio.to_thread.run_sync(proc.start)
        # Ready is not listed yet: wait for the relist to be queued (a change made before it is
        # part of the initial list itself), then change templates while it is worked off.
        with anyio.move_on_after(60):
            while polled(proc, "workqueue_depth", -1.0, name="hub-resources") < min(100, n // 2):
                await anyio.sleep(0.02)  # a benchmark's progress poll, not a test
        probes: dict[str, float] = {}
        depths = []
        for i in range(PROBE_FIRST + 100, min(n, PROBE_FIRST + 110)):
            depths.append(polled(proc, "workqueue_depth", float("nan"), name="hub-resources"))
            obj = deployment(i, ns, tag="restart")
            t = time.time()
            await hub.apply(hub_res, obj, field_manager="bench")
            probes[obj["metadata"]["name"]] = t
            await anyio.sleep(0.1)
        lat = await probe_latencies(proc.database_url, probes, "restart", copies)
    finally:
        await hub.close()
    return {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "depths": depths}


async def applied_times(database_url: str) -> dict[tuple[str, str], float]:
    """(template name, cluster) → when its work was recorded applied (epoch seconds)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT r.name, w.cluster, extract(epoch FROM w.applied_at)::float8 AS at"
            " FROM works w JOIN resources r ON r.id = w.resource_id WHERE w.state = 'applied'"
        )
    finally:
        await conn.close()
    return {(r["name"], r["cluster"]): float(r["at"]) for r in rows}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (Postgres forks a backend per connection)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / 100.0
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_cpu(int(child))
    except (OSError, ValueError):
        pass
    return total


def fleet_cpu(fleet: LocalFleet) -> dict[str, float]:
    """CPU seconds so far of each part of the fleet, and of this bench process (it writes the
    templates, and watches the members outside the timed bulk)."""
    out = {}
    for name in fleet.clusters:
        pid = fleet.cluster_pid(name)
        out[f"apiserver {name}"] = tree_cpu(pid) if pid else 0.0
    supervisor = fleet.backend.pid  # type: ignore[attr-defined]
    out["etcd (+supervisor)"] = tree_cpu(supervisor) - sum(out.values()) if supervisor else 0.0
    if fleet.postgres is not None and fleet.postgres.pid is not None:
        out["postgres"] = tree_cpu(fleet.postgres.pid)
    own = resource.getrusage(resource.RUSAGE_SELF)
    out["bench (this process)"] = own.ru_utime + own.ru_stime
    return out


def proc_usage(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return rss, ticks / 100.0


async def main_async(args: argparse.Namespace) -> None:
    members = [f"member-{i}" for i in range(1, args.members + 1)]
    fleet = LocalFleet(members=args.members, progress=lambda m: print(f"  {m}", flush=True))
    await anyio.to_thread.run_sync(fleet.start)
    try:
        hub = await connect(fleet, "hub")
        await install_crds(hub)
        await join_members(hub, {m: fleet.clusters[m] for m in members}, labels={})
        await hub.close()

        print(
            f"limit: {args.deployments} × {len(members)} server-side applies straight to the members …",
            flush=True,
        )
        cpu0 = fleet_cpu(fleet)
        limit_s = await limit_run(fleet, members, args.deployments)
        cpu1 = fleet_cpu(fleet)
        limit_rate = args.deployments * len(members) / limit_s

        url = await create_database(fleet.database_url, "bench")
        log = Path(tempfile.mkdtemp(prefix="bench-propagation-")) / "controller.log"
        proc = ControllerProcess(fleet, database_url=url, hub_id="bench-hub", log_path=log)
        await anyio.to_thread.run_sync(proc.start)
        if args.profile:
            assert proc.proc is not None
            subprocess.Popen(  # noqa: ASYNC220 - started and left running; nothing waits on it
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(proc.proc.pid), "-f", "raw",
                 "-o", args.profile, "-d", "45", "-r", "50"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        total = args.deployments * len(members)
        print(f"controller: {args.deployments} Deployments → {total} member objects …", flush=True)
        cpu2 = fleet_cpu(fleet)
        assert proc.proc is not None
        controller_cpu0 = proc_usage(proc.proc.pid)[1]
        results = await controller_run(fleet, members, args.deployments, proc)
        cpu3 = fleet_cpu(fleet)
        results["hub_requests"] = {
            v: polled(proc, "federation_kube_requests_total", float("nan"), cluster="hub", verb=v)
            for v in ("get", "list", "watch", "patch", "update", "apply", "create")
        }
        results["template_status_writes"] = polled(proc, "federation_hub_status_writes_total", float("nan"))
        results["gc"] = {
            f"gen{g}": (
                polled(proc, "federation_gc_pause_seconds_count", float("nan"), generation=str(g)),
                polled(proc, "federation_gc_pause_seconds_sum", float("nan"), generation=str(g)),
            )
            for g in (0, 1, 2)
        }
        assert proc.proc is not None
        rss, cpu = proc_usage(proc.proc.pid)

        # A restart with nothing changed.
        await anyio.to_thread.run_sync(proc.stop)
        await anyio.to_thread.run_sync(proc.start)
        rounds = {m: polled(proc, "federation_claim_rounds_total", -1.0, cluster=m) for m in members}
        with anyio.fail_after(120):
            while any(
                polled(proc, "federation_claim_rounds_total", -1.0, cluster=m) < rounds[m] + 2
                for m in members
            ):
                await anyio.sleep(0.2)
        restart_writes = polled(proc, "federation_member_writes_total", float("nan"))
        await anyio.to_thread.run_sync(proc.stop)
        # Restart again and change a few templates at once, while the initial list is worked off.
        try:
            results["restart_probe"] = await restart_probe(fleet, proc, args.deployments, len(members))
        except (OSError, TimeoutError, AssertionError) as exc:  # a loaded machine: report, go on
            print(f"the restart probe failed: {exc!r}", flush=True)
            results["restart_probe"] = {"p50": float("nan"), "p99": float("nan"), "depths": []}
        await anyio.to_thread.run_sync(proc.stop)
    finally:
        await anyio.to_thread.run_sync(fleet.stop)

    ratio = results["bulk_rate"] / limit_rate

    def row(name: str, fed: float, limit: str = "", ratio_s: str = "", target: str = "") -> None:
        print(f"{name:<48} {fed:>12.3f} {limit:>12} {ratio_s:>8}  {target}")

    print()
    print(f"{'measure':<48} {'federation':>12} {'limit':>12} {'ratio':>8}  target")
    row(f"time to all {total} applied (s)", results["bulk_seconds"], f"{limit_s:.3f}")
    row("throughput (objects/s)", results["bulk_rate"], f"{limit_rate:.1f}", f"{ratio:.2f}x", ">= 0.7x")
    row("hub write → member applied p50 (s), bulk", results["bulk_p50"])
    row("hub write → member applied p99 (s), bulk", results["bulk_p99"])
    row(f"  … p50 (s), single during the bulk (n={results['during_n']})", results["during_p50"])
    row("  … p99 (s), single during the bulk", results["during_p99"], target="< 1 s")
    row("    … of which the hub side (to the template's row), p50", results["during_hub_p50"])
    row("    … of which the hub side, p99", results["during_hub_p99"])
    row("hub write → member applied p50 (s), single", results["single_p50"])
    row("hub write → member applied p99 (s), single", results["single_p99"], target="< 1 s")
    rp = results["restart_probe"]
    row("  … p50 (s), single during a restart's relist", rp["p50"])
    row("  … p99 (s), single during a restart's relist", rp["p99"], target="< 1 s")
    row("member status → hub aggregated p50 (s)", results["status_p50"])
    row("member status → hub aggregated p99 (s)", results["status_p99"])
    row("controller RSS (MiB)", rss)
    row("controller CPU (s)", cpu)
    row("member writes after a restart, nothing changed", restart_writes, target="= 0")
    bulk = results["cpu_bulk_end"]
    print("CPU seconds by process: limit run | controller run, bulk window | whole controller run")
    for part in cpu0:
        print(
            f"  {part:<28} {cpu1[part] - cpu0[part]:8.1f} | {bulk[part] - cpu2[part]:8.1f} |"
            f" {cpu3[part] - cpu2[part]:8.1f}"
        )
    controller_bulk = results["controller_cpu_bulk_end"] - controller_cpu0
    print(f"  {'controller':<28} {0.0:8.1f} | {controller_bulk:8.1f} |")
    print_cpu_per_object(cpu0, cpu1, cpu2, bulk, controller_bulk, total)
    print("hub-resources queue depth at each single update after the restart:", rp["depths"])
    print("controller GC pauses (count, total seconds):", results["gc"])
    print("slowest single updates during the bulk:", "; ".join(results["during_slowest"]))
    lag_sum, lag_count, lag_late = results["loop_lag"]
    if lag_count:
        print(
            f"controller event-loop lag during the bulk: mean {1000 * lag_sum / lag_count:.0f} ms,"
            f" later than 100 ms in {100 * lag_late / lag_count:.0f}% of {lag_count:.0f} wakes"
        )
    print("single updates, slowest member latencies (s):", [round(x, 3) for x in results["single_slowest"]])
    print(
        "controller requests to the hub by verb:",
        results["hub_requests"],
        f"(of the updates, template status writes: {results['template_status_writes']:.0f})",
    )
    print(
        f"template status writes once the bulk rollout settled: {results['status_writes_settled']:.0f}"
        f" for {args.deployments} templates (the rest: the single updates, and the status the bench"
        " writes into the members' copies of 100 Deployments to time status up)"
    )
    print(
        "phases of the bulk rollout (s after the first hub write): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(results["phases"].items(), key=lambda kv: kv[1]))
    )


def print_cpu_per_object(
    cpu0: dict[str, float],
    cpu1: dict[str, float],
    cpu2: dict[str, float],
    bulk: dict[str, float],
    controller_bulk: float,
    total: int,
) -> None:
    """CPU-ms per member object by process: the limit run against the controller's bulk window."""

    def group(cpu_a: dict[str, float], cpu_b: dict[str, float]) -> dict[str, float]:
        d = {k: cpu_b[k] - cpu_a[k] for k in cpu_a}
        members = sum(v for k, v in d.items() if k.startswith("apiserver member"))
        return {
            "hub apiserver": d["apiserver hub"],
            "member apiservers (all)": members,
            "etcd (+supervisor)": d["etcd (+supervisor)"],
            "postgres": d.get("postgres", 0.0),
            "bench (this process)": d["bench (this process)"],
        }

    limit, ours = group(cpu0, cpu1), group(cpu2, bulk)
    ours["controller"], limit["controller"] = controller_bulk, 0.0
    print(f"CPU-ms per member object ({total} objects): {'limit':>10} {'federation':>11}")
    for part in ("controller", "hub apiserver", "postgres", "member apiservers (all)", "etcd (+supervisor)",
                 "bench (this process)"):  # fmt: skip
        print(f"  {part:<28} {limit[part] * 1000 / total:10.2f} {ours[part] * 1000 / total:11.2f}")
    per = {k: sum(v.values()) * 1000 / total for k, v in (("limit", limit), ("ours", ours))}
    print(f"  {'total':<28} {per['limit']:10.2f} {per['ours']:11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--profile", help="write a py-spy profile (collapsed stacks) of the controller here")
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
