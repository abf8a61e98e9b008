"""Dozens of members: how the controller's cost grows from 5 → 10 → 20 → 40 members.

    .venv/bin/python bench/scale.py [--sizes 5,10,20,40] [--templates 250] [--light]

For each size a fresh fleet (hub + N members + Postgres) receives 250 Deployments + 250
ConfigMaps Duplicated to every member (N × 500 member objects), first written by the plain
concurrent server-side-apply loop straight to the members (the LIMIT: no hub, no database, no
placement; `bench/propagation.py`'s reference), then by the controller (`federation run`, its
own process). One row per size: time to all applied and objects/s beside the limit's, the
controller's RSS and CPU-seconds, Postgres rows and on-disk size, the controller's TCP
connections per member apiserver, and the hub write → member p99 of single updates once the
rollout has settled. Then the same figures per object and per member, so linear growth in
objects and flat cost per member read off directly, and CPU-ms per member object by process.

Memory is what bounds a local fleet: each size is started only if the machine keeps ~4 GiB
available with it (an estimate per member apiserver), a watchdog stops the size if available
memory falls under that while it runs, and every fleet is torn down even on errors. The machine
is shared: timings swing, so compare rows of one invocation, and repeat the invocation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.propagation import (  # noqa: E402
    CONCURRENCY,
    Seen,
    applied_times,
    connect,
    deployment,
    ensure_namespace,
    fleet_cpu,
    pct,
    proc_usage,
    wait_settled,
)
from bench.propagation import single_updates as single_updates_from  # noqa: E402
from federation.clusters.crds import install_crds  # noqa: E402
from federation.devfleet import LocalFleet  # noqa: E402
from federation.devfleet.members import join_members  # noqa: E402
from federation.errors import PortInUseError, StartupError  # noqa: E402
from federation.informers import Informer, InformerKey  # noqa: E402
from federation.kube import GVK, Discovery, KubeClient, ResourceInfo  # noqa: E402
from tests.controllerhelpers import ControllerProcess  # noqa: E402
from tests.storehelpers import create_database  # noqa: E402

DEPLOYMENT = GVK("apps", "v1", "Deployment")
CONFIGMAP = GVK("", "v1", "ConfigMap")
LIMIT_NS, FED_NS = "bench-limit", "bench-fed"
#: Postgres tables whose rows grow with the fleet (the others hold a row per policy or member).
TABLES = ("resources", "works", "member_status", "placements", "placement_decisions", "events")
#: What the machine keeps for everyone else (four other engineers' fleets run beside this one).
RESERVE_MIB = 4096
#: Memory one more member apiserver takes under this workload: its proportional set size (RSS
#: counts the binary's ~85 MiB of pages shared by all apiservers again in each; bench/fleetflags.py
#: measures both), and what the hub, Postgres and the controller take.
MEMBER_MIB = {False: 250, True: 200}
BASE_MIB = 1500


def configmap(i: int, namespace: str) -> dict[str, Any]:
    name = f"cfg-{i:05d}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"bench": "yes"}},
        "data": {"app.properties": f"name={name}\nreplicas=2\n", "tag": "1"},
    }


def workload(templates: int, namespace: str) -> list[tuple[GVK, dict[str, Any]]]:
    """The objects of one member (or of the hub): N Deployments and N ConfigMaps."""
    return [(DEPLOYMENT, deployment(i, namespace)) for i in range(templates)] + [
        (CONFIGMAP, configmap(i, namespace)) for i in range(templates)
    ]


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def connections_per_port(pid: int, ports: dict[int, str]) -> dict[str, int]:
    """Established TCP connections of process `pid` to each port in `ports` (→ its cluster).

    /proc/PID/net/tcp lists every socket of the network namespace; the process's own are the
    inodes its file descriptors point at.
    """
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    counts = dict.fromkeys(ports.values(), 0)
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            remote_port, state, inode = int(cols[2].rsplit(":", 1)[1], 16), cols[3], cols[9]
            if state == "01" and inode in inodes and remote_port in ports:
                counts[ports[remote_port]] += 1
    return counts


async def postgres_stats(url: str) -> tuple[dict[str, tuple[int, int]], int]:
    """(rows, bytes on disk with indexes and TOAST) of each table of `TABLES`, and the database."""
    conn = await asyncpg.connect(url)
    try:
        out = {}
        for t in TABLES:
            rows = await conn.fetchval(f"SELECT count(*) FROM {t}")  # TABLES: our constant
            size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
            out[t] = (int(rows), int(size))
        return out, int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


class MemoryLowError(Exception):
    """Available memory fell under the reserve while a size ran: stop it (the fleet is torn down)."""


async def memory_watchdog(scope: anyio.CancelScope, low: list[str]) -> None:
    """Cancel `scope` (the size's measurement) as soon as the machine runs short."""
    while True:
        available = mem_available_mib()
        if available < RESERVE_MIB:
            low.append(f"MemAvailable {available:.0f} MiB < {RESERVE_MIB} MiB")
            scope.cancel()
            return
        await anyio.sleep(1.0)


async def apply_all(
    clients: dict[str, KubeClient],
    objects: list[tuple[GVK, dict[str, Any]]],
    on_done: Callable[[dict[str, Any]], object] | None = None,
) -> None:
    """Every object to every client by server-side apply, CONCURRENCY at a time in all."""
    limiter = anyio.CapacityLimiter(CONCURRENCY)
    some = next(iter(clients.values()))
    resources: dict[GVK, ResourceInfo] = {g: await Discovery(some).resource_for(g) for g, _ in objects}

    async def one(client: KubeClient, gvk: GVK, obj: dict[str, Any]) -> None:
        async with limiter:
            await client.apply(resources[gvk], obj, field_manager="bench", force=True)
        if on_done is not None:
            on_done(obj)

    async with anyio.create_task_group() as tg:
        for gvk, obj in objects:
            for client in clients.values():
                tg.start_soon(one, client, gvk, obj)


@dataclass
class Row:
    members: int
    objects: int
    limit_s: float = 0.0
    fed_s: float = 0.0
    hub_s: float = 0.0
    rss_peak: float = 0.0
    ctrl_cpu: float = 0.0
    cpu_limit: dict[str, float] = field(default_factory=dict)
    cpu_fed: dict[str, float] = field(default_factory=dict)
    pg: dict[str, tuple[int, int]] = field(default_factory=dict)
    pg_bytes: int = 0
    conns_bulk: dict[str, int] = field(default_factory=dict)
    conns_steady: dict[str, int] = field(default_factory=dict)
    single: list[float] = field(default_factory=list)
    start_s: float = 0.0


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU-seconds by part: the hub apiserver, all member apiservers, etcd, Postgres, this bench."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    return {
        "hub apiserver": d.pop("apiserver hub", 0.0),
        "member apiservers": sum(v for k, v in d.items() if k.startswith("apiserver ")),
        "etcd": d.get("etcd (+supervisor)", 0.0),
        "postgres": d.get("postgres", 0.0),
        "bench": d.get("bench (this process)", 0.0),
    }


