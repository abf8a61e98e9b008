"""Event brokers on this machine, for the sink tests and the events bench: a NATS server with
JetStream, built from its Go module (tools/natsserver) like the control plane — cached under
~/.cache/federation/nats-server, nothing downloaded but Go modules.

    with NatsServer(state_dir) as server:
        server.url            # nats://127.0.0.1:PORT
        server.stop(); server.start()   # down and back, its JetStream store kept
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from federation.devfleet.build import Progress, ensure_go_binary
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


class NatsServer:
    """One nats-server with JetStream on a free loopback port, its store in `state_dir`."""

    def __init__(self, state_dir: Path, *, progress: Progress | None = None) -> None:
        self.state_dir = state_dir
        self.binary = ensure_nats_server(progress)
        self.port = free_port()
        self.log = state_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 20.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "-js", "-sd", str(self.state_dir / "jetstream"), "-a", "127.0.0.1",
                 "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent(),
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise DevFleetError(f"nats-server exited at start:\n{tail(self.log)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise DevFleetError(
                        f"nats-server not listening after {timeout:g}s:\n{tail(self.log)}"
                    ) from None
                time.sleep(0.05)  # polling a port another process opens, under a deadline

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc, grace=5.0)
            self._proc = None

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
