"""The default fleet backend: our `controlplane` binary (embedded etcd + real kube-apiservers).

We start `controlplane fleet --progress json` as a child process, relay its progress events,
and read `fleet.json` once it reports ready. Fault injection goes through the small control
API the binary serves on loopback.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from federation.devfleet.backend import ClusterInfo, Progress
from federation.devfleet.build import ensure_binary
from federation.devfleet.procs import die_with_parent, terminate
from federation.errors import DevFleetError, PortInUseError, StartupError, StateDirBusyError


class ControlPlaneBackend:
    """Runs every cluster of the fleet with the `controlplane` binary built from Go modules."""

    name = "controlplane"

    def __init__(
        self,
        state_dir: Path,
        *,
        ready_timeout: float = 180.0,
        ports: dict[str, int] | None = None,
        apiserver_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        workloads: Sequence[str] = (),
        node_monitor_grace_period: float = 20.0,
    ) -> None:
        """``env`` is added to ours for the binary and, through it, every apiserver (the Go
        runtime's GOGC and the like: they are read at a process's start, not by flags).
        ``workloads``: the clusters that also run a controller-manager, a scheduler and kwok;
        ``node_monitor_grace_period``: how long their nodes may stop reporting before they are
        NotReady (seconds; a real cluster's default is 40)."""
        self.state_dir = state_dir
        self.ready_timeout = ready_timeout
        self.ports = dict(ports or {})
        self.apiserver_args = list(apiserver_args)
        self.env = dict(env or {})
        self.workloads = list(workloads)
        self.node_monitor_grace_period = node_monitor_grace_period
        self._proc: subprocess.Popen[str] | None = None
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._state: dict[str, Any] = {}
        self._output: list[str] = []
        self._progress: Progress = lambda _m: None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, clusters: Sequence[str], *, progress: Progress) -> dict[str, ClusterInfo]:
        self._progress = progress
        binary = ensure_binary(progress)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary),
            "fleet",
            "--dir",
            str(self.state_dir),
            "--clusters",
            ",".join(clusters),
            "--progress",
            "json",
            "--ready-timeout",
            f"{int(self.ready_timeout)}s",
        ]
        if self.ports:
            cmd += ["--ports", ",".join(f"{k}={v}" for k, v in self.ports.items())]
        for arg in self.apiserver_args:
            cmd += ["--apiserver-arg", arg]
        if self.workloads:
            cmd += [
                "--workloads",
                ",".join(self.workloads),
                "--node-monitor-grace-period",
                f"{self.node_monitor_grace_period:g}s",
            ]
        self._proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent(),
            env={**os.environ, **self.env} if self.env else None,
        )
        threading.Thread(target=self._read_events, name="controlplane-events", daemon=True).start()
        # The binary enforces its own per-apiserver deadline; ours only guards against a hang.
        deadline = time.monotonic() + self.ready_timeout + 120
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self._events.get(timeout=max(remaining, 0.1))
            except queue.Empty:
                self.stop()
                raise StartupError(
                    f"the control planes did not report ready within {self.ready_timeout + 120:.0f}s"
                ) from None
            if event is None:  # process exited before ready
                self._raise_start_failure()
            elif event.get("event") == "ready":
                break
        state_file = Path(str(event["state"]))
        self._state = json.loads(state_file.read_text())
        return {
            name: ClusterInfo(name=name, server=c["server"], kubeconfig=Path(c["kubeconfig"]), context=name)
            for name, c in self._state["clusters"].items()
        }

    def _read_events(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            self._output.append(line)
            del self._output[:-200]
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") not in ("error",):
                self._progress(str(event.get("message", "")))
            self._events.put(event)
        self._events.put(None)

    def _raise_start_failure(self) -> None:
        if self._proc is not None:
            self._proc.wait(timeout=30)
        messages = []
        for line in self._output:
            try:
                ev = json.loads(line)
            except ValueError:
                messages.append(line)
                continue
            if ev.get("event") == "error":
                messages.append(str(ev.get("message", "")).removeprefix("error: "))
        text = "\n".join(messages) or "\n".join(self._output[-20:])
        if "already in use by a running fleet" in text:
            raise StateDirBusyError(text, hint="run `federation dev down` or pick another --state-dir")
        if "already in use by another process" in text:
            raise PortInUseError(text, hint="free the port or let the fleet choose one")
        if "bind: address already in use" in text:
            # The binary chose a free port, and something else bound it before the apiserver
            # did (a race on a busy machine, not a fixed port in the way): a retry picks anew.
            raise PortInUseError(text, hint="start the fleet again: its ports are chosen anew")
        raise StartupError(f"the control planes failed to start: {text}")

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc, grace=60)
            self._proc = None

    def merged_kubeconfig(self) -> Path:
        return Path(self._state["kubeconfig"])

    @property
    def etcd_url(self) -> str:
        return str(self._state["etcdURL"])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- fault injection ---------------------------------------------------------------

    def stop_cluster(self, name: str, *, kill: bool = False) -> None:
        self._control("POST", f"/clusters/{name}/stop" + ("?signal=KILL" if kill else ""))

    def start_cluster(self, name: str) -> None:
        self._control("POST", f"/clusters/{name}/start", timeout=self.ready_timeout + 30)

    def status(self) -> dict[str, Any]:
        """The running fleet as the control API reports it (pids of apiservers and components)."""
        return self._control("GET", "/status")

    def component(self, cluster: str, kind: str, action: str) -> None:
        """Stop or start one of a workload cluster's components (controller-manager, scheduler,
        kwok)."""
        self._control("POST", f"/clusters/{cluster}/components/{kind}/{action}")

    def compact(self) -> int:
        return int(self._control("POST", "/etcd/compact")["revision"])

    def cluster_pid(self, name: str) -> int | None:
        status = self._control("GET", "/status")
        pid = status["clusters"][name]["pid"]
        return int(pid) if pid else None

    def _control(self, method: str, path: str, *, timeout: float = 120) -> dict[str, Any]:
        if not self._state:
            raise DevFleetError("the fleet is not running")
        req = urllib.request.Request(self._state["controlURL"] + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except ValueError:
                detail = str(exc)
            raise DevFleetError(f"fleet control {method} {path} failed: {detail}") from exc
        except OSError as exc:
            raise DevFleetError(f"fleet control {method} {path} failed: {exc}") from exc