async def start_fleet(
    n: int, light: bool, say: Callable[[str], None], attempts: int = 3
) -> tuple[LocalFleet, float]:
    """A running fleet of `n` members and the seconds its start took, trying again when the
    machine made the start fail.

    Two ways a start of dozens of apiservers fails on a busy shared machine, neither ours to
    fix here: the binary picks each apiserver's port by binding port 0 and releasing it, and
    other fleets' connections from the same ephemeral range sometimes take it first; and at a
    load average of 50 on 2 cores an apiserver's post-start hook can time out, which the
    apiserver treats as fatal.
    """
    for attempt in range(1, attempts + 1):
        fleet = LocalFleet(members=n, light=light, progress=lambda m: None)
        t = time.monotonic()
        try:
            await anyio.to_thread.run_sync(fleet.start)
        except (PortInUseError, StartupError) as exc:
            if attempt == attempts:
                raise
            reason = next((line for line in str(exc).splitlines() if "cluster " in line), str(exc))
            say(f"the fleet failed to start (attempt {attempt}, {type(exc).__name__}: {reason[:200]}); again")
            continue
        return fleet, time.monotonic() - t
    raise AssertionError("unreachable")


async def run_size(n: int, args: argparse.Namespace) -> Row:
    members = [f"member-{i}" for i in range(1, n + 1)]
    row = Row(members=n, objects=n * 2 * args.templates)

    def say(message: str) -> None:
        print(f"  [{n:>3} members] {message}", flush=True)

    procs: list[ControllerProcess] = []
    low: list[str] = []
    say(f"starting hub + {n} members{' (light)' if args.light else ''} + postgres …")
    fleet, row.start_s = await start_fleet(n, args.light, say)
    say(f"fleet ready in {row.start_s:.1f}s; MemAvailable {mem_available_mib():.0f} MiB")
    try:
        async with anyio.create_task_group() as guard:
            guard.start_soon(memory_watchdog, guard.cancel_scope, low)
            await measure(fleet, members, row, args, say, procs)
            guard.cancel_scope.cancel()
    finally:
        for proc in procs:
            await anyio.to_thread.run_sync(proc.stop)
        await anyio.to_thread.run_sync(fleet.stop)
    if low:
        raise MemoryLowError(low[0])
    return row


