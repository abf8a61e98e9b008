"""Re-running a whole transaction when the database goes away, with a deadline.

A Postgres restart, a failover of a managed server or a dropped TCP connection must not lose a
write nor half-write one. The store therefore runs every unit of work (acquire a connection,
open a transaction, run the statements, commit) as one *attempt*; when an attempt fails with a
connection fault (see `faults`) the whole attempt is run again on a fresh connection after a
jittered exponential backoff. Postgres rolled the broken transaction back, so nothing of the
failed attempt remains; every write of the store is idempotent (upserts on natural keys,
events keyed by a writer-generated UUID, version-checked updates), so an attempt whose commit
succeeded but whose acknowledgement was lost is harmless to repeat.

While attempts fail the store reports itself unhealthy (the controller's ``/readyz`` follows);
when the deadline passes, `StoreUnavailableError` is raised and the caller's own retry (its work
queue's backoff) takes over. Time and sleep are injected so the unit test runs in fake time.

A caller that must answer someone quickly (an HTTP request of the dashboard API, a readiness
probe) wraps its calls in `give_up_after`: no attempt starts later than that many seconds from
then, so with the database down it gets `StoreUnavailableError` in about that time rather than
after the 30 s the controller's own loops are willing to wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from federation.store import faults

T = TypeVar("T")


class Monotonic(Protocol):
    """Monotonic seconds: ``time.monotonic`` in production, a fake in tests.

    Not a third clock type beside `federation.informers.clock.Clock`: only the shape of the two
    functions the retry loop calls, which that clock's bound ``now`` and ``sleep`` have too
    (``Store.connect(url, clock=fake.now, sleep=fake.sleep)`` type-checks). The store may import
    nothing of ours but `federation.errors` (an import-linter contract that keeps it the bottom
    layer), so it names the shape it needs rather than import the class.
    """

    def __call__(self) -> float: ...


class Sleep(Protocol):
    """Wait that many seconds: ``anyio.sleep`` in production, a fake in tests (see `Monotonic`)."""

    def __call__(self, seconds: float, /) -> Awaitable[None]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts: ``first_delay × multiplier^n``, capped at `max_delay`, each delay
    drawn uniformly from its upper half (jitter, so replicas do not reconnect in lockstep); no
    new attempt starts more than `deadline` seconds after the first failure.
    """

    first_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    deadline: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """The pause after the `failures`-th consecutive failure (1-based)."""
        base = min(self.max_delay, self.first_delay * self.multiplier ** max(0, failures - 1))
        return base * (0.5 + 0.5 * rng.random())


#: Jitter needs no independence between calls; seeding a new Random per call is costly.
_RNG = random.Random()

#: The `time.monotonic` after which no new attempt starts in this context (`give_up_after`).
_GIVE_UP_AT: ContextVar[float | None] = ContextVar("federation_store_give_up_at", default=None)


@contextmanager
def give_up_after(seconds: float) -> Iterator[None]:
    """Store calls inside (in this task and the tasks it starts) retry for at most ``seconds``
    from now, whatever their policy's deadline: for callers that must answer quickly."""
    limit = time.monotonic() + seconds
    outer = _GIVE_UP_AT.get()
    token = _GIVE_UP_AT.set(limit if outer is None else min(outer, limit))
    try:
        yield
    finally:
        _GIVE_UP_AT.reset(token)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str | Callable[[], str],
    target: str,
    policy: RetryPolicy,
    clock: Monotonic = time.monotonic,
    sleep: Sleep = anyio.sleep,
    rng: random.Random | None = None,
    on_fault: Callable[[BaseException], None] | None = None,
    on_success: Callable[[], None] | None = None,
) -> T:
    """Run `attempt` until it succeeds, a non-retryable error occurs, or the deadline passes.

    `what` (the table and key) and `target` (``host:port/db``) name the operation in errors;
    `what` may be a function that says it, called only when an error is raised.
    `on_fault` is called for every connection fault (the store turns unhealthy), `on_success`
    after a successful attempt (healthy again). Non-retryable errors are raised at once as a
    `StoreError`; when the deadline passes the last fault is raised as `StoreUnavailableError`
    (or as `StoreError` when it was a transaction conflict).
    """
    rng = rng or _RNG
    first_failure: float | None = None
    failures = 0
    while True:
        try:
            result = await attempt()
        except Exception as exc:
            if not faults.is_retryable(exc):
                raise faults.translate(exc, what=_said(what), target=target) from exc
            connection_fault = faults.is_connection_fault(exc)
            if connection_fault and on_fault is not None:
                on_fault(exc)
            now = clock()
            if first_failure is None:
                first_failure = now
            failures += 1
            remaining = policy.deadline - (now - first_failure)
            give_up_at = _GIVE_UP_AT.get()
            if give_up_at is not None:
                remaining = min(remaining, give_up_at - time.monotonic())
            if remaining <= 0:
                if connection_fault:
                    raise faults.unavailable(exc, what=_said(what), target=target) from exc
                raise faults.translate(exc, what=_said(what), target=target) from exc
            await sleep(min(policy.delay(failures, rng), remaining))
        else:
            if on_success is not None:
                on_success()
            return result


def _said(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()
