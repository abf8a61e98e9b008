"""`federation run`'s API and TLS flags: bad combinations are one line naming the flag, before
anything starts (no database, no hub needed to find out)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FEDERATION = str(Path(sys.executable).parent / "federation")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEDERATION, "run", "--database-url", "postgresql://nobody@127.0.0.1:1/none", *args],
        capture_output=True,
        text=True,
        timeout=60,
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
    ],
)
def test_bad_tls_flags_are_one_line_naming_the_flag(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
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
    ):
        assert flag in out, flag