async def measure(
    fleet: LocalFleet,
    members: list[str],
    row: Row,
    args: argparse.Namespace,
    say: Callable[[str], None],
    procs: list[ControllerProcess],
) -> None:
    """Fill `row`; the controller it starts goes into `procs`, for the caller to stop."""
    hub = await connect(fleet, "hub")
    clients = {m: await connect(fleet, m) for m in members}
    try:
        await install_crds(hub)
        await join_members(hub, {m: fleet.clusters[m] for m in members}, labels={})
        for c in [hub, *clients.values()]:
            await ensure_namespace(c, LIMIT_NS)
            await ensure_namespace(c, FED_NS)

        say(f"limit: {row.objects} server-side applies straight to the members …")
        cpu0 = fleet_cpu(fleet)
        t = time.perf_counter()
        await apply_all(clients, workload(args.templates, LIMIT_NS))
        row.limit_s = time.perf_counter() - t
        row.cpu_limit = cpu_delta(cpu0, fleet_cpu(fleet))
        say(f"limit: {row.limit_s:.1f}s ({row.objects / row.limit_s:.0f} objects/s)")

        url = await create_database(fleet.database_url, "bench")
        log = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "controller.log"
        proc = ControllerProcess(fleet, database_url=url, hub_id="bench-hub", log_path=log)
        procs.append(proc)
        await anyio.to_thread.run_sync(lambda: proc.start(timeout=300))
        assert proc.proc is not None
        pid = proc.proc.pid
        ports = {fleet.clusters[m].port: m for m in members}
        say(f"controller: {2 * args.templates} templates → {row.objects} member objects (log {log}) …")
        await create_policy(hub, members)
        cpu0, ctrl0 = fleet_cpu(fleet), proc_usage(pid)[1]
        written: dict[str, float] = {}
        t0 = time.time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                apply_all,
                {"hub": hub},
                workload(args.templates, FED_NS),
                lambda obj: written.setdefault(obj["metadata"]["name"], time.time()),
            )
            row.hub_s = await wait_applied(url, row.objects, say) - t0
        row.cpu_fed = cpu_delta(cpu0, fleet_cpu(fleet))
        row.ctrl_cpu = proc_usage(pid)[1] - ctrl0
        row.conns_bulk = connections_per_port(pid, ports)
        row.fed_s = max((await applied_times(url)).values()) - t0
        say(
            f"controller: all applied in {row.fed_s:.1f}s ({row.objects / row.fed_s:.0f} objects/s);"
            f" every work written by the hub side at {row.hub_s:.1f}s"
        )

        row.single = await single_updates(hub, clients, proc, count=args.single)
        row.conns_steady = connections_per_port(pid, ports)
        row.pg, row.pg_bytes = await postgres_stats(url)
        row.rss_peak = peak_rss_mib(pid)
        say(f"single updates p99 {pct(row.single, 0.99):.3f}s; controller peak RSS {row.rss_peak:.0f} MiB")
    finally:
        with anyio.CancelScope(shield=True):
            for c in [hub, *clients.values()]:
                await c.close()


