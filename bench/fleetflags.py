"""What each apiserver flag of the light profile saves: memory per member, idle and loaded.

    .venv/bin/python bench/fleetflags.py [--members 4] [--templates 250] [--idle 20]

For each variant, a fresh fleet (hub + N members; the flags go to the members only, as in
`LocalFleet(light=True)`) idles, then every member receives the workload of `bench/scale.py`
(250 Deployments + 250 ConfigMaps by plain server-side apply), and each member apiserver's
memory is read twice: idle and loaded. The first variant, the defaults, is the reference.
Memory is reported three ways, because the apiservers share one binary: RSS (counts the
binary's ~85 MiB of shared pages in every process), PSS (shares them out: what one more member
really costs) and anonymous (heap and stacks: what the flags act on). The machine is shared:
start times and CPU swing; memory much less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.propagation import connect, ensure_namespace, tree_cpu  # noqa: E402
from bench.scale import LIMIT_NS, apply_all, workload  # noqa: E402
from federation.devfleet import LocalFleet, member_names  # noqa: E402
from federation.devfleet.light import LIGHT_APISERVER_ARGS, LIGHT_ENV, member_args  # noqa: E402

APF_OFF = "--enable-priority-and-fairness=false"
NO_WATCH_CACHE = "--watch-cache=false"
#: (label, member apiserver flags, environment of the control-plane processes)
VARIANTS: list[tuple[str, Sequence[str], Mapping[str, str]]] = [
    ("defaults (reference)", (), {}),
    ("GOGC=50", (), LIGHT_ENV),
    ("APF off", (APF_OFF,), {}),
    ("fewer API groups + APF off", LIGHT_APISERVER_ARGS, {}),
    ("light: all of the above", LIGHT_APISERVER_ARGS, LIGHT_ENV),
    ("light + no watch cache", (*LIGHT_APISERVER_ARGS, NO_WATCH_CACHE), LIGHT_ENV),
]


def memory(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, anonymous) MiB of one process."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    rollup = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        if ":" in line
    )

    def mib(v: str) -> float:
        return int(v.split()[0]) / 1024

    return mib(status["VmRSS"]), mib(rollup["Pss"]), mib(status["RssAnon"])


def summary(values: list[tuple[float, float, float]]) -> str:
    cols = list(zip(*values, strict=True))
    return " ".join(f"{statistics.median(c):6.0f} ({min(c):.0f}-{max(c):.0f})" for c in cols)


async def one_variant(
    label: str, flags: Sequence[str], env: Mapping[str, str], args: argparse.Namespace
) -> tuple[float, float, float]:
    """Print one variant's line; return its loaded (RSS, PSS, anon) medians."""
    members = member_names(args.members)
    fleet = LocalFleet(
        members=args.members, postgres=False, apiserver_args=member_args(members, flags), env=env
    )
    t = time.monotonic()
    await anyio.to_thread.run_sync(fleet.start)
    try:
        started = time.monotonic() - t
        await anyio.sleep(args.idle)  # a benchmark: memory once the start-up work is over
        pids = {m: fleet.cluster_pid(m) or 0 for m in members}
        idle = [memory(pid) for pid in pids.values()]
        idle_cpu = statistics.median(tree_cpu(pid) for pid in pids.values())
        clients = {m: await connect(fleet, m) for m in members}
        try:
            for c in clients.values():
                await ensure_namespace(c, LIMIT_NS)
            t = time.monotonic()
            await apply_all(clients, workload(args.templates, LIMIT_NS))
            load_s = time.monotonic() - t
        finally:
            for c in clients.values():
                await c.close()
        loaded = [memory(pid) for pid in pids.values()]
        etcd = memory(fleet.backend.pid or 0)[0]  # type: ignore[attr-defined]
    finally:
        await anyio.to_thread.run_sync(fleet.stop)
    print(
        f"{label:<30} {started:6.1f} {idle_cpu:6.1f} | {summary(idle)} | {summary(loaded)} |"
        f" {load_s:6.1f} {etcd:6.0f}",
        flush=True,
    )
    rss, pss, anon = (statistics.median(c) for c in zip(*loaded, strict=True))
    return rss, pss, anon


async def main_async(args: argparse.Namespace) -> None:
    print(
        f"hub + {args.members} members per variant; member apiserver memory in MiB, median (min-max) over the"
        f" members; loaded = after {2 * args.templates} objects each; shared 2-core machine\n"
    )
    print(
        f"{'variant':<30} {'start':>6} {'CPU s':>6} | {'idle RSS':>15} {'idle PSS':>15} {'idle anon':>15} |"
        f" {'loaded RSS':>15} {'loaded PSS':>15} {'loaded anon':>15} | {'load s':>6} {'etcd+':>6}"
    )
    results = {}
    for label, flags, env in VARIANTS:
        if args.only and args.only not in label:
            continue
        results[label] = await one_variant(label, flags, env, args)
    ref = results.get(VARIANTS[0][0])
    if ref:
        print("\nloaded PSS per member against the defaults:")
        for label, (_rss, pss, _anon) in results.items():
            print(f"  {label:<30} {pss:6.0f} MiB  {pss - ref[1]:+6.0f} MiB  ({pss / ref[1]:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--templates", type=int, default=250)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--only", help="run only the variants whose label contains this")
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
