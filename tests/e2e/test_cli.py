"""The CLI as a user runs it: help texts, one-line errors for bad input, and the demo."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
FEDERATION = str(BIN / "federation")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEDERATION, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["run"],
            [
                "--hub-kubeconfig",
                "--database-url",
                "--clusters-file",
                "--listen",
                "--leader-election",
                "Example:",
            ],
        ),
        (["status"], ["KIND/NAME", "-o", "wide", "Examples:"]),
        (["events"], ["--cluster", "--since", "Examples:"]),
        (["clusters", "join"], ["--kubeconfig", "--label", "Example:"]),
        (["clusters", "list"], ["Example:"]),
        (["clusters", "unjoin"], ["Example:"]),
        (["plan"], ["--clusters", "Example:"]),
        (["demo"], ["Ctrl-C", "Example:"]),
        (["db", "upgrade"], ["REVISION"]),
        (["crds"], ["--check", "Example:"]),
        (["dev", "up"], ["--members", "Example:"]),
    ],
)
def test_every_command_explains_itself(command: list[str], expected: list[str]) -> None:
    out = run(*command, "--help")
    assert out.returncode == 0, out.stderr
    for word in expected:
        assert word in out.stdout, f"{' '.join(command)} --help lacks {word!r}"


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), proc.stderr
    return proc.stderr


def test_missing_kubeconfig_is_one_clear_line(tmp_path: Path) -> None:
    err = one_line_error(run("run", "--hub-kubeconfig", str(tmp_path / "nope.yaml"), "--database-url",
                             "postgresql://x@127.0.0.1:1/db", "--listen", "127.0.0.1:0"))  # fmt: skip
    assert "nope.yaml" in err


def test_unreachable_database_names_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = one_line_error(run("status", "--database-url", f"postgresql://fed@127.0.0.1:{port}/federation"))
    assert f"127.0.0.1:{port}" in err


def test_malformed_clusters_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "clusters.yaml"
    bad.write_text("clusters:\n  - name: ok\n    labels: [not, a, map]\n")
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n")
    err = one_line_error(run("plan", "-f", str(policy), "--clusters", str(bad)))
    assert "clusters.yaml" in err and "labels" in err


def test_bad_since_and_target_are_clear(tmp_path: Path) -> None:
    err = one_line_error(
        run("events", "--since", "yesterday", "--database-url", "postgresql://x@127.0.0.1:1/db")
    )
    assert "--since 'yesterday'" in err


def test_the_demo_converges_and_cleans_up(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run("demo", "--exit-when-converged", "--timeout", "240", "--port", str(port),
               "--state-dir", str(tmp_path / "demo"), timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    rows = ("ConfigMap", "shop/app-settings", "Deployment", "shop/web", "LLMGatewayConfig", "shop/gateway")
    for row in (*rows,
                "Secret", "shop/api-token", "ServiceAccount"):  # fmt: skip
        assert row in out, row
    assert "converged in" in out
    # Not on a terminal (stdout is a pipe here): a plain line per change, none of a live
    # table's control codes, and a line for each resource as it converges.
    assert "\x1b" not in out
    converged = [line for line in out.splitlines() if line.startswith("converged: ")]
    for resource in ("ConfigMap shop/app-settings", "Deployment shop/web", "LLMGatewayConfig shop/gateway",
                     "Secret shop/api-token"):  # fmt: skip
        assert any(line.startswith(f"converged: {resource} in ") for line in converged), (resource, out)
    assert any(
        line.startswith("Deployment shop/web in ") and " applied " in line for line in out.splitlines()
    )
    assert "6/6 ready, Available=True" in out
    # The replicas are pods the members' own controllers ran: nothing wrote their status.
    assert "pods that really run there" in out
    assert "demo stopped" in proc.stderr
    # Everything it started is gone: the state directory is free again.
    from federation.devfleet import state_dir_busy

    assert not state_dir_busy(tmp_path / "demo")