async def create_policy(hub: KubeClient, members: list[str]) -> None:
    pol = await Discovery(hub).resource_for(GVK("federation.io", "v1alpha1", "PropagationPolicy"))
    selectors = [
        {"apiVersion": g.api_version, "kind": g.kind, "labelSelector": {"matchLabels": {"bench": "yes"}}}
        for g in (DEPLOYMENT, CONFIGMAP)
    ]
    await hub.apply(
        pol,
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": "bench", "namespace": FED_NS},
            "spec": {"resourceSelectors": selectors, "placement": {"clusterNames": members}},
        },
        field_manager="bench",
    )


async def wait_applied(url: str, total: int, say: Callable[[str], None]) -> float:
    """Until Postgres records every work applied, with a progress line every ~5 s; returns when
    the hub side had written every work (time.time()), which tells its share of the rollout."""
    conn = await asyncpg.connect(url)
    created = 0.0
    try:
        last = time.monotonic()
        with anyio.fail_after(1800):
            while True:
                row = await conn.fetchrow(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE state = 'applied') AS applied FROM works"
                )
                assert row is not None
                if not created and row["n"] >= total:
                    created = time.time()
                if row["applied"] >= total:
                    return created
                if time.monotonic() - last > 5:
                    say(f"  {row['n']} works, {row['applied']}/{total} applied")
                    last = time.monotonic()
                await anyio.sleep(0.1)  # a benchmark's progress poll, not a test
    finally:
        await conn.close()


async def single_updates(
    hub: KubeClient, clients: dict[str, KubeClient], proc: ControllerProcess, *, count: int
) -> list[float]:
    """Hub write → seen on every member, one Deployment at a time, once the rollout settled."""
    seen = Seen()
    async with anyio.create_task_group() as tg:
        informers = []
        for m, c in clients.items():
            inf = Informer(c, InformerKey(await Discovery(c).resource_for(DEPLOYMENT), FED_NS))
            inf.add_handler(seen.handler(m))
            informers.append(inf)
            tg.start_soon(inf.run)
        for inf in informers:
            await inf.wait_for_sync()
        await wait_settled(proc)
        res = await Discovery(hub).resource_for(DEPLOYMENT)
        latencies = await single_updates_from(hub, res, seen, clients, FED_NS, count=count)
        tg.cancel_scope.cancel()
    return latencies


