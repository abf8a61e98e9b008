"""`federation demo`: a local fleet with the controller propagating the examples, live.

Hub + 3 members (eu-west, us-east, ap-south) + Postgres on this machine, the controller as its
own process, then `examples/`: a Deployment divided across regions with a per-cluster image,
a ConfigMap everywhere, an LLMGatewayConfig custom resource on the GPU clusters, and the
Deployment's Secret following it. A table shows every resource in every cluster converging,
and the hub Deployment's aggregated status.

Each member runs what a real cluster runs to make workloads run: a kube-controller-manager, a
kube-scheduler and kwok playing the kubelets of simulated nodes. A Deployment copy gets a
ReplicaSet and Pods, the pods are scheduled onto the member's nodes and become Ready, and the
member's own controllers count them: the replicas in the table come up on their own.
``--fail CLUSTER`` takes that member's nodes down once everything has converged (the apiserver
stays up, its nodes stop reporting) and shows the workloads failing over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import click
import yaml
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from federation.cli.common import err_console, out_console, progress, state_dir_option
from federation.errors import DevFleetError, KubeError, NotFoundError, StartupError

DEMO_CLUSTERS = {
    "eu-west": {"region": "eu", "gpu": "true"},
    "us-east": {"region": "us"},
    "ap-south": {"region": "ap", "gpu": "true"},
}
HUB_ID = "demo-hub"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STATE_COLOURS = {
    "applied": "green",
    "pending": "yellow",
    "conflict": "red",
    "failed": "red",
    "deleting": "magenta",
    "orphaning": "magenta",
}


@click.command("demo")
@click.option(
    "--port", type=int, default=8080, show_default=True, help="Port of the controller's status page."
)
@click.option(
    "--exit-when-converged",
    is_flag=True,
    help="Stop (exit 0) once every copy is applied and healthy, instead of running until Ctrl-C.",
)
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds to converge before failing."
)
@click.option(
    "--fail",
    "fail",
    type=click.Choice(list(DEMO_CLUSTERS)),
    help="Once converged, take this member's nodes down (they stop reporting) and show the "
    "failover: its copies move to the others and run there.",
)
@click.option(
    "--nodes",
    type=click.IntRange(1, 50),
    default=2,
    show_default=True,
    help="Simulated nodes per member (4 CPUs, 16Gi each).",
)
@state_dir_option(
    holds="Where the demo's fleet keeps its state (etcd data, certificates, Postgres, the controller's "
    "log and encryption key)",
    under="demo",
)
def demo(
    port: int, exit_when_converged: bool, timeout: float, fail: str | None, nodes: int, state_dir: Path
) -> None:
    """Run the demo: a local fleet with the controller propagating examples/, converging live.

    Starts (building on first use) a hub and 3 member clusters plus Postgres on this machine —
    each member with a controller-manager, a scheduler and simulated nodes, so workloads really
    run — joins the members, starts the controller, applies examples/, and shows every resource
    in every cluster until Ctrl-C; then cleans everything up. The status page is at the printed
    URL while it runs.

    \b
    Example:
      federation demo
      federation demo --fail eu-west     # then watch eu-west's workloads fail over
    """
    from federation.devfleet import LocalFleet

    if not EXAMPLES.is_dir():
        raise DevFleetError(f"the examples are not at {EXAMPLES}", hint="run the demo from a checkout")
    state = state_dir
    fleet = LocalFleet(
        members=len(DEMO_CLUSTERS),
        names=list(DEMO_CLUSTERS),
        state_dir=state,
        progress=progress,
        workloads=True,
        nodes_per_member=nodes,
    )
    with err_console.status("starting the local fleet…"):
        fleet.start()
    controller: subprocess.Popen[bytes] | None = None
    stop = {"now": False}
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.__setitem__("now", True))
    try:
        anyio.run(_prepare, fleet)
        controller = _start_controller(fleet, state, port)
        anyio.run(_apply_examples, fleet)
        converged = anyio.run(_watch, fleet, port, exit_when_converged, timeout, stop, fail)
        if exit_when_converged and not converged:
            raise StartupError(
                f"the demo did not converge within {timeout:.0f}s; controller log: {state / 'controller.log'}"
            )
    finally:
        if controller is not None and controller.poll() is None:
            controller.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                controller.wait(timeout=30)
            if controller.poll() is None:
                controller.kill()
        err_console.print("stopping the local fleet…")
        fleet.stop()
        err_console.print("demo stopped")


async def _prepare(fleet: Any) -> None:
    from federation.clusters.crds import install_crds
    from federation.devfleet.members import join_members

    hub = await _client(fleet, "hub")
    try:
        progress("installing the federation.io CRDs on the hub")
        await install_crds(hub)
        await join_members(hub, {n: fleet.clusters[n] for n in DEMO_CLUSTERS}, labels=DEMO_CLUSTERS)
        progress(f"joined {', '.join(f'{n} ({_labels(v)})' for n, v in DEMO_CLUSTERS.items())}")
    finally:
        await hub.close()
    crd = yaml.safe_load((EXAMPLES / "crds" / "llmgatewayconfig.yaml").read_text())
    for name in ["hub", *DEMO_CLUSTERS]:
        client = await _client(fleet, name)
        try:
            await _apply(client, crd)
        finally:
            await client.close()
    progress("installed the LLMGatewayConfig CRD (examples/crds) on the hub and every member")


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


async def _client(fleet: Any, name: str) -> Any:
    from federation.kube import KubeClient

    info = fleet.clusters[name]
    return await KubeClient.connect(name, kubeconfig=info.kubeconfig, context=info.context)


async def _apply(client: Any, obj: dict[str, Any]) -> None:
    from federation.kube import Discovery

    disco = Discovery(client, min_refresh_interval=0)
    for _ in range(50):
        try:
            res = await disco.resource_for_object(obj)
            break
        except NotFoundError:
            await anyio.sleep(0.2)  # a CRD applied a moment ago: discovery catches up
    else:
        res = await disco.resource_for_object(obj)
    await client.apply(res, obj, field_manager="federation-demo", force=True)


def demo_key_file(state: Path) -> Path:
    """The demo controller's encryption key, in its state directory: made on first use and kept
    (the demo's database is too, and what it sealed must keep opening)."""
    from federation.sealing import write_new_key_file

    path = state / "encryption.keys"
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        key = write_new_key_file(path)
        progress(f"made an encryption key for the Secrets in the database: {path} ({key.id})")
    return path


def _start_controller(fleet: Any, state: Path, port: int) -> subprocess.Popen[bytes]:
    log_path = state / "controller.log"
    hub = fleet.clusters["hub"]
    binary = str(Path(sys.executable).parent / "federation")
    keys = demo_key_file(state)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, "run", "--hub-kubeconfig", str(hub.kubeconfig), "--hub-context", hub.context,
             "--database-url", fleet.database_url, "--hub-id", HUB_ID, "--listen", f"127.0.0.1:{port}",
             "--probe-interval", "2", "--grace-period", "30", "--encryption-key-file", str(keys)],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StartupError(f"the controller did not become ready; see {log_path}")
        time.sleep(0.2)  # polling another process's /readyz, under a deadline
    progress(f"controller running (logs: {log_path})")
    return proc


