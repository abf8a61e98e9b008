"""`federation run` on a hub that has never seen federation: a one-line error that says what to
do, and ``--install-crds`` doing it.

A member of the session's fleet plays the fresh hub (it serves no federation.io kinds); the CRDs
the second test installs there are removed afterwards, so the member is as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator

import anyio
import pytest

from federation.devfleet import LocalFleet
from federation.devfleet.procs import free_port
from tests.controllerhelpers import FEDERATION, kubectl
from tests.kubehelpers import eventually

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


def readyz_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


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
    fleet: LocalFleet, database_url: str, fresh_hub: None
) -> None:
    port = free_port()
    proc = run_on(fleet, database_url, "--install-crds", listen=f"127.0.0.1:{port}")
    try:

        async def ready() -> bool:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            return await anyio.to_thread.run_sync(readyz_ok, port)

        await eventually(ready, timeout=90, what="/readyz 200 after --install-crds")
        assert crds_on_fresh(fleet) == [
            "customresourcedefinition.apiextensions.k8s.io/clusteroverridepolicies.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/clusterpropagationpolicies.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/memberclusters.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/overridepolicies.federation.io",
            "customresourcedefinition.apiextensions.k8s.io/propagationpolicies.federation.io",
        ]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=60))
    assert "installed or upgraded 5 federation.io CRDs on the hub" in err
    assert proc.returncode == 0, err[-3000:]
