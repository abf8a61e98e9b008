"""`Listener`: Postgres LISTEN on a few channels, on a connection of its own, kept up.

Replicas hint each other through the database they share (no other channel between them exists
or is needed): the leader's hub side tells a member's owner that the member's works changed
(``federation_works``, the cluster as payload), and every batch of member statuses notifies the
leader (``federation_member_status``, sent by a trigger: migration 0006). A notification is only
ever a hint: everyone also polls, so a lost one (the connection dropped; Postgres restarted)
delays and never loses. That is why `on_connect` is called after every (re)connection: the
caller catches up on what it may have missed while not listening.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import asyncpg

from federation.store.db import Connection

log = logging.getLogger(__name__)

WORKS_CHANNEL = "federation_works"
MEMBER_STATUS_CHANNEL = "federation_member_status"

#: Called with (channel, payload) for every notification, on the event loop.
Handler = Callable[[str, str], None]


class Listener:
    def __init__(
        self,
        dsn: str,
        channels: dict[str, Handler],
        *,
        on_connect: Callable[[], None] | None = None,
        check_interval: float = 5.0,
        retry_initial: float = 0.5,
        retry_cap: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.channels = dict(channels)
        self.on_connect = on_connect
        self.check_interval = check_interval
        self.retry_initial = retry_initial
        self.retry_cap = retry_cap
        self.connected = anyio.Event()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff when the connection is lost."""
        delay = self.retry_initial
        while True:
            try:
                await self._listen_once()
                delay = self.retry_initial
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listening for notifications failed (%s); again in %.1fs", exc, delay)
            await anyio.sleep(delay)
            delay = min(self.retry_cap, delay * 2)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            for channel, handler in self.channels.items():
                await conn.add_listener(channel, _adapt(handler))
            self.connected.set()
            if self.on_connect is not None:
                self.on_connect()
            # asyncpg delivers notifications as they arrive; a dead connection shows only when
            # used, so it is checked (and a lost one reconnected) every `check_interval`.
            while True:
                await anyio.sleep(self.check_interval)
                with anyio.fail_after(self.check_interval):
                    await conn.fetchval("SELECT 1")
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await conn.close(timeout=2)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    conn.terminate()


def _adapt(handler: Handler) -> Callable[[Connection, int, str, object], None]:
    def on_notification(_conn: Connection, _pid: int, channel: str, payload: object) -> None:
        try:
            handler(channel, str(payload))
        except Exception:  # a bug in a handler must not end the listening
            log.exception("handling a notification on %s failed", channel)

    return on_notification
