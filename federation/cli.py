"""The `federation` command.

Errors we raise on purpose (`FederationError`) are printed as one line plus a hint and exit
with status 1; anything else is a bug and shows its traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
from rich.table import Table

from federation import __version__
from federation.commands.base import (
    database_options,
    default_kubeconfig,
    err_console,
    out_console,
    with_database,
)
from federation.errors import ConfigError, FederationError

F = TypeVar("F", bound=Callable[..., Any])


def _leaves(err: BaseException) -> list[BaseException]:
    """The errors inside exception groups (a task group raises its tasks' errors as one)."""
    if isinstance(err, BaseExceptionGroup):
        return [leaf for inner in err.exceptions for leaf in _leaves(inner)]
    return [err]


def _fail(err: BaseException, *, debug: bool) -> NoReturn:
    """One line (plus a hint) per error we raised on purpose, also when a task group wrapped
    them; anything else is an internal error."""
    if debug:
        err_console.print_exception()
    leaves = _leaves(err)
    ours = [leaf for leaf in leaves if isinstance(leaf, FederationError)]
    bugs = [leaf for leaf in leaves if not isinstance(leaf, FederationError)]
    shown: set[str] = set()
    for leaf in ours:
        if str(leaf) in shown:
            continue
        shown.add(str(leaf))
        err_console.print(f"[bold red]error:[/] {leaf}", markup=True, soft_wrap=True)
        if leaf.hint:
            err_console.print(f"[yellow]hint:[/] {leaf.hint}", soft_wrap=True)
    if bugs:
        bug = bugs[0]
        err_console.print(f"[bold red]internal error:[/] {type(bug).__name__}: {bug}", soft_wrap=True)
        if not debug:
            err_console.print("[yellow]hint:[/] run again with --debug for the traceback, and report it")
    sys.exit(1)


class FederationGroup(click.Group):
    """A click group that turns our errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except Exception as exc:
            debug = bool(ctx.find_root().params.get("debug"))
            _fail(exc, debug=debug)


@click.group(cls=FederationGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="federation")
@click.option("--debug", is_flag=True, envvar="FEDERATION_DEBUG", help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """federation: propagate Kubernetes resources from a hub cluster to a fleet of member
    clusters, and aggregate their status back, with per-cluster state in Postgres.

    \b
    Start here:
      federation dev up          a local fleet (hub + members + Postgres) on this machine
      federation dev down        stop it
      federation plan -f policy.yaml -f app.yaml --clusters clusters.yaml
                                 where would it go, and why (a dry run)
    """


# -- dev ---------------------------------------------------------------------------------


@main.command("run")
@click.option(
    "--hub-kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_HUB_KUBECONFIG",
    help="Kubeconfig of the hub cluster [default: $KUBECONFIG or ~/.kube/config].",
)
@click.option("--hub-context", envvar="FEDERATION_HUB_CONTEXT", help="Context of the hub in that kubeconfig.")
@click.option(
    "--database-url",
    envvar="FEDERATION_DATABASE_URL",
    help="Postgres URL (postgresql://user@host:port/db). Without it, an embedded Postgres in "
    "--state-dir is started and used.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FEDERATION_STATE_DIR",
    help="Where the embedded Postgres keeps its data [default: ~/.local/share/federation].",
)
@click.option(
    "--clusters-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_CLUSTERS_FILE",
    help="Member clusters from a file (see clusters.example.yaml), besides MemberCluster objects.",
)
@click.option(
    "--hub-id",
    envvar="FEDERATION_HUB_ID",
    help="This hub's id, stamped on every member copy "
    "[default: derived from the hub's kube-system namespace].",
)
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    envvar="FEDERATION_LISTEN",
    help="Address of /metrics, /healthz, /readyz, the dashboard API (/api/v1), the status page (/) "
    "and the admission webhook (/validate). Any address but loopback needs --api-token or "
    "--client-ca (or --insecure-open-api) for the API and the page.",
)
@click.option(
    "--insecure-open-api",
    is_flag=True,
    envvar="FEDERATION_INSECURE_OPEN_API",
    help="Serve the dashboard API and the status page with no credentials on a non-loopback "
    "--listen address (anyone who reaches the port reads the fleet's state).",
)
@click.option(
    "--webhook/--no-webhook",
    default=True,
    show_default=True,
    envvar="FEDERATION_WEBHOOK",
    help="Serve the validating admission webhook at /validate (apiservers call it over HTTPS only: "
    "see --tls-cert).",
)
@click.option(
    "--leader-election/--no-leader-election",
    default=True,
    show_default=True,
    envvar="FEDERATION_LEADER_ELECTION",
    help="Run as one of several replicas (Postgres advisory lock).",
)
@click.option(
    "--probe-interval",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between /readyz probes of members.",
)
@click.option(
    "--grace-period",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds a member may be NotReady before its workloads fail over.",
)
@click.option(
    "--purge-interval",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between purges, from Postgres, of templates deleted or no longer governed by any "
    "policy (once their copies are gone).",
)
@click.option(
    "--trace",
    is_flag=True,
    envvar="FEDERATION_TRACE",
    help="OpenTelemetry traces of reconciles and applies (needs opentelemetry-sdk; configured by OTEL_*).",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    envvar="FEDERATION_LOG_FORMAT",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="FEDERATION_LOG_LEVEL",
)
@click.option(
    "--api-token",
    envvar="FEDERATION_API_TOKEN",
    help="Require 'Authorization: Bearer TOKEN' for /api/v1 (the status page asks for it). "
    "Prefer FEDERATION_API_TOKEN: a flag shows in the process list.",
)
@click.option(
    "--protect-metrics/--open-metrics",
    default=False,
    show_default=True,
    envvar="FEDERATION_PROTECT_METRICS",
    help="Whether /metrics needs the same credentials as the API (/healthz and /readyz never do).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_TLS_CERT",
    help="Serve HTTPS with this certificate (PEM; with --tls-key); the admission webhook needs it. "
    "`federation webhook certs` writes one.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_TLS_KEY",
    help="The private key of --tls-cert (PEM).",
)
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_CLIENT_CA",
    help="Admit API clients presenting a certificate signed by this CA (mutual TLS; needs --tls-cert).",
)
@click.option(
    "--webhook-client-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_WEBHOOK_CLIENT_CA",
    help="/validate answers only client certificates issued directly by this CA: the one the "
    "apiserver presents (its AdmissionConfiguration's kubeConfigFile). Needs --tls-cert. "
    "Or FEDERATION_WEBHOOK_CLIENT_CA.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    envvar="FEDERATION_HEADER_TIMEOUT",
    help="Seconds a connection may take to send a complete request header (slowloris).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    envvar="FEDERATION_IDLE_TIMEOUT",
    help="Seconds a kept-alive connection may stay idle between requests.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    envvar="FEDERATION_BODY_TIMEOUT",
    help="Seconds a request body (an AdmissionReview) may take to arrive.",
)
@click.option(
    "--tls-handshake-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    envvar="FEDERATION_TLS_HANDSHAKE_TIMEOUT",
    help="Seconds a TLS handshake may take.",
)
@click.option(
    "--credentials-namespace",
    "credentials_namespaces",
    multiple=True,
    default=("fleet-system",),
    show_default=True,
    envvar="FEDERATION_CREDENTIALS_NAMESPACES",
    help="Namespace of the hub where MemberClusters' kubeconfig Secrets live (repeatable; the env "
    "var takes a space-separated list). The controller reads member credentials only there, and "
    "nothing in them is ever propagated.",
)
@click.option(
    "--controller-namespace",
    default="federation-system",
    show_default=True,
    envvar=["FEDERATION_CONTROLLER_NAMESPACE", "POD_NAMESPACE"],
    help="The hub namespace the controller itself runs in: never propagated (member kubeconfig "
    "Secrets may live there too).",
)
@click.option(
    "--deny-namespace",
    "deny_namespaces",
    multiple=True,
    envvar="FEDERATION_DENY_NAMESPACES",
    metavar="GLOB",
    help="Never propagate anything from namespaces matching GLOB (repeatable; e.g. 'infra-*'). "
    "kube-*, the controller's and the credentials namespaces never propagate anyway.",
)
@click.option(
    "--deny-kind",
    "deny_kinds",
    multiple=True,
    envvar="FEDERATION_DENY_KINDS",
    metavar="KIND[.GROUP]",
    help="Never propagate objects of this kind (repeatable): 'ClusterRoleBinding' in any group, "
    "'Certificate.cert-manager.io' in one. Service-account and bootstrap token Secrets, and the "
    "Secrets MemberClusters reference, never propagate anyway.",
)
@click.option(
    "--encryption-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FEDERATION_ENCRYPTION_KEY_FILE",
    help="The keys that seal Secrets' data (and fields marked sensitive) in Postgres with AES-256-GCM: "
    "one ID:BASE64 (32 bytes) per line, the first seals, all open (rotation). `federation keys "
    "generate --out FILE` makes one. Without it, Secrets and sensitive fields are not propagated, "
    "since their values would be stored in plaintext.",
)
@click.option(
    "--sensitive-field",
    "sensitive_fields",
    multiple=True,
    envvar="FEDERATION_SENSITIVE_FIELDS",
    metavar="[GROUP/]KIND:POINTER",
    help="A field whose value is sensitive like a Secret's data (repeatable; the env var takes a "
    "space-separated list): sealed in Postgres, shown as a keyed hash in drift diffs and events. "
    "KIND is ConfigMap for the core group, GROUP/KIND otherwise; POINTER is a JSON pointer, `*` "
    "matching any one key or index. E.g. ConfigMap:/data/password, "
    "apps/Deployment:/spec/template/spec/containers/*/env.",
)
def run(
    hub_kubeconfig: Path | None,
    hub_context: str | None,
    database_url: str | None,
    state_dir: Path | None,
    clusters_file: Path | None,
    hub_id: str | None,
    listen: str,
    webhook: bool,
    leader_election: bool,
    probe_interval: float,
    grace_period: float,
    trace: bool,
    log_format: str,
    log_level: str,
    api_token: str | None,
    protect_metrics: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
    insecure_open_api: bool,
    webhook_client_ca: Path | None,
    header_timeout: float,
    idle_timeout: float,
    body_timeout: float,
    tls_handshake_timeout: float,
    credentials_namespaces: tuple[str, ...],
    controller_namespace: str,
    deny_namespaces: tuple[str, ...],
    deny_kinds: tuple[str, ...],
    purge_interval: float,
    encryption_key_file: Path | None,
    sensitive_fields: tuple[str, ...],
) -> None:
    """Run the controller: place hub templates on member clusters and aggregate their status.

    Watches policies, templates and MemberClusters on the hub, keeps per-cluster state in
    Postgres, applies to members with server-side apply, and writes aggregated status back.

    \b
    Example:
      federation run --hub-kubeconfig hub.yaml --database-url postgresql://fed@db:5432/federation
    """
    from federation import logs
    from federation.clusters import RegistrySettings
    from federation.localdb import database
    from federation.manager import Manager, ManagerConfig
    from federation.sealing import load_key_file
    from federation.server import ServerConfig, Timeouts, server_ssl_context
    from federation.store import migrate
    from federation.translate.sensitive import parse_all

    logs.setup(fmt=log_format, level=log_level)
    from federation.metrics import observe_gc

    _tune_gc()
    observe_gc()
    if trace:
        from federation import tracing

        tracing.enable()
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT")
    server = ServerConfig(
        host=host.strip("[]") or "0.0.0.0",
        port=int(port),
        api_token=api_token,
        protect_metrics=protect_metrics,
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
        webhook_client_ca=webhook_client_ca if webhook else None,
        insecure_open_api=insecure_open_api,
        timeouts=Timeouts(
            header=header_timeout, idle=idle_timeout, body=body_timeout, tls_handshake=tls_handshake_timeout
        ),
    )
    # Errors now, not after connecting to everything: an open API by accident, a bad certificate,
    # a bad --deny-*, key file or sensitive field (each naming its flag).
    server.check_exposure(api=True)
    server_ssl_context(server)
    server.access()
    ManagerConfig(database_url="", deny_namespaces=deny_namespaces, deny_kinds=deny_kinds).protection()
    sensitive = parse_all(sensitive_fields, source="--sensitive-field")
    keys = load_key_file(encryption_key_file) if encryption_key_file is not None else None
    kubeconfig = default_kubeconfig(hub_kubeconfig)
    if not kubeconfig.is_file():
        raise ConfigError(f"hub kubeconfig {kubeconfig}: file not found", hint="pass --hub-kubeconfig PATH")
    with database(database_url, state_dir=state_dir, progress=lambda m: err_console.print(m)) as url:
        anyio.run(migrate.upgrade, url)
        config = ManagerConfig(
            database_url=url,
            hub_kubeconfig=kubeconfig,
            hub_context=hub_context,
            clusters_file=clusters_file,
            hub_id=hub_id,
            leader_election=leader_election,
            server=server,
            webhook=webhook,
            registry=RegistrySettings(probe_interval=probe_interval, grace_period=grace_period),
            credentials_namespaces=frozenset(credentials_namespaces),
            controller_namespace=controller_namespace,
            deny_namespaces=deny_namespaces,
            deny_kinds=deny_kinds,
            purge_interval=purge_interval,
            encryption_keys=keys,
            sensitive_fields=sensitive,
        )
        anyio.run(_run_manager, Manager(config), backend_options=_loop_options())


async def _run_manager(manager: Any) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully (in-flight applies finish).

    SIGUSR1 prints every task's stack to stderr (what is it waiting on?), and keeps running.
    """
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGUSR1) as signals:
                async for sig in signals:
                    if sig == signal.SIGUSR1:
                        _dump_tasks()
                        continue
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        await manager.run()
        tg.cancel_scope.cancel()


