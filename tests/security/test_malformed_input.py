"""Issue 10, finding 7: a non-ASCII bearer token or an AdmissionReview whose ``request.kind`` is
a string gave a 500 with a traceback; an over-long header logged a traceback per request.
Against a real controller (HTTPS, --api-token), bytes sent as they are: every malformed input
is a 4xx, each refusal is one warning line with no traceback, and a flood of them is a few
lines a second, the rest counted ("N similar lines suppressed")."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
import pytest

from federation.devfleet import LocalFleet
from federation.server import CertPaths
from tests.controllerhelpers import ControllerProcess
from tests.kubehelpers import eventually
from tests.securityhelpers import LogWindow, admission_review, controller, raw_request, serving_certs

pytestmark = [pytest.mark.security, pytest.mark.anyio]
TOKEN = "s3cret-token"
REJECTED = re.compile(r" W server\.http: (rejected|closed) .*?(?: \((\d+) similar lines suppressed\))?$")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return serving_certs(tmp_path_factory.mktemp("malformed-certs"))


@pytest.fixture(scope="module")
async def target(
    fleet: LocalFleet, hub_crds: None, certs: CertPaths, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    async with controller(
        fleet,
        name="malformed",
        log_dir=tmp_path_factory.mktemp("malformed"),
        certs=certs,
        extra_args=["--api-token", TOKEN],
    ) as proc:
        yield proc


def http(method: str, path: str, *headers: bytes, body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: controller", b"Connection: close", *headers]
    if body:
        head += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def review(**request: Any) -> bytes:
    base = admission_review({"apiVersion": "federation.io/v1alpha1", "kind": "MemberCluster"}, uid="m")
    base["request"].update(request)
    return orjson.dumps(base)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


#: (id, the bytes sent, the status expected, words of the answer's body)
MALFORMED: list[tuple[str, bytes, int, bytes]] = [
    (
        "non-ascii-bearer-token",
        http("GET", "/api/v1/clusters", b"Authorization: Bearer caf\xc3\xa9\xff\xfe"),
        401,
        b"the bearer token is not valid",
    ),
    (
        "over-long-header",
        http("GET", "/healthz", b"X-Long: " + b"a" * 20_000),
        400,
        b"Got more than 8190 bytes",
    ),
    ("not-http", b"HELLO THERE\r\n\r\n", 400, b""),
    ("kind-is-a-string", http("POST", "/validate", body=review(kind="MemberCluster")), 400, b"request.kind"),
    ("object-is-a-list", http("POST", "/validate", body=review(object=[1, 2])), 400, b"request.object"),
    ("uid-is-a-number", http("POST", "/validate", body=review(uid=7)), 400, b"request.uid"),
    ("nested-too-deep", http("POST", "/validate", body=review(object=nested(150))), 400, b"deeper than 100"),
    ("not-json", http("POST", "/validate", body=b"{not json"), 400, b"expected an AdmissionReview (JSON)"),
    (
        "declared-too-large",
        b"POST /validate HTTP/1.1\r\nHost: c\r\nContent-Length: 5242880\r\nConnection: close\r\n\r\n",
        413,
        b"larger than 4194304 bytes (5242880 bytes)",
    ),
    (
        "sent-too-large",
        b"POST /validate HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n" % (4_200_000)
        + b" " * 4_200_000
        + b"\r\n0\r\n\r\n",
        413,
        b"larger than 4194304 bytes",
    ),
]


def accounted(lines: list[str]) -> tuple[int, int]:
    """(refusal lines written, refusals they account for: each line plus the count it says
    was suppressed before it)."""
    written = total = 0
    for line in lines:
        match = REJECTED.search(line)
        if match:
            written += 1
            total += 1 + int(match.group(2) or 0)
    return written, total


async def test_every_malformed_input_is_a_4xx_and_one_line_without_a_traceback(
    target: ControllerProcess, certs: CertPaths
) -> None:
    tls = ssl.create_default_context(cafile=str(certs.ca_cert))
    window = LogWindow(target)
    for name, data, status, words in MALFORMED:
        got, body = await anyio.to_thread.run_sync(lambda d=data: raw_request(target.port, d, tls=tls))
        assert (got, words in body) == (status, True), (name, got, body[:300])
    assert target.ready(), "the controller still answers"

    async def all_logged() -> bool:
        written, total = accounted(window.lines())
        assert written == total == len(MALFORMED), window.lines()
        return True

    await eventually(all_logged, timeout=10, what="one line per refused request")
    lines = window.lines()
    assert not [line for line in lines if "Traceback" in line or " E " in line], lines
    assert any(
        "rejected GET /api/v1/clusters from 127.0.0.1: 401 the bearer token is not valid" in x for x in lines
    )
    assert any("rejected a request from 127.0.0.1: 400 Got more than 8190 bytes" in line for line in lines)
    assert target.metric("federation_http_rejected_total") >= len(MALFORMED)


async def test_a_flood_of_malformed_requests_is_a_few_lines_a_second_and_all_counted(
    target: ControllerProcess, certs: CertPaths
) -> None:
    tls = ssl.create_default_context(cafile=str(certs.ca_cert))
    window = LogWindow(target)
    garbage = http("POST", "/validate", body=review(kind="MemberCluster"))
    sent = 0

    def send() -> None:
        nonlocal sent
        status, _ = raw_request(target.port, garbage, tls=tls)
        assert status == 400
        sent += 1

    started = anyio.current_time()
    for _ in range(150):
        await anyio.to_thread.run_sync(send)
    elapsed = anyio.current_time() - started
    written, _ = accounted(window.lines())
    print(f"150 malformed requests in {elapsed:.1f}s: {written} lines")
    assert written <= 10 + elapsed * 1 + 1  # the burst, then one a second

    # Once the bucket has a token again, the next line written says how many were left out.
    async def summed_up() -> bool:
        before = len(window.lines())
        await anyio.to_thread.run_sync(send)
        lines = window.lines()
        assert len(lines) > before and "similar lines suppressed" in lines[-1], lines[before:]
        return True

    await eventually(summed_up, timeout=15, interval=0.5, what="a line counting the suppressed ones")
    written, total = accounted(window.lines())
    assert total == sent, (written, total, sent)
    assert not [line for line in window.lines() if "Traceback" in line]
