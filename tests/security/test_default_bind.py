"""Issue 10, finding 7: the server listened on 0.0.0.0 with the API open. Now `federation run`
without --listen listens on 127.0.0.1 only (its sockets are read, and a non-loopback address of
this machine is refused), a non-loopback --listen without credentials refuses to start naming
--insecure-open-api, and /validate on a plain-HTTP port is refused."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import psutil
import pytest

from federation.devfleet import LocalFleet
from federation.devfleet.procs import free_port, port_free
from tests.controllerhelpers import DEFAULT_PORT, ControllerProcess
from tests.kubehelpers import eventually
from tests.securityhelpers import LogWindow, admission_review, controller

pytestmark = [pytest.mark.security, pytest.mark.anyio]
FEDERATION = str(Path(sys.executable).parent / "federation")


def _outside_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (None when it has none)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


@pytest.fixture(scope="module")
async def defaulted(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    # The default port is one port for the whole machine: wait for it rather than fail on a
    # neighbour's moment.
    await eventually(
        lambda: anyio.to_thread.run_sync(port_free, DEFAULT_PORT),
        timeout=120,
        what=f"port {DEFAULT_PORT} free for a controller on the default --listen",
    )
    async with controller(
        fleet, name="default-bind", log_dir=tmp_path_factory.mktemp("default-bind"), default_listen=True
    ) as proc:
        yield proc


async def test_without_listen_the_port_is_on_loopback_only(defaulted: ControllerProcess) -> None:
    assert defaulted.proc is not None
    listening = [
        c.laddr
        for c in psutil.Process(defaulted.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(addr.port == DEFAULT_PORT for addr in listening), listening
    assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
    outside = _outside_address()
    print(f"non-loopback address of this machine: {outside}")
    if outside is not None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((outside, DEFAULT_PORT), timeout=5).close()
    assert any(
        "serving on http://127.0.0.1:8080 (reachable by this machine only)" in line
        for line in defaulted.log_path.read_text().splitlines()
    )


async def test_validate_on_a_plain_http_port_is_refused(defaulted: ControllerProcess) -> None:
    window = LogWindow(defaulted)
    review = admission_review({"apiVersion": "federation.io/v1alpha1", "kind": "MemberCluster"}, uid="plain")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{defaulted.url}/validate", json=review) as resp,
    ):
        assert resp.status == 403
        text = await resp.text()
    assert text == (
        "the admission webhook answers on HTTPS only (apiservers call webhooks over HTTPS only): start the "
        "controller with --tls-cert and --tls-key\n"
    )
    assert defaulted.metric("federation_webhook_requests_total") == 0
    startup = defaulted.log_path.read_text()
    assert "/validate: refused (403) on this plain-HTTP port" in startup
    assert any("rejected POST /validate" in line and "403" in line for line in window.lines())


@pytest.mark.parametrize("listen", ["0.0.0.0", "", "[::]"])
def test_a_non_loopback_listen_without_credentials_refuses_to_start(listen: str, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [
            FEDERATION,
            "run",
            "--listen",
            f"{listen}:{port}",
            "--hub-kubeconfig",
            str(tmp_path / "never-read"),
            "--database-url",
            "postgresql://nobody@127.0.0.1:1/never-connected",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: --listen ") and "--insecure-open-api" in lines[0], proc.stderr
    assert "--api-token" in lines[0] and "--client-ca" in lines[0]
    assert lines[1].startswith("hint: the default --listen 127.0.0.1:8080"), proc.stderr
    assert "Traceback" not in proc.stderr and port_free(port)
