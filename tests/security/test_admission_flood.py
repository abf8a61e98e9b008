"""Issue 10, finding 3: one unauthenticated request froze the controller. Now several worst-case
AdmissionReviews at once (issue 10's 8 selectors x 100 rules x 256 operations, a 100-selector
variant, and one just under the work cap that is really judged) leave /healthz answering
within a second and the controller propagating, against the real fleet."""

from __future__ import annotations

import http.client
import secrets
import ssl
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from federation.devfleet import LocalFleet
from federation.server import CertPaths
from tests.controllerhelpers import ControllerProcess, apply, get
from tests.kubehelpers import eventually
from tests.securityhelpers import Answer, LogWindow, controller, post, serving_certs, worst_review

pytestmark = [pytest.mark.security, pytest.mark.anyio]

#: (selectors, rules, operations) of the reviews sent at once, twice each.
FLOOD = [(8, 100, 256), (8, 100, 256), (100, 100, 256), (100, 100, 256), (8, 36, 256), (8, 36, 256)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return serving_certs(tmp_path_factory.mktemp("flood-certs"))


@pytest.fixture(scope="module")
async def flooded(
    fleet: LocalFleet, hub_crds: None, certs: CertPaths, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    async with controller(
        fleet,
        name="flood",
        log_dir=tmp_path_factory.mktemp("flood"),
        certs=certs,
        members={"member-1": {"security": "flood"}},
    ) as proc:
        yield proc


def _poll_healthz(
    port: int, ca: Path, stop: threading.Event, latencies: list[float], errors: list[str]
) -> None:
    """GET /healthz on a new connection (as a kubelet probe does) every 50 ms until `stop`."""
    context = ssl.create_default_context(cafile=str(ca))
    while not stop.is_set():
        started = time.monotonic()
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if response.status != 200 or body != b"ok\n":
                errors.append(f"{response.status} {body!r}")
        except OSError as exc:
            errors.append(repr(exc))
        latencies.append(time.monotonic() - started)
        stop.wait(0.05)  # the probe's pace, not a synchronisation


async def test_healthz_answers_within_a_second_and_propagation_goes_on_under_a_flood(
    fleet: LocalFleet, flooded: ControllerProcess, certs: CertPaths, namespace: str
) -> None:
    url = f"{flooded.url}/validate"
    trust = ssl.create_default_context(cafile=str(certs.ca_cert))
    bodies = {shape: worst_review(*shape, uid=f"flood-{secrets.token_hex(3)}") for shape in set(FLOOD)}
    print("review sizes:", {shape: len(body) for shape, body in bodies.items()})
    window = LogWindow(flooded)

    # Something to propagate while the flood runs.
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "during-flood", "namespace": namespace},
        "data": {"k": "v"},
    }
    policy = {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": "during-flood", "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "during-flood"}],
            "placement": {"clusterNames": ["member-1"]},
        },
    }

    latencies: list[float] = []
    errors: list[str] = []
    stop = threading.Event()
    answers: list[tuple[tuple[int, int, int], Answer]] = []
    landed = anyio.Event()
    landed_during_flood = False

    def judged_once(shape: tuple[int, int, int]) -> bool:
        """The review under the cap has been really judged (not only turned away busy)."""
        return shape != (8, 36, 256) or any(s == shape and a.status == 200 for s, a in answers)

    async def flood(shape: tuple[int, int, int], session: aiohttp.ClientSession) -> None:
        sent = 0
        while sent < 30 and (sent < 2 or not landed.is_set() or not judged_once(shape)):
            answers.append((shape, await post(session, url, bodies[shape], ssl_context=trust)))
            sent += 1

    async def propagate() -> None:
        nonlocal landed_during_flood
        await anyio.to_thread.run_sync(lambda: apply(fleet, "hub", configmap, policy))

        async def in_member() -> bool:
            return await anyio.to_thread.run_sync(
                lambda: get(fleet, "member-1", "configmap", "during-flood", namespace) is not None
            )

        await eventually(in_member, timeout=90, what="the ConfigMap in member-1 during the flood")
        landed_during_flood = not flood_done.is_set()
        landed.set()

    flood_done = anyio.Event()
    poller = threading.Thread(
        target=_poll_healthz, args=(flooded.port, certs.ca_cert, stop, latencies, errors), daemon=True
    )
    poller.start()
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(propagate)
            async with anyio.create_task_group() as senders:
                for shape in FLOOD:
                    senders.start_soon(flood, shape, session)
            flood_done.set()
    finally:
        stop.set()
        await anyio.to_thread.run_sync(poller.join)
    elapsed = time.monotonic() - started

    worst = max(latencies)
    print(
        f"/healthz under the flood: {len(latencies)} probes in {elapsed:.1f}s, worst {worst * 1000:.0f} ms, "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms"
    )
    for shape in sorted(set(FLOOD)):
        times = [a.seconds for s, a in answers if s == shape and a.status == 200]
        statuses = sorted({a.status for s, a in answers if s == shape})
        print(f"review {shape}: answered in {', '.join(f'{t:.2f}s' for t in times)} (statuses {statuses})")
    pauses = {
        gen: flooded.metric("federation_gc_pause_seconds_count", generation=gen) for gen in ("0", "1", "2")
    }
    slow = {
        gen: pauses[gen] - flooded.metric("federation_gc_pause_seconds_bucket", generation=gen, le="0.1")
        for gen in pauses
    }
    print(f"GC pauses by generation: {pauses}, of which over 100 ms: {slow}")
    assert not errors, errors[:5]
    assert latencies and worst < 1.0, f"worst /healthz latency {worst:.3f}s"
    assert landed.is_set() and landed_during_flood, "propagation did not go on during the flood"

    # Every review was answered: judged, admitted unchecked with a warning, or 429 (busy).
    assert {a.status for _, a in answers} <= {200, 429}, [a for _, a in answers if a.status not in (200, 429)]
    judged = [a.body["response"] for s, a in answers if a.status == 200 and s == (8, 36, 256)]
    skipped = [a.body["response"] for s, a in answers if a.status == 200 and s != (8, 36, 256)]
    assert judged and skipped, {s: a.status for s, a in answers}
    for response in judged + skipped:
        assert response["allowed"] is True
    # Under the cap: really checked (nothing to warn about, unless the budget ran out).
    assert any("warnings" not in r for r in judged), judged
    for response in skipped:
        [warning] = response["warnings"]
        assert "the JSON patches were not checked" in warning or "timed out" in warning, warning
    assert any("more than the 300000 a review may" in r["warnings"][0] for r in skipped)
    assert not [line for line in window.lines() if "Traceback" in line]
