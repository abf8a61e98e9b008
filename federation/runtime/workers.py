"""`run_workers`: the one worker loop, with the one error policy.

The policy, per key (client-go's `processNextWorkItem` with controller-runtime's additions):
- success: `forget` (clears the key's backoff); `Result.requeue_after` re-adds it after a delay;
- `TerminalError`: logged once as an error, counted, forgotten (no retry until the key changes);
- an expected error (`FederationError`: the API, the store, the cluster): a warning line and a
  retry with per-key exponential backoff;
- anything else is a bug: logged with its traceback and retried with backoff too — one key's
  crash never ends the loop, let alone the process;
- always `done`, so a key changed meanwhile is processed again.
Cancellation (shutdown, lost leadership) is never caught.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TypeVar

import anyio

from federation.errors import FederationError
from federation.informers import QueueShutDown, WorkQueue
from federation.logs import RECONCILE_ID
from federation.metrics import RECONCILE_DURATION, RECONCILE_ERRORS, RECONCILES
from federation.runtime.reconciler import Reconciler, TerminalError
from federation.tracing import span

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

#: The structured-log fields of a key (cluster, namespace, object_name, kind).
KeyDescriber = Callable[[K], Mapping[str, str]]
#: Told about an expected error before the retry; returns whether it handled the reporting (then
#: the loop logs nothing itself). The status writer turns a hub refusal into a condition here.
ErrorHook = Callable[[K, FederationError], Awaitable[bool]]


def _no_fields(_key: object) -> Mapping[str, str]:
    return {}


async def run_workers(
    queue: WorkQueue[K],
    reconcile: Reconciler[K],
    *,
    name: str,
    workers: int = 1,
    describe: Callable[[K], Mapping[str, str]] = _no_fields,
    on_error: Callable[[K, FederationError], Awaitable[bool]] | None = None,
    started: anyio.Event | None = None,
) -> None:
    """Run `workers` loops over `queue` until it is shut down. `name` labels the metrics
    (`reconciliation_total{controller=name}`) and the log lines; `started` is set once the
    workers are running."""
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(_worker, queue, reconcile, name, describe, on_error)
        if started is not None:
            started.set()


async def _worker(
    queue: WorkQueue[K],
    reconcile: Reconciler[K],
    name: str,
    describe: Callable[[K], Mapping[str, str]],
    on_error: Callable[[K, FederationError], Awaitable[bool]] | None,
) -> None:
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        try:
            await process(queue, reconcile, key, name=name, describe=describe, on_error=on_error)
        finally:
            queue.done(key)


async def process(
    queue: WorkQueue[K],
    reconcile: Reconciler[K],
    key: K,
    *,
    name: str,
    describe: Callable[[K], Mapping[str, str]] = _no_fields,
    on_error: Callable[[K, FederationError], Awaitable[bool]] | None = None,
) -> str:
    """Reconcile one key already taken from `queue` (the caller calls `done`); returns the
    result label ("ok", "requeue", "terminal", "error", "crash") for tests."""
    started = time.perf_counter()
    RECONCILE_ID.set(uuid.uuid4().hex[:12])
    fields = dict(describe(key))
    try:
        with span("reconcile", controller=name, **fields):
            result = await reconcile(key)
        queue.forget(key)
        if result is not None and result.requeue_after is not None:
            queue.add_after(key, result.requeue_after)
            outcome = "requeue"
        else:
            outcome = "ok"
    except TerminalError as exc:
        log.error("%s: %s gave up (no retry until it changes): %s", name, key, exc, extra=fields)
        queue.forget(key)
        RECONCILE_ERRORS.labels(name).inc()
        outcome = "terminal"
    except FederationError as exc:
        handled = await _hook(on_error, key, exc, name, fields)
        if not handled:
            log.warning("%s: reconcile %s failed: %s", name, key, exc, extra=fields)
        RECONCILE_ERRORS.labels(name).inc()
        queue.add_rate_limited(key)
        outcome = "error"
    except Exception:
        log.exception("%s: reconcile %s crashed", name, key, extra=fields)
        RECONCILE_ERRORS.labels(name).inc()
        queue.add_rate_limited(key)
        outcome = "crash"
    RECONCILES.labels(name, outcome).inc()
    RECONCILE_DURATION.labels(name).observe(time.perf_counter() - started)
    return outcome


async def _hook(
    on_error: Callable[[K, FederationError], Awaitable[bool]] | None,
    key: K,
    exc: FederationError,
    name: str,
    fields: Mapping[str, str],
) -> bool:
    """Run the error hook; a hook that fails itself is a bug reported as such, and the key is
    still retried (the loop must outlive its hooks as it outlives its reconciles)."""
    if on_error is None:
        return False
    try:
        return await on_error(key, exc)
    except Exception:
        log.exception("%s: the error hook for %s crashed", name, key, extra=fields)
        return False


__all__ = ["ErrorHook", "KeyDescriber", "process", "run_workers"]
