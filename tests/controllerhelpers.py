"""The controller as its own process (`federation run`), for tests that crash and restart it,
and helpers to read what it wrote to Postgres."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import anyio
import asyncpg

from federation.devfleet import ClusterInfo, LocalFleet
from federation.devfleet.procs import free_port, tail

FEDERATION = str(Path(sys.executable).parent / "federation")
DEFAULT_PORT = 8080
"""The port of `federation run`'s default --listen (127.0.0.1:8080)."""
TEST_REPLICAS = int(os.environ.get("FEDERATION_TEST_REPLICAS", "1"))
"""Replicas `running_controller` starts (FEDERATION_TEST_REPLICAS): with 2 or more, the tests
written for one controller run against several sharing the members (`ControllerReplicas`)."""
#: Seconds a controller gets to stop after SIGTERM (Kubernetes gives a pod 30 by default).
STOP_TIMEOUT = 45


class ControllerProcess:
    """`federation run` against the fleet's hub, with fast probes for tests."""

    def __init__(
        self,
        fleet: LocalFleet,
        *,
        database_url: str,
        hub_id: str | None,
        log_path: Path,
        grace_period: float = 8.0,
        extra_args: Sequence[str] = (),
        scheme: str = "http",
        ca_file: Path | None = None,
        hub_kubeconfig: Path | None = None,
        hub_context: str | None = None,
        encryption_key_file: Path | bool = True,
        default_listen: bool = False,
        executable: str = FEDERATION,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``extra_args`` go after ``run``'s own; with ``scheme="https"`` (``--tls-cert`` among
        them), ``ca_file`` is the CA the tests trust to poll /readyz and read /metrics.
        ``hub_id=None`` lets the controller derive it; ``hub_kubeconfig`` (and ``hub_context``)
        replace the fleet's admin kubeconfig of the hub, e.g. by a ServiceAccount's.
        ``executable``: the `federation` command to run (another install's, e.g. from a wheel),
        ``env`` its environment (default: the session's, when it starts).

        ``encryption_key_file``: True (the default, as every real installation has one) makes a
        key file of this controller's own beside its log, kept across its restarts; a path uses
        that file; False runs it without a key. ``default_listen`` gives no ``--listen`` (nor
        FEDERATION_LISTEN): the default address."""
        self.fleet = fleet
        #: More `federation run` flags (e.g. --api-token), after the ones every test needs.
        self.extra_args = list(extra_args)
        self.database_url = database_url
        self.hub_id = hub_id
        self.hub_kubeconfig = hub_kubeconfig
        self.hub_context = hub_context
        self.log_path = log_path
        self.grace_period = grace_period
        self.scheme = scheme
        self._ssl = ssl.create_default_context(cafile=ca_file) if scheme == "https" else None
        self.default_listen = default_listen
        self.executable = executable
        self.env = env
        self.port = DEFAULT_PORT if default_listen else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: The --encryption-key-file it runs with (None: no key); may be changed between starts.
        self.encryption_key_file: Path | None = None
        if encryption_key_file is True:
            from federation.sealing import write_new_key_file

            self.encryption_key_file = log_path.with_name(f"{log_path.stem}-{secrets.token_hex(3)}.keys")
            write_new_key_file(self.encryption_key_file)
        elif isinstance(encryption_key_file, Path):
            self.encryption_key_file = encryption_key_file

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _open(self, path: str, *, timeout: float) -> HTTPResponse:
        response: HTTPResponse = urllib.request.urlopen(self.url + path, timeout=timeout, context=self._ssl)
        return response

    def api(self, path: str, *, timeout: float = 10) -> Any:
        """GET one path of the controller's HTTP API, as JSON."""
        with self._open(path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def start(self, *, timeout: float = 90) -> None:
        self.launch()
        self.wait_ready(timeout=timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to be ready (`wait_ready`)."""
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        log.write(f"\n==== start {self.starts} ====\n".encode())
        log.flush()
        hub = self.fleet.clusters["hub"]
        if self.hub_kubeconfig is not None:
            connect = ["--hub-kubeconfig", str(self.hub_kubeconfig)]
            connect += ["--hub-context", self.hub_context] if self.hub_context else []
        else:
            connect = ["--hub-kubeconfig", str(hub.kubeconfig), "--hub-context", hub.context]
        try:
            self.proc = subprocess.Popen(
                [
                    self.executable,
                    "--debug",
                    "run",
                    *connect,
                    "--database-url",
                    self.database_url,
                    *(["--hub-id", self.hub_id] if self.hub_id is not None else []),
                    *([] if self.default_listen else ["--listen", f"127.0.0.1:{self.port}"]),
                    "--probe-interval",
                    "1",
                    "--grace-period",
                    str(self.grace_period),
                    "--log-format",
                    "console",
                    "--log-level",
                    os.environ.get("FEDERATION_TEST_LOG_LEVEL", "info"),
                    *(
                        ["--encryption-key-file", str(self.encryption_key_file)]
                        if self.encryption_key_file is not None
                        else []
                    ),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in (self.env or os.environ).items() if k != "FEDERATION_LISTEN"},
            )
        finally:
            log.close()

    def wait_ready(self, *, timeout: float = 90) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the controller exited ({self.proc.returncode}):\n{tail(self.log_path, 40)}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the controller was not ready within {timeout}s:\n{tail(self.log_path, 40)}"
                )
            time.sleep(0.2)  # polling another process's /readyz, under a deadline

    def ready(self) -> bool:
        try:
            with self._open("/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        stalled = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stalled = True
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None
        # A controller that does not stop on SIGTERM is a bug (a rolling update would wait out
        # its grace period and SIGKILL it, unrecorded work and all): it fails the test.
        assert not stalled, (
            f"the controller did not stop within {STOP_TIMEOUT}s of SIGTERM (killed); its log:\n"
            + self.log_tail(40)
        )

    def metrics(self) -> str:
        with self._open("/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, metric: str, **labels: str) -> float:
        """Sum of a metric's samples matching `labels` (0 when absent)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(metric + "{") and not line.startswith(metric + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log_tail(self, n: int = 60) -> str:
        return tail(self.log_path, n)


class ControllerReplicas:
    """Several `federation run` replicas on one database, standing for "the controller" in tests
    written for one process: started, stopped and killed together, ready when all are, and
    their metrics summed (each member's counters live in the replica that owns it).

    Tests of what one replica does while the others run use the `ControllerProcess`es in
    `replicas` directly (tests/integration/test_sharding.py)."""

    def __init__(self, replicas: Sequence[ControllerProcess]) -> None:
        assert replicas
        self.replicas = list(replicas)
        self.database_url = replicas[0].database_url
        self.log_path = replicas[0].log_path

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.replicas[0].proc

    @property
    def url(self) -> str:
        return self.replicas[0].url

    def start(self, *, timeout: float = 90) -> None:
        for r in self.replicas:
            r.launch()
        for r in self.replicas:
            r.wait_ready(timeout=timeout)

    def ready(self) -> bool:
        return all(r.ready() for r in self.replicas)

    def stop(self, *, kill: bool = False) -> None:
        for r in self.replicas:
            r.stop(kill=kill)

    def metrics(self) -> str:
        return "\n".join(r.metrics() for r in self.replicas)

    def metric(self, metric: str, **labels: str) -> float:
        return sum(r.metric(metric, **labels) for r in self.replicas)

    def api(self, path: str, *, timeout: float = 10) -> Any:
        """Every replica serves the API from the same database: the first answers."""
        return self.replicas[0].api(path, timeout=timeout)

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(f"---- {r.log_path}\n{r.log_tail(n)}" for r in self.replicas)


def replica_processes(
    fleet: LocalFleet,
    *,
    database_url: str,
    hub_id: str,
    log_dir: Path,
    ids: Sequence[str],
    lease_ttl: float,
    grace_period: float = 8.0,
    extra_args: Sequence[str] = (),
) -> list[ControllerProcess]:
    """One `ControllerProcess` per replica id, on one database, each with its own log and port,
    all with one encryption key file (every replica opens what another sealed)."""
    key_file = log_dir / "replicas.keys"
    if not key_file.exists():
        from federation.sealing import write_new_key_file

        write_new_key_file(key_file)
    return [
        ControllerProcess(
            fleet,
            database_url=database_url,
            hub_id=hub_id,
            log_path=log_dir / f"run-{rid}.log",
            grace_period=grace_period,
            extra_args=[*extra_args, "--replica-id", rid, "--lease-ttl", str(lease_ttl)],
            encryption_key_file=key_file,
        )
        for rid in ids
    ]


def kubectl(fleet: LocalFleet, context: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    binary = str(Path(sys.executable).parent / "kubectl")
    env = dict(os.environ, KUBECONFIG=str(fleet.kubeconfig))
    proc = subprocess.run(
        [binary, "--context", context, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl --context {context} {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def apply(fleet: LocalFleet, context: str, *objs: dict[str, Any]) -> None:
    """`kubectl apply` of these objects (one List) in `context`."""
    kubectl(
        fleet,
        context,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}),
    )


def get(
    fleet: LocalFleet, context: str, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    """The object as `kubectl get -o json` shows it, or None when it does not exist."""
    ns = ["-n", namespace] if namespace else []
    out = kubectl(fleet, context, *ns, "get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


async def policy_seen(fleet: LocalFleet, kind: str, namespace: str, *names: str) -> None:
    """Wait until the controller holds the current version of these policies: it has written
    their status for their current generation (``status.observedGeneration``).

    Policies and templates reach the controller through separate watches, in no particular
    order: a test whose next step must meet a policy change (an override the first copy must
    carry, a suspension the next template change must find) waits for this first.
    """
    from tests.kubehelpers import eventually

    async def seen() -> bool:
        for name in names:
            obj = get(fleet, "hub", kind, name, namespace) or {}
            generation = (obj.get("metadata") or {}).get("generation")
            observed = (obj.get("status") or {}).get("observedGeneration")
            assert generation is not None and observed == generation, (
                f"{kind} {name}: {observed} != {generation}"
            )
        return True

    await eventually(seen, timeout=30, what=f"the controller holding {kind} {', '.join(names)}")


def register_members(fleet: LocalFleet, labels: dict[str, dict[str, str]]) -> None:
    """MemberCluster objects + kubeconfig Secrets on the hub for the fleet's members."""
    for name, member_labels in labels.items():
        register_member(fleet, fleet.clusters[name], member_labels)


def register_member(fleet: LocalFleet, cluster: ClusterInfo, labels: dict[str, str]) -> None:
    """A MemberCluster + kubeconfig Secret on `fleet`'s hub for `cluster` (which may belong to
    another local fleet: a member added to the session's for one module)."""
    kubectl(
        fleet,
        "hub",
        "apply",
        "-f",
        "-",
        stdin='{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fleet-system"}}',
    )
    name = cluster.name
    data = base64.b64encode(cluster.kubeconfig.read_bytes()).decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "fleet-system"},
        "data": {"kubeconfig": data},
    }
    mc = {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "MemberCluster",
        "metadata": {"name": name, "labels": labels},
        "spec": {"kubeconfigSecretRef": {"namespace": "fleet-system", "name": name, "key": "kubeconfig"}},
    }
    kubectl(fleet, "hub", "apply", "-f", "-", stdin=json.dumps(secret))
    kubectl(fleet, "hub", "apply", "-f", "-", stdin=json.dumps(mc))


async def works(database_url: str, namespace: str) -> list[dict[str, Any]]:
    """The works of one namespace's resources, as the dashboard view shows them."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT w.id, r.kind, r.name, w.cluster, w.state::text AS state, w.attempts, w.last_error,
                      w.desired_hash, w.applied_hash, w.member_resource_version, w.version
               FROM works w JOIN resources r ON r.id = w.resource_id
               WHERE r.namespace = $1 ORDER BY r.name, w.cluster""",
            namespace,
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def events(database_url: str, namespace: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, cluster, name, message, details FROM events WHERE namespace = $1 ORDER BY time",
            namespace,
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_controller(
    fleet: LocalFleet,
    *,
    hub_id: str,
    log_dir: Path,
    labels: dict[str, dict[str, str]],
    grace_period: float = 8.0,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[ControllerProcess]:
    """`federation run` on a database of its own, with the members joined; stopped and the
    database dropped afterwards. One per test module (module-scoped fixtures use it).
    ``extra_args`` are more `federation run` flags."""
    from tests.storehelpers import create_database, drop_database

    name = f"{hub_id.replace('-', '_')}_{secrets.token_hex(4)}"
    url = await create_database(fleet.database_url, name)
    await anyio.to_thread.run_sync(register_members, fleet, labels)
    proc: ControllerProcess | ControllerReplicas
    if TEST_REPLICAS > 1:
        proc = ControllerReplicas(
            replica_processes(
                fleet,
                database_url=url,
                hub_id=hub_id,
                log_dir=log_dir,
                ids=[f"{hub_id}-{i}" for i in range(TEST_REPLICAS)],
                lease_ttl=4.0,
                grace_period=grace_period,
                extra_args=extra_args,
            )
        )
    else:
        proc = ControllerProcess(
            fleet,
            database_url=url,
            hub_id=hub_id,
            log_path=log_dir / "run.log",
            grace_period=grace_period,
            extra_args=extra_args,
        )
    await anyio.to_thread.run_sync(proc.start)
    try:
        yield proc  # type: ignore[misc]  # the same interface, as far as these tests go
    finally:
        await anyio.to_thread.run_sync(proc.stop)
        print(f"controller log: {proc.log_path}")
        await drop_database(fleet.database_url, name)
