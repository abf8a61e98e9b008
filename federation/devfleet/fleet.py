"""`LocalFleet`: a hub, N members and an embedded Postgres on this machine, in one call.

Used by the test suite (one fleet per session), the demo, the benchmarks and
``federation dev up``. Everything runs as child processes of the caller and is torn down by
`stop()`/the context manager; a second fleet on the same state directory is refused.

    with LocalFleet(members=3) as fleet:
        fleet.clusters["member-1"].kubeconfig, fleet.database_url
        fleet.stop_cluster("member-1"); fleet.start_cluster("member-1")

    async with LocalFleet(members=2) as fleet:   # start/stop run in a worker thread
        ...
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio

from federation.devfleet.backend import ClusterInfo, FleetBackend, Progress
from federation.devfleet.controlplane import ControlPlaneBackend
from federation.devfleet.light import LIGHT_ENV, member_args
from federation.devfleet.nodes import FleetNodes, NodeShape
from federation.devfleet.postgres import EmbeddedPostgres
from federation.errors import DevFleetError, StateDirBusyError

HUB = "hub"
STATE_FILE = "devfleet.json"


def member_names(n: int) -> list[str]:
    return [f"member-{i}" for i in range(1, n + 1)]


def default_state_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "federation" / "dev"


@dataclass
class FleetInfo:
    """What a running fleet offers; also written to ``STATE_DIR/devfleet.json``."""

    state_dir: Path
    kubeconfig: Path
    clusters: dict[str, ClusterInfo]
    hub: str | None
    members: list[str]
    database_url: str | None
    backend: str
    owner_pid: int = field(default_factory=os.getpid)

    def to_json(self) -> dict[str, Any]:
        return {
            "stateDir": str(self.state_dir),
            "kubeconfig": str(self.kubeconfig),
            "hub": self.hub,
            "members": self.members,
            "databaseURL": self.database_url,
            "backend": self.backend,
            "ownerPID": self.owner_pid,
            "clusters": {
                n: {"server": c.server, "kubeconfig": str(c.kubeconfig), "context": c.context}
                for n, c in self.clusters.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetInfo:
        return cls(
            state_dir=Path(data["stateDir"]),
            kubeconfig=Path(data["kubeconfig"]),
            hub=data["hub"],
            members=list(data["members"]),
            database_url=data["databaseURL"],
            backend=data["backend"],
            owner_pid=int(data["ownerPID"]),
            clusters={
                n: ClusterInfo(
                    name=n,
                    server=c["server"],
                    kubeconfig=Path(c["kubeconfig"]),
                    context=c["context"],
                )
                for n, c in data["clusters"].items()
            },
        )


def read_state(state_dir: Path) -> FleetInfo | None:
    """The fleet recorded in `state_dir`, if its state file is there."""
    try:
        return FleetInfo.from_json(json.loads((state_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError):
        return None


def state_dir_busy(state_dir: Path) -> bool:
    """Whether a fleet still holds `state_dir` (its lock is released only once all is stopped).

    Checking the lock rather than the owner's pid is what makes `dev down` right even when the
    owner is a zombie its parent has not reaped yet.
    """
    path = state_dir / "devfleet.lock"
    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


class LocalFleet:
    """A local fleet: control planes from a `FleetBackend` plus an embedded Postgres."""

    def __init__(
        self,
        members: int = 3,
        *,
        hub: bool = True,
        state_dir: Path | None = None,
        backend: FleetBackend | None = None,
        postgres: bool = True,
        progress: Progress | None = None,
        ready_timeout: float = 180.0,
        apiserver_args: Sequence[str] = (),
        names: Sequence[str] | None = None,
        light: bool = False,
        env: Mapping[str, str] | None = None,
        workloads: bool = False,
        nodes_per_member: int = 3,
        node_shapes: Mapping[str, NodeShape] | None = None,
        node_monitor_grace_period: float = 20.0,
    ) -> None:
        """``light=True`` starts the members with the light profile (`devfleet.light`): fewer
        API groups and less memory each, for big fleets; the hub is the same either way.
        ``env`` is added to the environment of the control planes (e.g. the Go runtime's GOGC).

        ``workloads=True``: every member also runs a controller-manager, a scheduler and kwok,
        with ``nodes_per_member`` simulated nodes each (shaped per member by ``node_shapes``,
        by member name; `NodeShape()` otherwise), so workloads run and report status as in a
        real cluster (`federation.devfleet.nodes`; faults through `fleet.nodes`). The hub stays
        a bare apiserver: it holds templates, it runs nothing.
        """
        if members < 0:
            raise DevFleetError(f"members must be 0 or more, not {members}")
        if (light or env or workloads) and backend is not None:
            raise DevFleetError(
                "light, env and workloads are options of the controlplane backend, not of a given one"
            )
        if workloads and nodes_per_member < 0:
            raise DevFleetError(f"nodes_per_member must be 0 or more, not {nodes_per_member}")
        if names is not None and (len(names) != members or HUB in names or len(set(names)) != len(names)):
            raise DevFleetError(
                f"names {list(names)}: need {members} distinct member names, none called {HUB!r}"
            )
        self.names = ([HUB] if hub else []) + (list(names) if names is not None else member_names(members))
        if not self.names:
            raise DevFleetError("a fleet needs at least one cluster (a hub or a member)")
        self._ephemeral = state_dir is None
        self.state_dir = (state_dir or Path(tempfile.mkdtemp(prefix="federation-fleet-"))).resolve()
        if light:
            apiserver_args = [*member_args([n for n in self.names if n != HUB]), *apiserver_args]
            env = {**LIGHT_ENV, **(env or {})}
        self.workload_members = [n for n in self.names if n != HUB] if workloads else []
        self.nodes_per_member = nodes_per_member
        self.node_shapes = dict(node_shapes or {})
        unknown = set(self.node_shapes) - set(self.workload_members)
        if unknown:
            raise DevFleetError(f"node_shapes for {sorted(unknown)}: not workload members of this fleet")
        self.backend: FleetBackend = backend or ControlPlaneBackend(
            self.state_dir / "controlplane",
            ready_timeout=ready_timeout,
            apiserver_args=apiserver_args,
            env=env,
            workloads=self.workload_members,
            node_monitor_grace_period=node_monitor_grace_period,
        )
        self.postgres = EmbeddedPostgres(self.state_dir / "postgres") if postgres else None
        self.progress: Progress = progress or (lambda _m: None)
        self._hub = hub
        self._lock: IO[str] | None = None
        self.info: FleetInfo | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FleetInfo:
        started = time.monotonic()
        self._acquire_lock()
        try:
            database_url = None
            if self.postgres is not None:
                database_url = self.postgres.start()
                self.progress(f"postgres ready at {database_url}")
            clusters = self.backend.start(self.names, progress=self.progress)
            self.info = FleetInfo(
                state_dir=self.state_dir,
                kubeconfig=self.backend.merged_kubeconfig(),
                clusters=clusters,
                hub=HUB if self._hub else None,
                members=[n for n in self.names if n != HUB],
                database_url=database_url,
                backend=self.backend.name,
            )
            (self.state_dir / STATE_FILE).write_text(json.dumps(self.info.to_json(), indent=2))
            if self.workload_members:
                self._start_nodes()
        except BaseException:
            self.stop()
            raise
        self.progress(f"fleet of {len(self.names)} clusters ready in {time.monotonic() - started:.1f}s")
        return self.info

    def stop(self) -> None:
        """Stop everything this fleet started. Idempotent; never raises for a half-started fleet."""
        errors: list[str] = []
        try:
            self.backend.stop()
        except Exception as exc:
            errors.append(f"control planes: {exc}")
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except Exception as exc:
                errors.append(f"postgres: {exc}")
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        self._release_lock()
        if self._ephemeral:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.info = None
        if errors:
            raise DevFleetError("stopping the fleet: " + "; ".join(errors))

    def __enter__(self) -> LocalFleet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalFleet:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    def _acquire_lock(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "devfleet.lock"
        f = open(path, "a+")  # noqa: SIM115 - held open: the flock lives as long as the fleet
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise StateDirBusyError(
                f"state directory {self.state_dir} is already in use by a running fleet (pid {holder})",
                hint="stop it with `federation dev down`, or use another --state-dir",
            ) from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock = f

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.truncate(0)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _start_nodes(self) -> None:
        nodes = self.nodes
        t0 = time.monotonic()
        for member in self.workload_members:
            if not nodes.nodes(member):  # a fleet restarted on its state directory keeps them
                nodes.add_nodes(member, self.nodes_per_member, self.node_shapes.get(member))
        for member in self.workload_members:
            nodes.wait_ready(member, timeout=60)
        self.progress(
            f"{self.nodes_per_member} simulated nodes Ready in each of {', '.join(self.workload_members)}"
            f" ({time.monotonic() - t0:.1f}s)"
        )

    # -- what tests need ---------------------------------------------------------------

    @property
    def nodes(self) -> FleetNodes:
        """The simulated nodes of the workload members, and their faults."""
        backend = self.backend
        kubelets = None
        if isinstance(backend, ControlPlaneBackend):

            def kubelets(cluster: str, running: bool) -> None:
                backend.component(cluster, "kwok", "start" if running else "stop")

        return FleetNodes(self.kubeconfig, self.workload_members, kubelets)

    @property
    def clusters(self) -> dict[str, ClusterInfo]:
        return self._running().clusters

    @property
    def kubeconfig(self) -> Path:
        """The merged kubeconfig: one context per cluster, named after the cluster."""
        return self._running().kubeconfig

    @property
    def members(self) -> list[str]:
        return self._running().members

    @property
    def database_url(self) -> str:
        url = self._running().database_url
        if url is None:
            raise DevFleetError("this fleet was started without postgres")
        return url

    def _running(self) -> FleetInfo:
        if self.info is None:
            raise DevFleetError("the fleet is not running")
        return self.info

    def stop_cluster(self, name: str, *, kill: bool = False) -> None:
        self.backend.stop_cluster(name, kill=kill)

    def start_cluster(self, name: str) -> None:
        self.backend.start_cluster(name)

    def restart_cluster(self, name: str, *, kill: bool = False) -> None:
        self.backend.stop_cluster(name, kill=kill)
        self.backend.start_cluster(name)

    def cluster_pid(self, name: str) -> int | None:
        return self.backend.cluster_pid(name)

    def compact_etcd(self) -> int:
        return self.backend.compact()

    def restart_postgres(self, *, kill: bool = False) -> None:
        if self.postgres is None:
            raise DevFleetError("this fleet was started without postgres")
        self.postgres.restart(kill=kill)
