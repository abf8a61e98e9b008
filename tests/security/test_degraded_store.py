"""Issue 10, finding 7: with Postgres down, /readyz and API calls hung up to 30 s (the store's
retry loop). Against a real controller on a Postgres of its own: Postgres that hangs (every
process stopped with SIGSTOP: connections open, nothing answers) and Postgres that is gone
(stopped: connections refused) each get /readyz 503 within 2 s and API calls 503 with the
reason within about 2 s, /healthz keeps answering, and everything recovers when Postgres is
back."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import orjson
import pytest

from federation.devfleet import EmbeddedPostgres, LocalFleet
from federation.devfleet.procs import child_pids
from tests.controllerhelpers import ControllerProcess
from tests.kubehelpers import eventually
from tests.securityhelpers import controller
from tests.storehelpers import temporary_postgres

pytestmark = [pytest.mark.security, pytest.mark.anyio]
TOKEN = "degraded-token"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A Postgres only this module's controller uses, so stopping it disturbs no other test."""
    with temporary_postgres("federation-security-postgres-") as server:
        yield server


@pytest.fixture(scope="module")
async def degraded(
    fleet: LocalFleet,
    hub_crds: None,
    own_postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ControllerProcess]:
    async with controller(
        fleet,
        name="degraded",
        log_dir=tmp_path_factory.mktemp("degraded"),
        database_url=own_postgres.url,
        extra_args=["--api-token", TOKEN],
    ) as proc:
        yield proc


def timed_get(proc: ControllerProcess, path: str) -> tuple[int, Any, float]:
    """(status, body, seconds) of one GET, with the API token."""
    request = urllib.request.Request(proc.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    seconds = time.monotonic() - started
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = raw.decode()
    return status, body, seconds


@contextmanager
def hung(postgres: EmbeddedPostgres) -> Iterator[None]:
    """Every Postgres process stopped (SIGSTOP), then resumed: it hangs rather than refuses."""
    assert postgres.pid is not None
    # The postmaster first: stopped, it forks no backend after its children are listed (one
    # forked in between stayed running and answered the API with a 200 on a fresh clone).
    os.kill(postgres.pid, signal.SIGSTOP)
    pids = [postgres.pid, *child_pids(postgres.pid)]
    for pid in pids[1:]:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def assert_fast_503s(proc: ControllerProcess, *, reason: str) -> None:
    status, body, seconds = timed_get(proc, "/readyz")
    print(f"/readyz: {status} in {seconds:.2f}s")
    assert status == 503 and seconds < 2.0, (status, body, seconds)
    assert "[-]database failed" in body, body
    status, body, seconds = timed_get(proc, "/api/v1/clusters")
    print(f"/api/v1/clusters: {status} in {seconds:.2f}s: {body}")
    assert status == 503 and seconds < 2.5, (status, body, seconds)
    assert reason in body["error"], body
    status, _, seconds = timed_get(proc, "/healthz")
    assert status == 200 and seconds < 1.0


async def wait_recovered(proc: ControllerProcess) -> None:
    async def recovered() -> bool:
        status, body, _ = await anyio.to_thread.run_sync(timed_get, proc, "/api/v1/clusters")
        assert status == 200, body
        return await anyio.to_thread.run_sync(proc.ready)

    await eventually(recovered, timeout=90, interval=0.5, what="the API and /readyz answering again")


async def test_a_hung_database_gets_fast_503s_and_recovers(
    degraded: ControllerProcess, own_postgres: EmbeddedPostgres
) -> None:
    assert (await anyio.to_thread.run_sync(timed_get, degraded, "/api/v1/clusters"))[0] == 200
    with hung(own_postgres):
        await anyio.to_thread.run_sync(
            lambda: assert_fast_503s(degraded, reason="the state store did not answer within 2s")
        )
    await wait_recovered(degraded)


async def test_a_stopped_database_gets_fast_503s_and_recovers(
    degraded: ControllerProcess, own_postgres: EmbeddedPostgres
) -> None:
    await wait_recovered(degraded)
    await anyio.to_thread.run_sync(own_postgres.stop)
    try:
        await anyio.to_thread.run_sync(
            lambda: assert_fast_503s(degraded, reason="the state store is unavailable")
        )
    finally:
        await anyio.to_thread.run_sync(own_postgres.start)
    await wait_recovered(degraded)