def _tune_gc() -> None:
    """Fewer, cheaper collections for a process whose heap is mostly long-lived caches.

    The informer caches hold every watched object as plain dicts; with the default thresholds
    the collector rescans them over and over (measured: a fifth of the controller's CPU, and
    200 ms pauses that stall every loop). Young objects are still collected promptly.
    """
    import gc

    gc.set_threshold(50_000, 20, 100)


def _loop_options() -> dict[str, Any]:
    """uvloop when it is installed: the controller spends its time in the event loop."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _dump_tasks() -> None:
    import asyncio

    tasks = asyncio.all_tasks()
    print(f"==== {len(tasks)} tasks ====", file=sys.stderr)
    for task in tasks:
        task.print_stack(limit=8, file=sys.stderr)
    sys.stderr.flush()


@main.group()
def dev() -> None:
    """A local fleet for development: real kube-apiservers and an embedded Postgres.

    The control planes are built once from the Kubernetes Go modules (several minutes on a
    cold machine; cached under ~/.cache/federation afterwards). No Docker needed.
    """


def _state_dir_option(f: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="FEDERATION_DEV_STATE_DIR",
        help="Where the fleet keeps etcd data, certificates, kubeconfigs, Postgres and logs "
        "[default: ~/.local/share/federation/dev].",
    )(f)


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
@_state_dir_option
def dev_up(members: int, no_hub: bool, no_postgres: bool, state_dir: Path | None) -> None:
    """Start a local fleet in the foreground; Ctrl-C stops it.

    \b
    Example:
      federation dev up --members 2
      KUBECONFIG=~/.local/share/federation/dev/controlplane/kubeconfig kubectl --context member-1 get ns
    """
    from federation.devfleet import default_state_dir

    _run_fleet_in_foreground(
        members=members, hub=not no_hub, postgres=not no_postgres, state_dir=state_dir or default_state_dir()
    )


def _run_fleet_in_foreground(*, members: int, hub: bool, postgres: bool, state_dir: Path) -> None:
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
def dev_down(state_dir: Path | None, timeout: float) -> None:
    """Stop the local fleet started by `federation dev up` (in another terminal)."""
    from federation.devfleet import default_state_dir, read_state, state_dir_busy
    from federation.errors import DevFleetError

    state = state_dir or default_state_dir()
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
def dev_status(state_dir: Path | None) -> None:
    """Show the local fleet recorded in the state directory, as JSON."""
    from federation.devfleet import default_state_dir, read_state
    from federation.errors import DevFleetError

    state = state_dir or default_state_dir()
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


# -- policy tooling ----------------------------------------------------------------------


@main.command("plan")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file of policies, override policies and templates (repeatable; multi-document).",
)
@click.option(
    "--clusters",
    "clusters_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The clusters file (see clusters.example.yaml).",
)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Format."
)
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    help="Namespace of namespaced objects that name none (as kubectl apply does).",
)
@click.option("--hub-id", default="hub", show_default=True, help="Hub id stamped on the member copies.")
def plan(files: tuple[Path, ...], clusters_file: Path, output: str, namespace: str, hub_id: str) -> None:
    """Explain, without touching any cluster, where each template would go and why.

    For every template: the policy that governs it (and those it overrides), then every
    cluster with chosen?, replicas and the reason, then what the override policies change in
    each chosen cluster's copy. Exits 1 if an override cannot be applied.

    \b
    Example:
      federation plan -f examples/policies.yaml -f examples/workloads.yaml \\
          --clusters examples/clusters.yaml
    """
    from federation.plan import build_plan, load_plan_inputs, render_json, render_text

    inputs = load_plan_inputs(files=files, clusters_file=clusters_file, namespace=namespace)
    report = build_plan(inputs, hub=hub_id)
    click.echo(render_json(report) if output == "json" else render_text(report), nl=False)
    if report.errors:
        sys.exit(1)


@main.command("crds")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deploy/crds"),
    show_default=True,
    help="Where the CRD files go.",
)
@click.option("--check", is_flag=True, help="Only compare: exit 1 if the files differ from the models.")
def crds(output_dir: Path, check: bool) -> None:
    """Write the CustomResourceDefinitions generated from the API models.

    \b
    Example:
      federation crds && kubectl apply -f deploy/crds/
      federation crds --check      # in CI: are the checked-in CRDs up to date?
    """
    from federation.api import render_crds
    from federation.errors import ConfigError

    rendered = render_crds()
    if check:
        stale = [
            name
            for name, text in rendered.items()
            if not (output_dir / name).is_file() or (output_dir / name).read_text(encoding="utf-8") != text
        ]
        if stale:
            raise ConfigError(
                f"CRDs in {output_dir} differ from the models: {', '.join(sorted(stale))}",
                hint="run `federation crds` and commit the result",
            )
        out_console.print(f"{len(rendered)} CRDs in {output_dir} are up to date")
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (output_dir / name).write_text(text, encoding="utf-8")
    out_console.print(f"wrote {len(rendered)} CRDs to {output_dir}")


# -- db --------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The Postgres state store: schema migrations.

    \b
    Which database: --database-url (or FEDERATION_DATABASE_URL); with neither, an embedded
    Postgres with its data in STATE_DIR/db, started for the command and stopped after it
    (STATE_DIR: --state-dir, FEDERATION_STATE_DIR, or ~/.local/share/federation).
    """


