"""The change log's leader-side loops — the sequencer and the event sinks — on a thread of
their own, with their own event loop and their own small store pool.

Why a thread: during a bulk rollout the controller's event loop has hundreds of ready tasks,
and every await of a loop there waits behind all of them. The sinks await several times per
batch (read, publish, acknowledgements, save the position), so in that loop they fell behind
the log (400–560 events/s delivered against ~800/s written; lag p99 28 s on NATS,
bench/events.py) although alone they deliver 6,000–8,000 events/s at ~0.1 CPU-ms each. Here
their awaits wait only for each other, and the interpreter lock is handed over every few
milliseconds, so a change reaches the buses within a sequencer round and a batch. The cost
stays what it was (the same work, on a second loop); the sequencer moves with them so that
numbering wakes the sinks directly.

The thread lives as long as the replica leads: `run` starts it, and cancelling `run` stops its
loop (the sinks close their connections, shielded) and waits for it. The watch API's feed lives
in the main loop and is told of each numbering through it (``on_numbered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from federation.api.sinksfile import SinkEntry
from federation.changes.sequencer import ChangeSequencer, SequencerSettings
from federation.changes.sinks import SinkRunner, runners
from federation.errors import StoreError
from federation.runtime.looplag import loop_options
from federation.store import Store, StoreSettings

log = logging.getLogger(__name__)

#: The thread's name for the operating system (`top -H`, /proc/PID/task/*/comm): its CPU apart
#: from the controller's loop.
OS_THREAD_NAME = "fed-export"

#: Seconds `run` waits for the thread to close its connections once cancelled.
STOP_GRACE = 15.0


@dataclass
class ExportSettings:
    sequencer: SequencerSettings | None = None
    #: Seconds between attempts to open the thread's pool while Postgres is unreachable.
    connect_retry: float = 2.0


class ExportThread:
    def __init__(
        self,
        database_url: str,
        sinks: Sequence[SinkEntry],
        *,
        hub: str,
        on_numbered: Callable[[], None],
        settings: ExportSettings | None = None,
    ) -> None:
        self.database_url = database_url
        self.sinks = list(sinks)
        self.hub = hub
        self.on_numbered = on_numbered
        self.settings = settings or ExportSettings()
        self.runners: list[SinkRunner] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: Callable[[], None] | None = None
        self._stopped = threading.Event()
        self._stop_requested = threading.Event()

    async def run(self) -> None:
        """Run the thread until cancelled; an error in it is raised here."""
        main = asyncio.get_running_loop()
        self._stopped.clear()
        self._stop_requested.clear()
        errors: list[BaseException] = []

        def numbered() -> None:
            main.call_soon_threadsafe(self.on_numbered)

        def body() -> None:
            _name_os_thread(OS_THREAD_NAME)
            try:
                anyio.run(self._main, numbered, backend_options=loop_options())
            except BaseException as exc:
                errors.append(exc)
            finally:
                self._stopped.set()

        thread = threading.Thread(target=body, name="federation-export", daemon=True)
        thread.start()
        try:
            # Abandoned on cancel (the worker returns once the thread has stopped): cancelling
            # must reach the `finally` that stops it.
            await anyio.to_thread.run_sync(self._stopped.wait, abandon_on_cancel=True)
        finally:
            with anyio.CancelScope(shield=True):
                self.stop()
                await anyio.to_thread.run_sync(self._stopped.wait, STOP_GRACE)
        if errors:
            raise errors[0]

    def stop(self) -> None:
        """Ask the thread's loop to finish (from any thread)."""
        self._stop_requested.set()  # seen by `_main` if its loop is not up yet
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed already
                loop.call_soon_threadsafe(stop)

    async def _main(self, numbered: Callable[[], None]) -> None:
        with anyio.CancelScope() as scope:
            self._loop = asyncio.get_running_loop()
            self._stop = scope.cancel
            if self._stop_requested.is_set():
                scope.cancel()
            store = await self._connect()
            try:
                self.runners = runners(store, self.sinks, hub=self.hub)

                def on_numbered() -> None:
                    numbered()
                    for runner in self.runners:
                        runner.notify()

                sequencer = ChangeSequencer(store, self.settings.sequencer, on_numbered=on_numbered)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(sequencer.run)
                    for runner in self.runners:
                        tg.start_soon(runner.run)
            finally:
                with anyio.CancelScope(shield=True):
                    await store.close()

    async def _connect(self) -> Store:
        settings = StoreSettings(min_connections=1, max_connections=2, application_name="federation-export")
        while True:
            try:
                return await Store.connect(self.database_url, settings=settings)
            except StoreError as exc:
                log.warning(
                    "the change log's sequencer and sinks cannot reach the store yet (retrying in %gs): %s",
                    self.settings.connect_retry,
                    exc,
                )
                await anyio.sleep(self.settings.connect_retry)


def _name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (Linux; elsewhere nothing happens)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
