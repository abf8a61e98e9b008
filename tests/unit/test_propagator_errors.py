"""A bug on one work is contained to that work (retried with backoff, its error saying so), and
the retry's backoff is the queue's exponential formula with the propagator's jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation.clusters import Member
from federation.informers.ratelimit import exponential
from federation.propagate.worker import ClusterPropagator, PropagatorSettings
from federation.store import ClaimedWork, ResourceId, WorkId, WorkState

DESIRED = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}}


def propagator(settings: PropagatorSettings | None = None) -> ClusterPropagator:
    member = Member(name="eu", labels={}, taints=(), source="test", client=object(), discovery=object())  # type: ignore[arg-type]
    return ClusterPropagator(
        member=member,
        store=None,  # type: ignore[arg-type]
        hub_id="hub-1",
        holder="me",
        ready=lambda: True,
        on_status=lambda _key: None,
        settings=settings or PropagatorSettings(),
        rng=random.Random(7),
    )


def work(attempts: int) -> ClaimedWork:
    return ClaimedWork(
        id=WorkId(1),
        resource_id=ResourceId(1),
        cluster="eu",
        state=WorkState.PENDING,
        desired=DESIRED,
        desired_hash="h",
        applied_hash=None,
        member_resource_version=None,
        attempts=attempts,
        version=3,
        claimed_until=datetime.now(UTC) + timedelta(minutes=1),
    )


async def test_a_crash_applying_one_work_becomes_its_retry(caplog: pytest.LogCaptureFixture) -> None:
    p = propagator()

    async def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the applier")

    p.applier.apply = crash  # type: ignore[method-assign]
    with caplog.at_level("ERROR"):
        await p._process_one(work(attempts=0))
    [(result, _then)] = p._results
    assert result.state is WorkState.PENDING and result.version == 3
    assert result.error == "the controller failed on this work (a bug, see its log)"
    assert result.next_attempt_at is not None
    [record] = [r for r in caplog.records if "applying crashed" in r.getMessage()]
    assert record.exc_info and getattr(record, "cluster", None) == "eu"


@pytest.mark.anyio
@pytest.mark.parametrize("attempts", [0, 1, 5, 9, 20, 21, 60, 61, 5000])
async def test_a_retry_waits_the_exponential_backoff_with_jitter(attempts: int) -> None:
    settings = PropagatorSettings(retry_base=1.0, retry_cap=300.0)
    p = propagator(settings)

    async def retry(*_args: Any, **_kwargs: Any) -> Any:
        from federation.propagate.applier import Outcome, Result

        return Outcome(Result.RETRY, "the member said 503")

    p.applier.apply = retry  # type: ignore[method-assign]
    before = datetime.now(UTC)
    await p._process_one(work(attempts))
    after = datetime.now(UTC)
    [(result, _then)] = p._results
    assert result.next_attempt_at is not None
    full = exponential(1.0, 300.0, attempts)
    assert full == min(300.0, 2.0 ** min(attempts, 20))  # what the propagator computed before
    assert before + timedelta(seconds=full / 2) <= result.next_attempt_at
    assert result.next_attempt_at <= after + timedelta(seconds=full)
