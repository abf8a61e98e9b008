"""`federation run`'s API and TLS flags: bad combinations are one line naming the flag, before
anything starts (no database, no hub needed to find out); and an error raised once everything
runs (a --listen port in use, inside the manager's task groups) is one line too."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from federation.devfleet import LocalFleet
from tests.storehelpers import create_database, drop_database

FEDERATION = str(Path(sys.executable).parent / "federation")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEDERATION, "run", "--database-url", "postgresql://nobody@127.0.0.1:1/none", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "/nonexistent/tls.crt"], "--tls-cert and --tls-key go together"),
        (["--client-ca", "/nonexistent/ca.crt"], "--client-ca needs TLS"),
        (
            ["--tls-cert", "/nonexistent/tls.crt", "--tls-key", "/nonexistent/tls.key"],
            "--tls-cert /nonexistent/tls.crt: no such file",
        ),
        (["--webhook-client-ca", "/nonexistent/ca.crt"], "--webhook-client-ca needs TLS"),
        (["--api-token", "   "], "--api-token is only whitespace"),
        (["--listen", "0.0.0.0:8080"], "--listen 0.0.0.0:8080 would serve the dashboard API"),
        (["--listen", "8080"], "--listen '8080': expected HOST:PORT"),
    ],
)
def test_bad_tls_flags_are_one_line_naming_the_flag(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_whitespace_token_from_the_environment_is_an_error_too() -> None:
    proc = run(env={"FEDERATION_API_TOKEN": " \t "})
    assert proc.returncode == 1 and proc.stderr.startswith("error: --api-token is only whitespace"), (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_help_lists_the_api_flags() -> None:
    out = subprocess.run([FEDERATION, "run", "--help"], capture_output=True, text=True, timeout=60).stdout
    for flag in (
        "--api-token",
        "FEDERATION_API_TOKEN",
        "--tls-cert",
        "--tls-key",
        "--client-ca",
        "--protect-metrics",
        "--insecure-open-api",
        "--webhook-client-ca",
        "FEDERATION_WEBHOOK_CLIENT_CA",
        "--header-timeout",
        "--idle-timeout",
        "--body-timeout",
        "--tls-handshake-timeout",
        "127.0.0.1:8080",
    ):
        assert flag in out, flag


async def test_a_listen_port_in_use_is_one_line_and_a_hint(fleet: LocalFleet) -> None:
    """The port is bound once the store and the hub are connected, inside the manager's task
    groups: the error reaches the user as its own line, not as an ExceptionGroup."""
    name = f"busy_{secrets.token_hex(4)}"
    url = await create_database(fleet.database_url, name)
    hub = fleet.clusters["hub"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            command = [
                FEDERATION,
                "run",
                "--hub-kubeconfig",
                str(hub.kubeconfig),
                "--hub-context",
                hub.context,
                "--database-url",
                url,
                "--hub-id",
                name.replace("_", "-"),
                "--listen",
                f"127.0.0.1:{port}",
            ]
            proc = await anyio.to_thread.run_sync(
                lambda: subprocess.run(command, capture_output=True, text=True, timeout=120)
            )
        finally:
            await drop_database(fleet.database_url, name)
    assert proc.returncode == 1, proc.stderr
    errors = [
        line for line in proc.stderr.splitlines() if line.startswith(("error:", "hint:", "internal error"))
    ]
    assert errors == [
        f"error: --listen 127.0.0.1:{port} is in use by another process",
        "hint: stop what holds that port, or choose another with --listen HOST:PORT",
    ], proc.stderr
    for noise in ("ExceptionGroup", "Traceback", "report it"):
        assert noise not in proc.stderr, proc.stderr
