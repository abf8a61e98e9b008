"""A member client's throttle (`federation.kube.throttle`) in fake time: the bucket spreads a
burst at its rate, a cancelled wait gives its token back, a Retry-After holds every request,
and each cluster's bucket is its own."""

from __future__ import annotations

import anyio
import pytest

from federation.errors import ClusterUnreachableError
from federation.informers.clock import FakeClock
from federation.kube.throttle import (
    MAX_RETRY_AFTER,
    NO_LIMIT,
    RateLimit,
    Throttle,
    TokenBucket,
    retry_after_seconds,
    stop_signal,
)
from federation.metrics import KUBE_THROTTLE_SECONDS, KUBE_THROTTLED


def test_a_burst_goes_at_once_then_requests_are_spread_at_the_rate() -> None:
    bucket = TokenBucket(RateLimit(qps=10, burst=3), now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [round(bucket.reserve(0.0), 6) for _ in range(3)] == [0.1, 0.2, 0.3]  # in debt
    assert round(bucket.reserve(1.0), 6) == 0.0  # 1 s later the debt is paid and tokens refill
    assert bucket.reserve(100.0) == 0.0
    assert [bucket.reserve(100.0) for _ in range(2)] == [0.0, 0.0]  # refilled only up to burst
    assert bucket.reserve(100.0) > 0


def test_no_limit_never_waits_but_a_retry_after_still_holds() -> None:
    bucket = TokenBucket(NO_LIMIT, now=0.0)
    assert all(bucket.reserve(0.0) == 0.0 for _ in range(10_000))
    bucket.pause(0.0, 2.0)
    assert bucket.reserve(0.5) == 1.5
    bucket.pause(0.0, 10 * MAX_RETRY_AFTER)
    assert bucket.reserve(0.0) == MAX_RETRY_AFTER  # a member cannot stall us for ever


async def request(throttle: Throttle, done: list[str], name: str) -> None:
    """One request through `throttle`: `name` is recorded when it may be sent."""
    await throttle.wait()
    done.append(name)


async def test_waiters_are_released_in_turn_as_fake_time_passes() -> None:
    clock = FakeClock()
    throttle = Throttle("t-turns", RateLimit(qps=1, burst=1), clock=clock)
    done: list[str] = []
    throttled_before = KUBE_THROTTLED.labels("t-turns")._value.get()
    async with anyio.create_task_group() as tg:
        for name in "abc":
            tg.start_soon(request, throttle, done, name)
            await anyio.wait_all_tasks_blocked()
        assert done == ["a"]
        await clock.advance(1.0)
        assert done == ["a", "b"]
        await clock.advance(1.0)
        assert done == ["a", "b", "c"]
    assert KUBE_THROTTLED.labels("t-turns")._value.get() - throttled_before == 2
    assert KUBE_THROTTLE_SECONDS.labels("t-turns", "rate-limit")._value.get() >= 3.0  # 1 s + 2 s


async def test_a_cancelled_wait_gives_its_token_back() -> None:
    clock = FakeClock()
    throttle = Throttle("t-cancel", RateLimit(qps=1, burst=1), clock=clock)
    await throttle.wait()  # the burst
    with anyio.move_on_after(0.05):  # real time: the fake clock never reaches the token
        await throttle.wait()
    # The abandoned reservation was refunded: the next request waits 1 s, not 2.
    assert throttle.bucket.reserve(clock.now()) == pytest.approx(1.0)


async def test_a_retry_after_holds_every_request_of_the_client() -> None:
    clock = FakeClock()
    throttle = Throttle("t-retry", NO_LIMIT, clock=clock)
    throttle.retry_after(5.0)
    done: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(request, throttle, done, "a")
        tg.start_soon(request, throttle, done, "b")
        await anyio.wait_all_tasks_blocked()
        await clock.advance(4.9)
        assert done == []
        await clock.advance(0.1)
        assert sorted(done) == ["a", "b"]
    assert KUBE_THROTTLE_SECONDS.labels("t-retry", "retry-after")._value.get() >= 10.0


async def test_each_cluster_has_its_own_bucket() -> None:
    clock = FakeClock()
    slow = Throttle("t-slow", RateLimit(qps=0.001, burst=1), clock=clock)
    fast = Throttle("t-fast", RateLimit(qps=1000, burst=10), clock=clock)
    await slow.wait()
    with anyio.move_on_after(0.05):
        await slow.wait()  # the slow member's second request would wait 1,000 s...
    for _ in range(10):
        assert await fast.wait() == 0.0  # ...while the other member's go at once


@pytest.mark.parametrize(
    ("header", "seconds"), [("1", 1.0), (" 2.5 ", 2.5), ("-3", 0.0), (None, None), ("Wed, 21 Oct", None)]
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


async def test_abandoned_waits_fail_at_once_and_give_their_tokens_back() -> None:
    """A shutdown does not wait out a slow member's bucket: queued requests have not started."""
    clock = FakeClock()
    throttle = Throttle("t-abandon", RateLimit(qps=0.01, burst=1), clock=clock)
    await throttle.wait()
    failed: list[str] = []

    async def request(name: str) -> None:
        with pytest.raises(ClusterUnreachableError, match=r"cluster t-abandon: .*abandoned"):
            await throttle.wait()
        failed.append(name)

    with stop_signal() as signal:  # the requests' tasks start under it, as a propagator's do
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, "a")
            tg.start_soon(request, "b")
            await anyio.wait_all_tasks_blocked()
            signal.set()  # both are waiting for their tokens by now
    assert sorted(failed) == ["a", "b"]
    # Both tokens were returned: the next request waits for one token (100 s), not three.
    assert throttle.bucket.reserve(clock.now()) == pytest.approx(100.0)


async def test_after_the_stop_signal_a_stopping_task_s_next_request_fails_instead_of_waiting() -> None:
    """A shielded apply under way when its propagator stops sends its next request only if a
    token is at hand: a slow member's bucket does not hold the shutdown (SIGTERM) for minutes.
    Tasks of other contexts (the member's informers) wait as usual."""
    clock = FakeClock()
    throttle = Throttle("t-stop", RateLimit(qps=0.01, burst=2), clock=clock)
    outcomes: dict[str, str] = {}

    async def stopping_propagator() -> None:
        with stop_signal() as signal:
            await throttle.wait()  # a token at hand: goes, signal set or not
            signal.set()
            try:
                await throttle.wait()  # the last token: still at hand, goes
                await throttle.wait()  # none left: fails at once, nothing was sent
            except ClusterUnreachableError:
                outcomes["propagator"] = "failed at once"

    async def informer() -> None:
        await throttle.wait()  # not in the stopping context: waits for its token
        outcomes["informer"] = "served"

    await stopping_propagator()
    assert outcomes == {"propagator": "failed at once"}
    # The refused request gave its token back: the informer waits one token's time (100 s).
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(99.0)
        assert "informer" not in outcomes
        await clock.advance(1.0)
    assert outcomes["informer"] == "served"