def report(rows: list[Row], args: argparse.Namespace) -> None:
    profile = "light" if args.light else "default"
    print(f"\n{2 * args.templates} templates ({args.templates} Deployments + {args.templates} ConfigMaps)"
          f" Duplicated; {profile} member apiservers; shared 2-core machine\n")  # fmt: skip
    head = (
        f"{'members':>7} {'objects':>7} {'start s':>7} {'limit s':>8} {'fed s':>7} {'hub s':>6} {'ratio':>6}"
        f" {'obj/s':>6} {'RSS MiB':>8} {'CPU s':>6} {'ms/obj':>6} {'works':>6} {'status':>6} {'events':>6}"
        f" {'PG MiB':>7} {'conn/m':>7} {'p99 s':>6}"
    )
    print(head)
    for r in rows:
        conns = sorted(r.conns_steady.values()) or [0]
        print(
            f"{r.members:>7} {r.objects:>7} {r.start_s:>7.1f} {r.limit_s:>8.1f} {r.fed_s:>7.1f}"
            f" {r.hub_s:>6.1f} {r.limit_s / r.fed_s:>5.2f}x {r.objects / r.fed_s:>6.0f} {r.rss_peak:>8.0f}"
            f" {r.ctrl_cpu:>6.1f} {1000 * r.ctrl_cpu / r.objects:>6.2f} {r.pg['works'][0]:>6}"
            f" {r.pg['member_status'][0]:>6} {r.pg['events'][0]:>6} {r.pg_bytes / 2**20:>7.1f}"
            f" {f'{conns[0]}-{conns[-1]}':>7} {pct(r.single, 0.99):>6.3f}"
        )
    base = rows[0]
    print(f"\ngrowth against {base.members} members (x = this row / first row; linear in objects = the"
          " objects column; flat per member = 1.00)")  # fmt: skip
    print(f"{'members':>7} {'objects':>8} {'fed s':>8} {'limit s':>8} {'ctrl CPU':>9} {'CPU/obj':>8}"
          f" {'RSS/obj':>8} {'PG B/work':>10} {'conn/m':>7}")  # fmt: skip
    for r in rows:
        pg_per_work = sum(b for _rows, b in r.pg.values()) / max(1, r.pg["works"][0])
        per_member = statistics.mean(r.conns_steady.values()) if r.conns_steady else 0.0
        print(
            f"{r.members:>7} {r.objects / base.objects:>7.2f}x {r.fed_s / base.fed_s:>7.2f}x"
            f" {r.limit_s / base.limit_s:>7.2f}x {r.ctrl_cpu / base.ctrl_cpu:>8.2f}x"
            f" {(r.ctrl_cpu / r.objects) / (base.ctrl_cpu / base.objects):>7.2f}x"
            f" {(r.rss_peak / r.objects) / (base.rss_peak / base.objects):>7.2f}x"
            f" {pg_per_work:>10.0f} {per_member:>7.1f}"
        )
    print("\nCPU-ms per member object by process (limit | federation, bulk window)")
    parts = ["member apiservers", "etcd", "hub apiserver", "postgres", "bench"]
    print(f"{'members':>7} " + " ".join(f"{p[:17]:>17}" for p in [*parts, "controller", "total"]))
    for r in rows:

        def ms(seconds: float, r: Row = r) -> float:
            return 1000 * seconds / r.objects

        cells = [f"{ms(r.cpu_limit[p]):>7.2f}|{ms(r.cpu_fed[p]):<9.2f}" for p in parts]
        cells.append(f"{'-':>7}|{ms(r.ctrl_cpu):<9.2f}")
        cells.append(
            f"{ms(sum(r.cpu_limit.values())):>7.2f}|{ms(sum(r.cpu_fed.values()) + r.ctrl_cpu):<9.2f}"
        )
        print(f"{r.members:>7} " + " ".join(cells))
    print("\nPostgres rows (bytes on disk with indexes) per table:")
    for r in rows:
        print(
            f"  {r.members:>3} members: "
            + ", ".join(f"{t} {n} ({b / 2**20:.1f} MiB)" for t, (n, b) in r.pg.items())
        )
    print("controller connections per member, at the end of the bulk | steady:")
    for r in rows:
        bulk, steady = sorted(r.conns_bulk.values()) or [0], sorted(r.conns_steady.values()) or [0]
        print(f"  {r.members:>3} members: {bulk[0]}-{bulk[-1]} | {steady[0]}-{steady[-1]}")


async def main_async(args: argparse.Namespace) -> None:
    rows: list[Row] = []
    for n in args.sizes:
        need = BASE_MIB + n * MEMBER_MIB[args.light]
        available = mem_available_mib()
        if available - need < RESERVE_MIB:
            print(f"skipping {n} members and larger: needs ~{need} MiB, {available:.0f} MiB available,"
                  f" {RESERVE_MIB} MiB must stay free for the others", flush=True)  # fmt: skip
            break
        try:
            rows.append(await run_size(n, args))
        except MemoryLowError as exc:
            print(f"stopped {n} members: {exc}; the fleet was torn down", flush=True)
            break
        report(rows, args)
    if not rows:
        raise SystemExit("no size ran")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[5, 10, 20, 40])
    parser.add_argument("--templates", type=int, default=250, help="Deployments, and as many ConfigMaps")
    parser.add_argument("--single", type=int, default=20, help="single updates in steady state, per size")
    parser.add_argument(
        "--light", action="store_true", help="members with the light profile (devfleet.light)"
    )
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
