"""`federation dev`: a local fleet of real kube-apiservers and an embedded Postgres."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from federation.cli.common import DEV_STATE_DIR_ENV, err_console, out_console, state_dir_option


@click.group("dev")
def dev() -> None:
    """A local fleet for development: real kube-apiservers and an embedded Postgres.

    The control planes are built once from the Kubernetes Go modules (several minutes on a
    cold machine; cached under ~/.cache/federation afterwards). No Docker needed.
    """


_state_dir_option = state_dir_option(
    holds="Where the fleet keeps etcd data, certificates, kubeconfigs, Postgres and logs",
    under="dev",
    deprecated_env=DEV_STATE_DIR_ENV,
)


@dev.command("up")
@click.option(
    "--members",
    "-n",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Number of member clusters.",
)
@click.option("--no-hub", is_flag=True, help="Start only members (no hub cluster).")
@click.option("--no-postgres", is_flag=True, help="Do not start the embedded Postgres.")
@click.option(
    "--nodes",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Simulated nodes per member. With 1 or more, each member also runs a controller-manager, "
    "a scheduler and kwok (the nodes' kubelets), so workloads run and report status; 0: bare "
    "apiservers, the API only.",
)
@_state_dir_option
def dev_up(members: int, no_hub: bool, no_postgres: bool, nodes: int, state_dir: Path) -> None:
    """Start a local fleet in the foreground; Ctrl-C stops it.

    \b
    Example:
      federation dev up --members 2
      federation dev up --nodes 3      # members that run workloads, 3 simulated nodes each
      KUBECONFIG=~/.local/share/federation/dev/controlplane/kubeconfig kubectl --context member-1 get ns
    """
    _run_fleet_in_foreground(
        members=members, hub=not no_hub, postgres=not no_postgres, state_dir=state_dir, nodes=nodes
    )


def _run_fleet_in_foreground(
    *, members: int, hub: bool, postgres: bool, state_dir: Path, nodes: int = 0
) -> None:
    """Start a LocalFleet, show how to use it, and keep it up until SIGINT/SIGTERM."""
    from federation.devfleet import LocalFleet

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fleet = LocalFleet(
        members=members,
        hub=hub,
        state_dir=state_dir,
        postgres=postgres,
        progress=lambda m: err_console.print(f"[dim]•[/] {m}", soft_wrap=True),
        workloads=nodes > 0,
        nodes_per_member=nodes,
    )
    with err_console.status("starting the local fleet…"):
        info = fleet.start()
    try:
        _print_fleet(info.to_json())
        out_console.print("\nPress Ctrl-C (or run `federation dev down`) to stop the fleet.")
        while not stop.wait(1.0):
            pass
    finally:
        err_console.print("stopping the fleet…")
        fleet.stop()
        err_console.print("fleet stopped")


def _print_fleet(info: dict[str, Any]) -> None:
    table = Table(title="local fleet", title_justify="left")
    table.add_column("cluster")
    table.add_column("role")
    table.add_column("server")
    for name, c in info["clusters"].items():
        table.add_row(name, "hub" if name == info["hub"] else "member", c["server"])
    out_console.print(table)
    out_console.print(f"kubeconfig:   {info['kubeconfig']}  (one context per cluster)")
    if info.get("databaseURL"):
        out_console.print(f"database:     {info['databaseURL']}")
    name = info["members"][0] if info["members"] else info["hub"]
    out_console.print(f"try:          KUBECONFIG={info['kubeconfig']} kubectl --context {name} get ns")


@dev.command("down")
@_state_dir_option
@click.option(
    "--timeout",
    type=float,
    default=90.0,
    show_default=True,
    help="Seconds to wait for the fleet to stop.",
)
def dev_down(state_dir: Path, timeout: float) -> None:
    """Stop the local fleet started by `federation dev up` (in another terminal)."""
    from federation.devfleet import read_state, state_dir_busy
    from federation.errors import DevFleetError

    state = state_dir
    info = read_state(state)
    if info is None:
        raise DevFleetError(
            f"no local fleet is running on {state}", hint="start one with `federation dev up`"
        )
    pid = info.owner_pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        (state / "devfleet.json").unlink(missing_ok=True)
        raise DevFleetError(
            f"the fleet recorded in {state} (pid {pid}) is no longer running; cleaned up its state file"
        ) from None
    deadline = time.monotonic() + timeout
    with err_console.status(f"stopping the fleet (pid {pid})…"):
        while state_dir_busy(state):
            if time.monotonic() > deadline:
                raise DevFleetError(
                    f"the fleet (pid {pid}) did not stop within {timeout:.0f}s",
                    hint=f"kill -9 {pid}",
                )
            time.sleep(0.2)
    out_console.print(f"fleet on {state} stopped")


@dev.command("status")
@_state_dir_option
def dev_status(state_dir: Path) -> None:
    """Show the local fleet recorded in the state directory, as JSON."""
    from federation.devfleet import read_state
    from federation.errors import DevFleetError

    state = state_dir
    info = read_state(state)
    if info is None or not _alive(info.owner_pid):
        raise DevFleetError(
            f"no local fleet is running on {state}", hint="start one with `federation dev up`"
        )
    out_console.print_json(json.dumps(info.to_json()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dev.command("build")
def dev_build() -> None:
    """Build the control-plane binary now (otherwise the first `dev up` does it)."""
    from federation.devfleet import ensure_binary

    path = ensure_binary(lambda m: err_console.print(f"[dim]•[/] {m}", soft_wrap=True))
    out_console.print(str(path))
