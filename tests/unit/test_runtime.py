"""The controller runtime's one error policy and the supervisor, in fake time."""

from __future__ import annotations

import itertools

import anyio
import pytest

from federation.errors import ApiError, FederationError
from federation.informers.clock import FakeClock
from federation.informers.queue import WorkQueue
from federation.informers.ratelimit import ItemExponentialLimiter
from federation.runtime import Result, TerminalError, run_workers, supervise
from federation.runtime.workers import process

_names = itertools.count()


def new_queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue(f"rt-{next(_names)}", clock=clock, rate_limiter=ItemExponentialLimiter(1.0, 60.0))


async def take(q: WorkQueue[str], key: str) -> str:
    got = q.get_nowait()
    assert got == key
    return got


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raised", "outcome", "requeues"),
    [
        (None, "ok", 0),
        (TerminalError("the object is wrong"), "terminal", 0),
        (ApiError("the hub said 500", status=500), "error", 1),
        (RuntimeError("a bug"), "crash", 1),
    ],
)
async def test_one_error_policy_for_every_outcome(
    raised: Exception | None, outcome: str, requeues: int
) -> None:
    clock = FakeClock()
    q = new_queue(clock)

    async def reconcile(_key: str) -> Result | None:
        if raised is not None:
            raise raised
        return None

    q.add("k")
    key = await take(q, "k")
    assert await process(q, reconcile, key, name="test") == outcome
    q.done(key)
    assert q.num_requeues("k") == requeues
    # A retry waits out its backoff (1 s for the first); success and terminal never come back.
    await clock.advance(1.01)
    assert (q.get_nowait() == "k") == (requeues == 1)


async def test_requeue_after_comes_back_only_when_its_time_comes() -> None:
    clock = FakeClock()
    q = new_queue(clock)

    async def reconcile(_key: str) -> Result:
        return Result(requeue_after=5.0)

    q.add("k")
    key = await take(q, "k")
    assert await process(q, reconcile, key, name="test") == "requeue"
    q.done(key)
    assert q.num_requeues("k") == 0  # a requeue is not a failure: no backoff grows
    await clock.advance(4.9)
    assert q.get_nowait() is None
    await clock.advance(0.2)
    assert q.get_nowait() == "k"


async def test_the_error_hook_reports_instead_of_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    q = new_queue(clock)
    seen: list[tuple[str, str]] = []

    async def reconcile(_key: str) -> None:
        raise ApiError("refused", status=422)

    async def hook(key: str, exc: FederationError) -> bool:
        seen.append((key, str(exc)))
        return True

    q.add("k")
    key = await take(q, "k")
    with caplog.at_level("WARNING"):
        await process(q, reconcile, key, name="hooked", on_error=hook)
    assert seen == [("k", "refused")]
    assert not [r for r in caplog.records if "hooked" in r.getMessage()]
    assert q.num_requeues("k") == 1


async def test_workers_survive_a_crashing_key_and_exit_on_shutdown() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    done: list[str] = []
    three_done = anyio.Event()

    async def reconcile(key: str) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        done.append(key)
        if len(done) == 3:
            three_done.set()

    started = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_workers(q, reconcile, name="t", workers=2, started=started))
            await started.wait()
            for key in ("a", "bad", "b", "c"):
                q.add(key)
            await three_done.wait()
            q.shut_down()
    assert sorted(done) == ["a", "b", "c"]


async def test_supervise_restarts_a_crashed_task_after_a_backoff_and_stops_on_return() -> None:
    clock = FakeClock()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("crash")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: supervise("flaky", flaky, clock=clock, initial=1.0, cap=4.0))
            await anyio.wait_all_tasks_blocked()
            assert runs == [0]  # crashed once; waiting for its backoff
            await clock.advance(2.01)  # at most initial × (1 + jitter)
            assert runs == [0, 1]
            await clock.advance(4.01)
            assert runs == [0, 1, 2]  # returned cleanly: not run again


async def test_supervise_lets_cancellation_through() -> None:
    clock = FakeClock()
    cancelled = False

    async def forever() -> None:
        nonlocal cancelled
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: supervise("forever", forever, clock=clock))
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert cancelled
