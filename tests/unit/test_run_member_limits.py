"""`federation run`'s member rate-limit flags: the help states the throttle's defaults (named
there so the CLI does not import the client to print help), and --member-rate-limit is parsed
or refused naming the flag."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from federation.cli.run import _member_rate_limit, run
from federation.errors import ConfigError
from federation.kube.throttle import DEFAULT_BURST, DEFAULT_QPS, RateLimit


def test_the_help_states_the_throttles_defaults() -> None:
    text = " ".join(CliRunner().invoke(run, ["--help"], terminal_width=200).output.split())
    assert f"(a token bucket per member; 0: no limit). [default: {DEFAULT_QPS:g}]" in text
    assert f"above --member-qps. [default: {DEFAULT_BURST}]" in text


def test_the_cli_does_not_import_the_client() -> None:
    """Every `federation` command imports cli.run; the client is for `run` itself to import."""
    probe = "import sys, federation.cli.root; print('federation.kube' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("m2=0.5", ("m2", RateLimit(0.5, 7))),
        ("m2=20:40", ("m2", RateLimit(20.0, 40))),
        ("m-3=0", ("m-3", RateLimit(0.0, 7))),
    ],
)
def test_a_members_own_limit(value: str, expected: tuple[str, RateLimit]) -> None:
    assert _member_rate_limit(value, burst=7) == expected


@pytest.mark.parametrize("value", ["m2", "=5", "m2=fast", "m2=5:0", "m2=5:x"])
def test_a_bad_limit_names_the_flag(value: str) -> None:
    with pytest.raises(ConfigError, match="--member-rate-limit"):
        _member_rate_limit(value, burst=7)
