"""Measure the local fleet: warm start time of hub + N members, and idle RSS of each process.

    .venv/bin/python bench/devfleet.py [--members 3] [--rounds 3]

The reference beside it is the embedded Postgres alone (the cheapest real server we start),
so the figures read as "a fleet of real apiservers costs X times a database start".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from federation.devfleet import EmbeddedPostgres, LocalFleet, ensure_binary


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_rss(pid: int) -> float:
    """RSS of a process and all its descendants (Postgres forks a backend per connection)."""
    total = rss_mib(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        total += sum(children_rss(int(c)) for c in children)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to let the fleet idle before RSS")
    args = parser.parse_args()

    t0 = time.monotonic()
    ensure_binary(lambda m: print(f"  {m}", file=sys.stderr))
    print(f"control-plane binary ready in {time.monotonic() - t0:.1f}s (0 when cached)")

    pg_times = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as d:
            pg = EmbeddedPostgres(Path(d) / "pg")
            t = time.monotonic()
            pg.start()
            pg_times.append(time.monotonic() - t)
            pg.stop()

    fleet_times = []
    for i in range(args.rounds):
        fleet = LocalFleet(members=args.members)
        t = time.monotonic()
        fleet.start()
        fleet_times.append(time.monotonic() - t)
        if i == args.rounds - 1:
            deadline = time.monotonic() + args.idle
            while time.monotonic() < deadline:  # a benchmark, not a test: let it go idle
                time.sleep(0.5)
            print(f"\nidle RSS after {args.idle:.0f}s (MiB):")
            cp = fleet.backend
            supervisor = cp.pid  # type: ignore[attr-defined]
            print(f"  {'etcd + supervisor':<20} {rss_mib(supervisor):8.1f}")
            for name in fleet.clusters:
                pid = fleet.cluster_pid(name)
                assert pid is not None
                print(f"  {'apiserver ' + name:<20} {rss_mib(pid):8.1f}")
            assert fleet.postgres is not None and fleet.postgres.pid is not None
            print(f"  {'postgres (all procs)':<20} {children_rss(fleet.postgres.pid):8.1f}")
        fleet.stop()

    print(f"\nwarm start over {args.rounds} rounds (median, min-max):")
    print(
        f"  hub + {args.members} members + postgres  {statistics.median(fleet_times):6.2f}s "
        f"({min(fleet_times):.2f}-{max(fleet_times):.2f})"
    )
    print(
        f"  reference: postgres alone          {statistics.median(pg_times):6.2f}s "
        f"({min(pg_times):.2f}-{max(pg_times):.2f})"
    )
    ratio = statistics.median(fleet_times) / statistics.median(pg_times)
    print(f"  ratio                              {ratio:6.1f}x")


if __name__ == "__main__":
    main()