def _where(database_url: str | None, state_dir: Path | None) -> str:
    from federation.localdb import default_state_dir
    from federation.store.url import describe

    if database_url:
        return describe(database_url)
    return f"the embedded database in {(state_dir or default_state_dir()) / 'db'}"


def _revision_label(revision: str | None, head: str) -> str:
    if revision is None:
        return "none (empty database)"
    return f"{revision} (head)" if revision == head else revision


@db.command("upgrade")
@click.argument("revision", default="head")
@database_options
def db_upgrade(revision: str, database_url: str | None, state_dir: Path | None) -> None:
    """Upgrade the schema to REVISION (default: head, the newest)."""
    from federation.store import migrate

    head = migrate.head_revision()
    result = with_database(database_url, state_dir, lambda url: migrate.upgrade(url, revision))
    where = _where(database_url, state_dir)
    before, after = _revision_label(result.before, head), _revision_label(result.after, head)
    message = f"{where}: already at {after}" if before == after else f"{where}: upgraded {before} → {after}"
    out_console.print(message, soft_wrap=True)


@db.command("downgrade")
@click.argument("revision")
@database_options
def db_downgrade(revision: str, database_url: str | None, state_dir: Path | None) -> None:
    """Downgrade the schema to REVISION ('base' removes every table and view)."""
    from federation.store import migrate

    head = migrate.head_revision()
    result = with_database(database_url, state_dir, lambda url: migrate.downgrade(url, revision))
    where = _where(database_url, state_dir)
    before, after = _revision_label(result.before, head), _revision_label(result.after, head)
    out_console.print(f"{where}: downgraded {before} → {after}", soft_wrap=True)


