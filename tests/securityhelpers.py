"""What the security tests share: a controller (`federation run` as its own process) with a
database of its own and, when asked, HTTPS; the attacker's requests (worst-case reviews, raw
sockets that stall); and reading what the controller logged."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

from federation.devfleet import LocalFleet
from federation.server import CertPaths, generate_certs
from tests.controllerhelpers import ControllerProcess, register_members
from tests.storehelpers import create_database, drop_database

API = "federation.io/v1alpha1"


def serving_certs(directory: Path) -> CertPaths:
    """A CA and a serving pair for 127.0.0.1, as `federation webhook certs` writes them."""
    return generate_certs(directory, names=["127.0.0.1"])


@contextlib.asynccontextmanager
async def controller(
    fleet: LocalFleet,
    *,
    name: str,
    log_dir: Path,
    certs: CertPaths | None = None,
    extra_args: Sequence[str] = (),
    members: dict[str, dict[str, str]] | None = None,
    database_url: str | None = None,
    hub: Path | None = None,
    default_listen: bool = False,
) -> AsyncIterator[ControllerProcess]:
    """`federation run` on the fleet's hub (or on the ``hub`` context of the kubeconfig
    ``hub``), ready; over HTTPS with ``certs``; on a database of its own in the fleet's
    Postgres (dropped afterwards) unless ``database_url`` is given."""
    token = secrets.token_hex(3)
    db = f"sec_{name.replace('-', '_')}_{token}"
    url = database_url or await create_database(fleet.database_url, db)
    if members:
        await anyio.to_thread.run_sync(register_members, fleet, members)
    args = list(extra_args)
    if certs is not None:
        args += ["--tls-cert", str(certs.tls_cert), "--tls-key", str(certs.tls_key)]
    proc = ControllerProcess(
        fleet,
        database_url=url,
        hub_id=f"sec-{name}-{token}",
        log_path=log_dir / f"{name}.log",
        extra_args=args,
        scheme="https" if certs is not None else "http",
        ca_file=certs.ca_cert if certs is not None else None,
        hub_kubeconfig=hub,
        hub_context="hub" if hub is not None else None,
        default_listen=default_listen,
    )
    await anyio.to_thread.run_sync(proc.start)
    try:
        yield proc
    finally:
        await anyio.to_thread.run_sync(proc.stop)
        print(f"controller log: {proc.log_path}")
        if database_url is None:
            await drop_database(fleet.database_url, db)


class LogWindow:
    """The lines a controller logged since the window was opened."""

    def __init__(self, proc: ControllerProcess) -> None:
        self.path = proc.log_path
        self.start = self.path.stat().st_size

    def lines(self) -> list[str]:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace").splitlines()


# -- requests ------------------------------------------------------------------------------------


def admission_review(obj: dict[str, Any] | None, *, uid: str, operation: str = "CREATE") -> dict[str, Any]:
    source = obj or {}
    group, _, version = str(source.get("apiVersion", API)).rpartition("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": source.get("kind", "")},
            "resource": {"group": group, "version": version, "resource": "x"},
            "operation": operation,
            "userInfo": {"username": "attacker"},
            "object": obj,
            "oldObject": None,
        },
    }


def worst_review(selectors: int, rules: int, ops: int, *, uid: str = "flood") -> bytes:
    """Issue 10's review: a ClusterOverridePolicy of distinct named selectors and rules of JSON
    patch operations that all succeed (no rule stops early), on distinct paths."""
    policy = {
        "apiVersion": API,
        "kind": "ClusterOverridePolicy",
        "metadata": {"name": f"flood-{selectors}x{rules}x{ops}"},
        "spec": {
            "resourceSelectors": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"web-{i}"} for i in range(selectors)
            ],
            "rules": [
                {
                    "overriders": {
                        "jsonPatch": [
                            {"op": "add", "path": f"/metadata/annotations/k{r}-{j}", "value": "v"}
                            for j in range(ops)
                        ]
                    }
                }
                for r in range(rules)
            ],
        },
    }
    return orjson.dumps(admission_review(policy, uid=uid))


@dataclass
class Answer:
    status: int
    body: Any
    seconds: float


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    started = time.monotonic()
    async with session.post(
        url,
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        ssl=ssl_context if ssl_context is not None else False,
    ) as resp:
        payload = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return Answer(resp.status, payload, time.monotonic() - started)


def client_context(ca_file: Path, cert: Any = None) -> ssl.SSLContext:
    """A TLS client trusting ``ca_file``, presenting ``cert`` (a trustme LeafCert) if given."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


# -- raw sockets ---------------------------------------------------------------------------------


def raw_request(
    port: int, data: bytes, *, tls: ssl.SSLContext | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """Send ``data`` as it is (no client library in between to refuse it) and read the answer
    until the server closes: (status, body)."""
    sock = connect(port, tls=tls, timeout=timeout)
    try:
        sock.sendall(data)
        _, received = seconds_until_closed(sock, started=time.monotonic(), limit=timeout)
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2 and status_line[1].isdigit(), received[:200]
    return int(status_line[1]), body


def connect(port: int, *, tls: ssl.SSLContext | None = None, timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        return tls.wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def seconds_until_closed(sock: socket.socket, *, started: float, limit: float) -> tuple[float, bytes]:
    """Read until the server closes the connection; (seconds since ``started``, what came).
    Fails the test if it is still open after ``limit`` seconds."""
    sock.settimeout(0.2)
    received = b""
    deadline = started + limit
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if time.monotonic() > deadline:
                sock.close()
                raise AssertionError(f"the connection is still open after {limit}s") from None
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            return time.monotonic() - started, received
        received += data
