"""Event brokers on this machine, for the sink tests and the events bench:

- a NATS server with JetStream, built from its Go module (tools/natsserver) like the control
  plane, cached under ~/.cache/federation/nats-server;
- a Kafka broker in KRaft mode (broker and controller in one process), its jars resolved from
  Maven Central by Maven (tools/kafka/pom.xml) into ~/.cache/federation/kafka, run on the
  machine's Java (17 or later).

Nothing is downloaded but Go modules and Maven artifacts.

    with NatsServer(state_dir) as server:
        server.url            # nats://127.0.0.1:PORT
        server.stop(); server.start()   # down and back, its store kept
    with KafkaBroker(state_dir) as broker:
        broker.bootstrap      # 127.0.0.1:PORT
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from federation.devfleet.build import Progress, build_lock, cache_root, ensure_go_binary
from federation.devfleet.procs import die_with_parent, free_port, tail, terminate
from federation.errors import BuildError, DevFleetError


def nats_source() -> Path:
    candidate = Path(__file__).resolve().parents[2] / "tools" / "natsserver"
    if not (candidate / "go.mod").is_file():
        raise BuildError(f"cannot find the nats-server sources at {candidate}", hint="run from a checkout")
    return candidate


def ensure_nats_server(progress: Progress | None = None) -> Path:
    """The nats-server binary, built on first use (about 30 s; cached by its sources' hash)."""
    return ensure_go_binary(
        nats_source(), "nats-server", progress=progress, intro=["building nats-server from its Go module"]
    )


class _Broker:
    """A broker process on a loopback port: started, stopped (its store kept), or used in `with`."""

    what = "broker"
    grace = 5.0

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = state_dir
        self.port = port
        self.log = state_dir / f"{self.what}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The running broker's process id (benches read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, *, timeout: float = 60.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
            )
        _wait_for_port(self._proc, self.port, self.log, self.what, timeout)

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc, grace=self.grace)
            self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


class NatsServer(_Broker):
    """One nats-server with JetStream on a free loopback port, its store in `state_dir`."""

    what = "nats-server"

    def __init__(self, state_dir: Path, *, progress: Progress | None = None) -> None:
        super().__init__(state_dir, free_port())
        self.binary = ensure_nats_server(progress)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(self.binary), "-js", "-sd", str(self.state_dir / "jetstream"), "-a", "127.0.0.1",
                "-p", str(self.port)]  # fmt: skip


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise DevFleetError(f"{what} exited at start:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise DevFleetError(f"{what} not listening after {timeout:g}s:\n{tail(log)}") from None
            time.sleep(0.05)  # polling a port another process opens, under a deadline


def kafka_source() -> Path:
    candidate = Path(__file__).resolve().parents[2] / "tools" / "kafka" / "pom.xml"
    if not candidate.is_file():
        raise BuildError(f"cannot find {candidate}", hint="run from a checkout")
    return candidate


def ensure_kafka_libs(progress: Progress | None = None) -> Path:
    """The Kafka broker's jars (a directory), resolved by Maven on first use (cached by the pom's
    hash; Maven's own ~/.m2 keeps the downloads)."""
    say = progress or (lambda _msg: None)
    pom = kafka_source()
    root = cache_root() / "kafka"
    libs = root / hashlib.sha256(pom.read_bytes()).hexdigest()[:16] / "libs"
    if libs.is_dir():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BuildError(
            "Maven (mvn) is needed to fetch the Kafka broker's jars from Maven Central",
            hint="install it (Debian: apt-get install maven)",
        )
    with build_lock(root):
        if libs.is_dir():
            return libs
        say("resolving the Kafka broker's jars from Maven Central (once per machine)")
        tmp = libs.with_name(f"libs.{os.getpid()}.tmp")
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
             "-DincludeScope=runtime"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BuildError(
                f"mvn dependency:copy-dependencies failed:\n{(done.stdout + done.stderr)[-2000:]}"
            )
        tmp.replace(libs)
    return libs


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BuildError("Java (17 or later) is needed to run the Kafka broker", hint="install a JDK or JRE")
    return java


class KafkaBroker(_Broker):
    """One Kafka broker in KRaft mode (its own controller) on free loopback ports."""

    what = "kafka"
    grace = 10.0

    def __init__(self, state_dir: Path, *, progress: Progress | None = None) -> None:
        super().__init__(state_dir, free_port())
        self.libs = ensure_kafka_libs(progress)
        self.java = find_java()
        self.controller_port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> Path:
        data = self.state_dir / "data"
        path = self.state_dir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        if not (data / "meta.properties").exists():
            cluster = "-"
            while cluster.startswith("-"):  # one in 64 would be read as an option by the tool
                cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")  # Kafka's form
            formatted = subprocess.run(
                [self.java, "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format", "-t", cluster, "-c",
                 str(path)],
                capture_output=True, text=True,
            )  # fmt: skip
            if formatted.returncode != 0:
                raise DevFleetError(
                    f"formatting Kafka's storage failed:\n{formatted.stdout}{formatted.stderr}"
                )
        return path

    def command(self) -> list[str]:
        return [self.java, "-Xmx512m", "-cp", f"{self.libs}/*", "kafka.Kafka", str(self._config())]
