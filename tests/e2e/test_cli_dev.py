"""`federation dev` as a user runs it: help texts, a fleet up and down, clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from federation.devfleet import read_state

BIN = Path(sys.executable).parent
FEDERATION = str(BIN / "federation")
KUBECTL = str(BIN / "kubectl")


def run(*args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEDERATION, *args], capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload,no-any-return]


def test_help_explains_each_command() -> None:
    top = run("--help")
    assert top.returncode == 0
    assert "federation dev up" in top.stdout
    up = run("dev", "up", "--help")
    assert up.returncode == 0
    assert "Ctrl-C" in up.stdout and "Example:" in up.stdout and "--members" in up.stdout
    down = run("dev", "down", "--help")
    assert down.returncode == 0 and "Stop the local fleet" in down.stdout


def _wait_for_state(state_dir: Path, proc: subprocess.Popen[str], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while read_state(state_dir) is None:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"dev up exited early ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("dev up did not report a running fleet within the deadline")
        time.sleep(0.1)  # polling a file written by another process, under a deadline


def test_dev_up_serves_kubectl_then_dev_down_stops_everything(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    up = subprocess.Popen(
        [FEDERATION, "dev", "up", "--members", "1", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_state(state, up, 180)
        info = read_state(state)
        assert info is not None and set(info.clusters) == {"hub", "member-1"}

        # The printed kubeconfig works with a stock kubectl, one context per cluster.
        env = dict(os.environ, KUBECONFIG=str(info.kubeconfig))
        ns = subprocess.run(
            [KUBECTL, "--context", "member-1", "get", "ns", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert ns.returncode == 0, ns.stderr
        assert "kube-system" in {i["metadata"]["name"] for i in json.loads(ns.stdout)["items"]}

        # A second `dev up` on the same directory fails with one clear line and a hint.
        second = run("dev", "up", "--members", "1", "--state-dir", str(state))
        assert second.returncode == 1
        assert "already in use by a running fleet" in second.stderr
        assert "hint:" in second.stderr and "Traceback" not in second.stderr

        down = run("dev", "down", "--state-dir", str(state))
        assert down.returncode == 0, down.stderr
        out, _err = up.communicate(timeout=120)
        assert up.returncode == 0
        assert "Press Ctrl-C" in out
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    # Nothing is left holding the cluster's port.
    server_port = info.clusters["member-1"].port
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", server_port))
    assert read_state(state) is None


def test_dev_down_without_a_fleet_is_a_clear_error(tmp_path: Path) -> None:
    down = run("dev", "down", "--state-dir", str(tmp_path))
    assert down.returncode == 1
    assert f"no local fleet is running on {tmp_path}" in down.stderr
    assert "Traceback" not in down.stderr
