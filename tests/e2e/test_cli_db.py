"""`federation db` as a user runs it: the embedded default, an explicit URL, clear failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from federation.devfleet import EmbeddedPostgres
from federation.localdb import running_server_port
from federation.store import head_revision
from tests.storehelpers import create_database, drop_database

FEDERATION = str(Path(sys.executable).parent / "federation")
HEAD = head_revision()


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_")}
    environment.update(env or {})
    return subprocess.run(
        [FEDERATION, *args], capture_output=True, text=True, timeout=timeout, env=environment, cwd="/"
    )


def test_help_names_the_commands_and_the_database_options() -> None:
    result = run("db", "--help")
    assert result.returncode == 0
    for word in ("upgrade", "downgrade", "current", "FEDERATION_DATABASE_URL", "FEDERATION_STATE_DIR"):
        assert word in result.stdout, word
    upgrade = run("db", "upgrade", "--help")
    assert "--database-url" in upgrade.stdout and "--state-dir" in upgrade.stdout


def test_embedded_database_by_default(tmp_path: Path) -> None:
    # Run from / with no URL: the migrations are found relative to the package, and a durable
    # embedded Postgres is started in STATE_DIR/db for each command and stopped after it.
    state = tmp_path / "state"
    up = run("db", "upgrade", "--state-dir", str(state))
    assert up.returncode == 0, up.stderr
    want = f"the embedded database in {state / 'db'}: upgraded none (empty database) → {HEAD} (head)"
    assert want in up.stdout
    assert (state / "db" / "PG_VERSION").is_file()
    assert running_server_port(state / "db") is None  # stopped again

    current = run("db", "current", env={"FEDERATION_STATE_DIR": str(state)})
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == f"{HEAD} (head)"

    down = run("db", "downgrade", "base", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert f"downgraded {HEAD} (head) → none (empty database)" in down.stdout
    current = run("db", "current", "--state-dir", str(state))
    assert current.stdout.strip() == "none (empty database)"
    assert "run `federation db upgrade`" in current.stderr


async def test_explicit_database_url(postgres: EmbeddedPostgres) -> None:
    url = await create_database(postgres.url, "cli_db_test")
    try:
        asyncpg_style = url.replace("postgresql://", "postgresql+asyncpg://")
        first = run("db", "upgrade", "0001", "--database-url", asyncpg_style)
        assert first.returncode == 0, first.stderr
        assert f"127.0.0.1:{postgres.port}/cli_db_test: upgraded none (empty database) → 0001" in first.stdout
        rest = run("db", "upgrade", env={"FEDERATION_DATABASE_URL": url})
        assert f"upgraded 0001 → {HEAD} (head)" in rest.stdout, rest.stderr
        again = run("db", "upgrade", "--database-url", url)
        assert f"already at {HEAD} (head)" in again.stdout
    finally:
        await drop_database(postgres.url, "cli_db_test")


def test_an_unreachable_database_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("db", "upgrade", "--database-url", f"postgresql://postgres@127.0.0.1:{port}/federation")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    error, hint = result.stderr.strip().splitlines()
    assert error.startswith("error: ") and f"127.0.0.1:{port}" in error and "unavailable" in error
    assert hint.startswith("hint: ") and "FEDERATION_DATABASE_URL" in hint


def test_a_url_that_is_not_postgres_is_refused() -> None:
    result = run("db", "current", "--database-url", "mysql://root@localhost/db")
    assert result.returncode == 1
    assert "error: database URL scheme 'mysql' is not supported (Postgres only)" in result.stderr
