"""`federation run` on a hub that has never seen federation: a one-line error that says what to
do, and ``--install-crds`` doing it.

A member of the session's fleet plays the fresh hub (it serves no federation.io kinds); the CRDs
the second test installs there are removed afterwards, so the member is as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from federation.devfleet import LocalFleet
from federation.devfleet.procs import free_port
from tests.controllerhelpers import FEDERATION, STOP_TIMEOUT, ControllerProcess, kubectl

FRESH = "member-3"


def run_on(fleet: LocalFleet, database_url: str, *args: str, listen: str) -> subprocess.Popen[str]:
    info = fleet.clusters[FRESH]
    return subprocess.Popen(
        [FEDERATION, "run", "--hub-kubeconfig", str(info.kubeconfig), "--hub-context", info.context,
         "--database-url", database_url, "--listen", listen, "--hub-id", f"fresh-{os.getpid()}",
         "--no-webhook", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def crds_on_fresh(fleet: LocalFleet) -> list[str]:
    out = kubectl(fleet, FRESH, "get", "crd", "-o", "name")
    return sorted(line for line in out.split() if line.endswith(".federation.io"))


@pytest.fixture
async def fresh_hub(fleet: LocalFleet) -> AsyncIterator[None]:
    assert crds_on_fresh(fleet) == [], f"{FRESH} already serves federation.io kinds"
    yield
    for crd in crds_on_fresh(fleet):
        kubectl(fleet, FRESH, "delete", crd, "--wait=true")


async def test_run_on_a_hub_without_the_crds_says_so_in_one_line(
    fleet: LocalFleet, database_url: str, fresh_hub: None
) -> None:
    proc = run_on(fleet, database_url, listen=f"127.0.0.1:{free_port()}")
    try:
        _, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=90))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    # Before it: the controller's log lines (migrations, the server); then the error, once.
    assert "Traceback" not in err and "internal error" not in err and "ExceptionGroup" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith(("error:", "hint:"))]
    assert len(lines) == 2, err
    assert lines[0].startswith("error: the hub does not serve federation.io/v1alpha1 MemberCluster"), err
    assert lines[1].startswith("hint: install the CRDs") and "--install-crds" in lines[1], err
    assert err.strip().splitlines()[-2:] == lines, "the error and hint are the last lines"


async def test_install_crds_makes_a_fresh_hub_ready(
    fleet: LocalFleet, database_url: str, fresh_hub: None, tmp_path: Path
) -> None:
    info = fleet.clusters[FRESH]
    proc = ControllerProcess(
        fleet,
        database_url=database_url,
        hub_id=f"fresh-{os.getpid()}",
        log_path=tmp_path / "run.log",
        hub_kubeconfig=info.kubeconfig,
        hub_context=info.context,
        extra_args=["--install-crds", "--no-webhook"],
    )
    proc.launch()
    try:
        await anyio.to_thread.run_sync(lambda: proc.wait_ready(timeout=90))
        assert crds_on_fresh(fleet) == [
            "customresourcedefinition.apiextensions.k8s.io/clusteroverridepolicies.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/clusterpropagationpolicies.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/memberclusters.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/overridepolicies.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/propagationpolicies.federation.io",
        ]
        child = proc.proc
        assert child is not None
        child.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(lambda: child.wait(timeout=STOP_TIMEOUT))
    finally:
        await anyio.to_thread.run_sync(proc.stop)  # a kill and a failure if still running
    log = proc.log_path.read_text()
    assert "installed or upgraded 5 federation.io CRDs on the hub" in log, log
    assert code == 0, log