async def _apply_examples(fleet: Any) -> None:
    hub = await _client(fleet, "hub")
    try:
        await _apply(hub, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        for file in ("workloads.yaml", "policies.yaml", "overrides.yaml"):
            for doc in yaml.safe_load_all((EXAMPLES / file).read_text()):
                if doc:
                    await _apply(hub, doc)
            progress(f"applied examples/{file} to the hub")
    finally:
        await hub.close()


@dataclass(frozen=True)
class Cell:
    """One resource in one cluster, as the demo shows it."""

    text: str
    ok: bool
    style: str


@dataclass(frozen=True)
class Row:
    resource: str
    cells: dict[str, Cell]  # the clusters holding a copy (others show "-")

    @property
    def converged(self) -> bool:
        return bool(self.cells) and all(c.ok for c in self.cells.values())


async def _watch(
    fleet: Any,
    port: int,
    exit_when_converged: bool,
    timeout: float,
    stop: dict[str, bool],
    fail: str | None = None,
) -> bool:
    """The live table until Ctrl-C (or convergence); with `fail`, once converged, that member's
    nodes go down and the table follows the failover to convergence again.

    Not on a terminal (a CI log, ``| tee``) a live table would print nothing until the end: a
    plain line per change is printed instead (`Lines`)."""
    from federation.store import Store

    store = await Store.connect(fleet.database_url)
    hub = await _client(fleet, "hub")
    converged_at: float | None = None
    failed_at: float | None = None
    started = time.monotonic()
    live = (
        Live(console=out_console, refresh_per_second=2, transient=False) if out_console.is_terminal else None
    )
    lines = None if live is not None else Lines()
    try:
        with live if live is not None else contextlib.nullcontext():
            while not stop["now"]:
                rows, done = await _rows(store, failed=fail if failed_at is not None else None)
                hub_line, hub_done = await _hub_line(hub)
                # Converged means the members are healthy *and* the hub shows it: the aggregated
                # status is written back coalesced, so it can trail the store.
                if done and hub_done and converged_at is None:
                    converged_at = time.monotonic()
                #: (what it is about, its text, its style): the log prints each once, by the first.
                notes: list[tuple[str, str, str]] = []
                if converged_at is not None and fail is not None and failed_at is None:
                    await anyio.to_thread.run_sync(fleet.nodes.nodes_down, fail)
                    failed_at, converged_at = time.monotonic(), None
                    progress(f"took {fail}'s nodes down: they stop reporting; watch its copies move")
                if failed_at is not None:
                    notes.append(
                        (
                            "failed",
                            f"{fail}'s nodes went down {time.monotonic() - failed_at:.0f}s ago: NotReady "
                            "after the node grace period, failover after the controller's",
                            "bold yellow",
                        )
                    )
                if converged_at is not None:
                    notes.append(
                        (
                            "converged",
                            f"converged in {converged_at - started:.1f}s — try `federation status "
                            f"deployment/web -n shop --database-url {fleet.database_url}`; Ctrl-C to stop",
                            "bold green",
                        )
                    )
                if live is not None:
                    live.update(_screen(rows, hub_line, notes, port))
                else:
                    assert lines is not None
                    for line in lines.changes(rows, hub_line, notes):
                        click.echo(line)
                if exit_when_converged and converged_at is not None:
                    break
                if exit_when_converged and time.monotonic() - started > timeout:
                    break
                await anyio.sleep(1)
    finally:
        with anyio.CancelScope(shield=True):
            await hub.close()
            await store.close()
    return converged_at is not None


def _screen(rows: list[Row], hub_line: str, notes: list[tuple[str, str, str]], port: int) -> Group:
    """The terminal's live view: the table, the hub's aggregated status, where to look next."""
    table = Table(title="federation demo: every resource in every cluster", title_justify="left")
    table.add_column("resource")
    for name, labels in DEMO_CLUSTERS.items():
        table.add_column(f"{name}\n[dim]{_labels(labels)}[/]")
    for row in rows:
        cells = [row.cells.get(c) for c in DEMO_CLUSTERS]
        table.add_row(
            row.resource,
            *(Text("-", style="dim") if c is None else Text(c.text, style=c.style) for c in cells),
        )
    footer = Text()
    footer.append(hub_line + "\n")
    footer.append(RUN_FOR_REAL + "\n", style="dim")
    footer.append(f"status page: http://127.0.0.1:{port}/    metrics: http://127.0.0.1:{port}/metrics\n")
    for _, text, style in notes:
        footer.append(text + "\n", style=style)
    return Group(table, footer)


class Lines:
    """The demo as a log: one plain line per change, no control codes.

    A line when a resource's copy in a cluster changes state, one when a resource has
    converged (every copy applied and healthy), the hub's aggregated status when it changes,
    and each note once."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str], str] = {}
        self._converged: set[str] = set()
        self._hub = ""
        self._notes: set[str] = set()
        self._started = False

    def changes(self, rows: list[Row], hub_line: str, notes: list[tuple[str, str, str]]) -> list[str]:
        out = []
        if not self._started:
            self._started = True
            out.append(f"watching every resource in {', '.join(DEMO_CLUSTERS)}; {RUN_FOR_REAL}")
        for row in rows:
            for cluster, c in row.cells.items():
                if self._cells.get((row.resource, cluster)) != c.text:
                    self._cells[row.resource, cluster] = c.text
                    out.append(f"{row.resource} in {cluster}: {c.text}")
            if row.converged and row.resource not in self._converged:
                self._converged.add(row.resource)
                out.append(f"converged: {row.resource} in {', '.join(sorted(row.cells))}")
            elif not row.converged:
                self._converged.discard(row.resource)
        if hub_line != self._hub:
            self._hub = hub_line
            out.append(hub_line)
        for about, text, _ in notes:
            if about not in self._notes:
                self._notes.add(about)
                out.append(text)
        return out


RUN_FOR_REAL = (
    "each member runs a controller-manager, a scheduler and simulated nodes (kwok): "
    "the replicas are pods that really run there"
)


async def _rows(store: Any, *, failed: str | None = None) -> tuple[list[Row], bool]:
    """Every resource in every cluster, and whether everything converged (with `failed`:
    nothing left there)."""
    statuses = sorted(await store.resource_statuses(), key=lambda s: (s.ref.kind, s.ref.name))
    rows = []
    done = bool(statuses)
    for s in statuses:
        works = {w.cluster: w for w in await store.works_of_resource(s.resource_id)}
        cells = {}
        for cluster in DEMO_CLUSTERS:
            w = works.get(cluster)
            if w is None:
                continue
            if cluster == failed and w.state.value != "orphaned":
                done = False  # converged again once the failed member holds nothing of ours
            replicas = (
                f" {w.replicas_ready or 0}/{w.replicas_desired}" if w.replicas_desired is not None else ""
            )
            ok = w.state.value == "applied" and w.health.value == "Healthy"
            done &= ok
            style = "green" if ok else STATE_COLOURS.get(w.state.value, "yellow")
            cells[cluster] = Cell(f"{w.state.value}{replicas} {w.health.value}", ok, style)
        rows.append(Row(f"{s.ref.kind} {s.ref.namespace}/{s.ref.name}", cells))
    return rows, done and len(statuses) >= 4


async def _hub_line(hub: Any) -> tuple[str, bool]:
    """The hub Deployment's aggregated status as a line, and whether it shows every replica ready."""
    from federation.kube import GVK, Discovery

    try:
        res = await Discovery(hub).resource_for(GVK("apps", "v1", "Deployment"))
        web = await hub.get(res, "web", "shop")
    except KubeError:
        return "hub Deployment shop/web: not there yet", False
    status = web.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    available = conds.get("Available") or {}
    ready, want = status.get("readyReplicas", 0), web["spec"]["replicas"]
    line = (
        f"hub Deployment shop/web (aggregated): {ready}/{want} "
        f"ready, Available={available.get('status', '?')} ({available.get('message', 'no status yet')})"
    )
    return line, ready == want and available.get("status") == "True"
