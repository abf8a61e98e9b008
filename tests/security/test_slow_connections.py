"""Issue 10, finding 7: idle connections were never closed. Against a real controller with
short timeouts (--header-timeout 1, --idle-timeout 2, --body-timeout 3,
--tls-handshake-timeout 1), with raw sockets: a header that trickles (slowloris), a connection
that says nothing, a kept-alive connection left idle, a body that trickles, and a TLS handshake
that stalls are each closed within their timeout (plus a second and a half of slack for a
loaded machine), and the controller says so in one line; while a request whose header is
complete is not cut by the header timeout, however long its body takes within the body's."""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import AsyncIterator

import anyio
import orjson
import pytest

from federation.devfleet import LocalFleet
from federation.server import CertPaths
from tests.controllerhelpers import ControllerProcess
from tests.securityhelpers import (
    LogWindow,
    admission_review,
    connect,
    controller,
    seconds_until_closed,
    serving_certs,
)

pytestmark = [pytest.mark.security, pytest.mark.anyio]
HEADER, IDLE, BODY, HANDSHAKE = 1.0, 2.0, 3.0, 1.0
SLACK = 1.5


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return serving_certs(tmp_path_factory.mktemp("slow-certs"))


@pytest.fixture(scope="module")
async def timed(
    fleet: LocalFleet, hub_crds: None, certs: CertPaths, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    args = [
        "--header-timeout",
        str(HEADER),
        "--idle-timeout",
        str(IDLE),
        "--body-timeout",
        str(BODY),
        "--tls-handshake-timeout",
        str(HANDSHAKE),
    ]
    async with controller(
        fleet, name="slow", log_dir=tmp_path_factory.mktemp("slow"), certs=certs, extra_args=args
    ) as proc:
        yield proc


def trust(certs: CertPaths) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_cert))


def _trickle(sock: ssl.SSLSocket | object, first: bytes, *, every: float, limit: float) -> float:
    """Send ``first``, then one byte every ``every`` seconds, until the server closes the
    connection; seconds from the first byte to the close."""
    assert isinstance(sock, ssl.SSLSocket)
    started = time.monotonic()
    sock.sendall(first)
    while time.monotonic() - started < limit:
        readable, _, _ = select.select([sock], [], [], every)  # the trickle's pace
        if readable:
            try:
                if not sock.recv(65536):
                    return time.monotonic() - started
            except (ConnectionResetError, ssl.SSLError, OSError):
                return time.monotonic() - started
            continue
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return time.monotonic() - started
    raise AssertionError(f"still open after {limit}s")


async def test_a_header_that_trickles_is_cut_at_the_header_timeout(
    timed: ControllerProcess, certs: CertPaths
) -> None:
    window = LogWindow(timed)
    sock = connect(timed.port, tls=trust(certs))
    closed = await anyio.to_thread.run_sync(
        lambda: _trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", every=0.2, limit=30)
    )
    print(f"slowloris closed after {closed:.2f}s")
    assert HEADER - 0.1 <= closed <= HEADER + SLACK
    lines = window.lines()
    assert any(f"no complete request header within {HEADER:g}s" in line for line in lines), lines


async def test_a_connection_that_says_nothing_is_closed(timed: ControllerProcess, certs: CertPaths) -> None:
    sock = connect(timed.port, tls=trust(certs))  # the handshake done, then silence
    closed, received = await anyio.to_thread.run_sync(
        lambda: seconds_until_closed(sock, started=time.monotonic(), limit=30)
    )
    print(f"silent connection closed after {closed:.2f}s")
    assert received == b"" and closed <= HEADER + SLACK


async def test_an_idle_kept_alive_connection_is_closed_at_the_idle_timeout(
    timed: ControllerProcess, certs: CertPaths
) -> None:
    sock = connect(timed.port, tls=trust(certs))

    def request_then_wait() -> tuple[float, bytes]:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"ok\n"):
            answer += sock.recv(65536)
        return seconds_until_closed(sock, started=time.monotonic(), limit=30)

    closed, more = await anyio.to_thread.run_sync(request_then_wait)
    print(f"idle keep-alive connection closed after {closed:.2f}s")
    assert more == b"" and IDLE - 0.1 <= closed <= IDLE + SLACK


async def test_a_body_that_trickles_is_cut_at_the_body_timeout(
    timed: ControllerProcess, certs: CertPaths
) -> None:
    sock = connect(timed.port, tls=trust(certs))
    head = (
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )

    def trickle_body() -> tuple[float, float, bytes]:
        started = time.monotonic()
        sock.sendall(head + b'{"apiVersion": ')
        sock.settimeout(30)
        answer = sock.recv(65536)
        answered = time.monotonic() - started
        closed, rest = seconds_until_closed(sock, started=started, limit=30)
        return answered, closed, answer + rest

    answered, closed, answer = await anyio.to_thread.run_sync(trickle_body)
    print(f"trickling body answered after {answered:.2f}s, closed after {closed:.2f}s")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"the AdmissionReview did not arrive within 3s" in answer
    assert BODY - 0.1 <= answered <= BODY + SLACK
    # Then aiohttp reads what is left of the body for at most --body-timeout (its lingering
    # time), so that the client reads the answer before the connection goes.
    assert closed <= 2 * BODY + SLACK


async def test_a_request_in_progress_outlives_the_header_timeout(
    timed: ControllerProcess, certs: CertPaths
) -> None:
    body = orjson.dumps(admission_review(None, uid="slow-but-fine", operation="DELETE"))
    head = (
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    sock = connect(timed.port, tls=trust(certs))

    def slow_body() -> tuple[float, bytes]:
        started = time.monotonic()
        sock.sendall(head)
        pieces = [body[i : i + len(body) // 10 + 1] for i in range(0, len(body), len(body) // 10 + 1)]
        for piece in pieces:
            select.select([], [], [], 0.2)  # the body's pace: 2 s in all, past the header timeout
            sock.sendall(piece)
        _, answer = seconds_until_closed(sock, started=started, limit=30)
        return time.monotonic() - started, answer

    took, answer = await anyio.to_thread.run_sync(slow_body)
    print(f"a slow body within --body-timeout: answered after {took:.2f}s")
    assert took > HEADER + 0.5
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b'"uid":"slow-but-fine","allowed":true' in answer


@pytest.mark.parametrize(
    ("sent", "what"),
    [(b"", "nothing"), (b"\x16\x03\x01\x02\x00\x01", "half a ClientHello")],
    ids=["silent", "half"],
)
async def test_a_tls_handshake_that_stalls_is_cut(timed: ControllerProcess, sent: bytes, what: str) -> None:
    sock = connect(timed.port)  # plain TCP on the TLS port: the handshake never completes

    def stall() -> tuple[float, bytes]:
        started = time.monotonic()
        sock.sendall(sent)
        return seconds_until_closed(sock, started=started, limit=30)

    closed, _ = await anyio.to_thread.run_sync(stall)
    print(f"TLS handshake stalled after {what}: closed after {closed:.2f}s")
    assert HANDSHAKE - 0.1 <= closed <= HANDSHAKE + SLACK
    assert timed.ready(), "the controller still answers"
