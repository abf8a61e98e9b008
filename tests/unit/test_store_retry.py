"""The store's retry loop, in fake time: backoff, deadline, health callbacks, error translation."""

from __future__ import annotations

import random

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.errors import StoreError, StoreUnavailableError
from federation.store import RetryPolicy, retrying


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Fails with the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


POLICY = RetryPolicy(first_delay=0.1, max_delay=1.0, multiplier=2.0, deadline=5.0)


async def test_connection_faults_are_retried_with_growing_jittered_delays() -> None:
    time = FakeTime()
    faults: list[BaseException] = []
    recovered: list[bool] = []
    attempt = Flaky(
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        OSError("Network is unreachable"),
    )
    result = await retrying(
        attempt,
        what="works id=1",
        target="db:5432/x",
        policy=POLICY,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(7),
        on_fault=faults.append,
        on_success=lambda: recovered.append(True),
    )
    assert result == "ok" and attempt.calls == 6
    assert len(faults) == 5 and recovered == [True]
    # Each pause is in the upper half of first_delay × 2^n, capped at max_delay.
    for n, pause in enumerate(time.sleeps):
        base = min(1.0, 0.1 * 2**n)
        assert base / 2 <= pause <= base, (n, pause)


async def test_the_deadline_ends_the_retries_with_store_unavailable() -> None:
    time = FakeTime()
    faults: list[BaseException] = []
    attempt = Flaky(*[ConnectionResetError("reset by peer") for _ in range(1000)])
    with pytest.raises(StoreUnavailableError) as info:
        await retrying(
            attempt,
            what="works id=42",
            target="db.example:5433/federation",
            policy=POLICY,
            clock=time.clock,
            sleep=time.sleep,
            on_fault=faults.append,
        )
    message = str(info.value)
    assert message.startswith("works id=42: the database at db.example:5433/federation is unavailable")
    assert "ConnectionResetError" in message
    assert info.value.hint is not None
    assert isinstance(info.value.__cause__, ConnectionResetError)
    # Never slept past the deadline; the last attempt ran right at it.
    assert sum(time.sleeps) == pytest.approx(POLICY.deadline)
    assert len(faults) == attempt.calls


async def test_other_errors_are_not_retried_and_name_the_row() -> None:
    time = FakeTime()
    attempt = Flaky(asyncpg.exceptions.UniqueViolationError('duplicate key value violates "uq_works"'))
    with pytest.raises(StoreError) as info:
        await retrying(attempt, what="works id=7", target="db:5432/x", policy=POLICY, sleep=time.sleep)
    assert not isinstance(info.value, StoreUnavailableError)
    assert str(info.value) == 'works id=7: UniqueViolationError: duplicate key value violates "uq_works"'
    assert attempt.calls == 1 and time.sleeps == []


async def test_a_name_given_as_a_function_is_made_only_when_an_error_is_raised() -> None:
    time = FakeTime()
    asked: list[str] = []

    def what() -> str:
        asked.append("works id=9")
        return asked[-1]

    retried = Flaky(ConnectionResetError("reset by peer"), ConnectionResetError("reset by peer"))
    assert (
        await retrying(retried, what=what, target="x", policy=POLICY, clock=time.clock, sleep=time.sleep)
        == "ok"
    )
    assert asked == [], "faults that were retried away name nothing"

    refused = Flaky(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    with pytest.raises(StoreError, match=r"^works id=9: UniqueViolationError: duplicate key$"):
        await retrying(refused, what=what, target="x", policy=POLICY, sleep=time.sleep)
    gone = Flaky(*[ConnectionResetError("reset by peer") for _ in range(1000)])
    with pytest.raises(StoreUnavailableError, match=r"^works id=9: the database at x is unavailable"):
        await retrying(gone, what=what, target="x", policy=POLICY, clock=time.clock, sleep=time.sleep)
    assert asked == ["works id=9", "works id=9"]


async def test_transaction_conflicts_are_retried_without_turning_unhealthy() -> None:
    time = FakeTime()
    faults: list[BaseException] = []
    attempt = Flaky(
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    )
    result = await retrying(
        attempt,
        what="works",
        target="x",
        policy=POLICY,
        clock=time.clock,
        sleep=time.sleep,
        on_fault=faults.append,
    )
    assert result == "ok" and attempt.calls == 3 and faults == []


async def test_a_zero_deadline_means_one_attempt() -> None:
    time = FakeTime()
    attempt = Flaky(ConnectionRefusedError(111, "refused"))
    with pytest.raises(StoreUnavailableError):
        await retrying(
            attempt,
            what="connecting",
            target="x",
            policy=RetryPolicy(deadline=0),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert attempt.calls == 1 and time.sleeps == []


@given(failures=st.integers(min_value=1, max_value=200), seed=st.integers(min_value=0, max_value=2**32))
def test_delays_stay_within_bounds(failures: int, seed: int) -> None:
    delay = POLICY.delay(failures, random.Random(seed))
    assert POLICY.first_delay / 2 <= delay <= POLICY.max_delay