@db.command("current")
@database_options
def db_current(database_url: str | None, state_dir: Path | None) -> None:
    """Show the schema revision of the database (and whether it is the newest)."""
    from federation.store import migrate

    head = migrate.head_revision()
    current = with_database(database_url, state_dir, migrate.current)
    out_console.print(_revision_label(current, head))
    if current != head:
        err_console.print(
            f"[yellow]hint:[/] the newest revision is {head}: run `federation db upgrade`", soft_wrap=True
        )


# -- webhook -----------------------------------------------------------------------------


@main.group()
def webhook() -> None:
    """The validating admission webhook that `federation run` serves at /validate (over HTTPS).

    \b
    Example (a local hub, the controller on this machine):
      federation webhook certs --dir certs --dns 127.0.0.1
      federation run --tls-cert certs/tls.crt --tls-key certs/tls.key --listen 127.0.0.1:8443 ...
      federation webhook config --ca-cert certs/ca.crt --url https://127.0.0.1:8443/validate \\
          | kubectl apply -f -
    """


@webhook.command("certs")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write ca.crt, tls.crt and tls.key.",
)
@click.option(
    "--dns",
    "names",
    multiple=True,
    required=True,
    help="A name the apiserver dials (repeat): SERVICE.NAMESPACE.svc in a cluster, or an IP.",
)
@click.option("--days", type=int, default=365, show_default=True, help="Validity of both certificates.")
def webhook_certs(directory: Path, names: tuple[str, ...], days: int) -> None:
    """Write a self-signed CA and a serving certificate for the webhook.

    The CA's base64 is the caBundle of the ValidatingWebhookConfiguration (`federation webhook
    config` puts it there). For production, prefer cert-manager or your own CA.

    \b
    Example:
      federation webhook certs --dir certs --dns federation.federation-system.svc
    """
    from federation.server import generate_certs

    paths = generate_certs(directory, names=list(names), days=days)
    out_console.print(f"CA certificate:      {paths.ca_cert}")
    out_console.print(f"serving certificate: {paths.tls_cert} (for {', '.join(names)})")
    out_console.print(f"serving key:         {paths.tls_key}")
    out_console.print(
        f"next: federation run --tls-cert {paths.tls_cert} --tls-key {paths.tls_key} ...", soft_wrap=True
    )


@webhook.command("config")
@click.option(
    "--ca-cert",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The CA that signed the serving certificate (its base64 becomes caBundle).",
)
@click.option("--url", help="Where the apiserver calls the webhook, e.g. https://127.0.0.1:8443/validate.")
@click.option("--service", help="Or a Service in the hub: NAMESPACE/NAME[:PORT] (port 443 by default).")
@click.option(
    "--failure-policy",
    type=click.Choice(["Ignore", "Fail"]),
    default="Ignore",
    show_default=True,
    help="What the apiserver does when the webhook does not answer (Ignore: admit).",
)
def webhook_config(ca_cert: Path, url: str | None, service: str | None, failure_policy: str) -> None:
    """Print the ValidatingWebhookConfiguration (YAML) for `kubectl apply -f -`.

    \b
    Example:
      federation webhook config --ca-cert certs/ca.crt --service federation-system/federation:443
    """
    import base64

    import yaml

    from federation.server import webhook_configuration

    if (url is None) == (service is None):
        raise ConfigError("give exactly one of --url or --service")
    target: tuple[str, str, int] | None = None
    if service is not None:
        ref, _, port = service.partition(":")
        namespace, _, name = ref.partition("/")
        if not namespace or not name or (port and not port.isdigit()):
            raise ConfigError(f"--service {service!r}: expected NAMESPACE/NAME[:PORT]")
        target = (namespace, name, int(port or 443))
    manifest = webhook_configuration(
        ca_bundle=base64.b64encode(ca_cert.read_bytes()).decode(),
        url=url,
        service=target,
        failure_policy=failure_policy,
    )
    click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)


from federation.commands import register  # noqa: E402 - after `main` exists

register(main)

if __name__ == "__main__":  # pragma: no cover
    main()
