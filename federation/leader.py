"""Leader election: one active controller per hub, by a Postgres advisory lock.

Why Postgres rather than a Lease object on the hub: every write that matters (claiming a work,
recording its result) goes through this database, so the lock is held on the very resource it
protects. A session-level advisory lock is released by Postgres the moment the leader's session
ends — a crashed leader is replaced within one retry interval, with no lease-expiry window in
which two leaders could both believe they lead. The leader checks its session every
`check_interval` and steps down at once when it cannot, so it stops writing before a successor
can have started. The holder's identity is kept in `controller_leader` for dashboards and
`federation status`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import asyncpg

from federation.errors import StoreUnavailableError

log = logging.getLogger(__name__)


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a hub id."""
    return int.from_bytes(
        hashlib.sha256(f"federation-leader/{name}".encode()).digest()[:8], "big", signed=True
    )


@dataclass
class LeaderElector:
    """Campaigns for leadership of `hub` and runs the leader's work while it leads."""

    dsn: str  # a libpq URL (postgresql://...); the table comes with migration 0003
    hub: str
    identity: str = field(default_factory=default_identity)
    retry_interval: float = 2.0
    check_interval: float = 2.0
    is_leader: bool = False

    @asynccontextmanager
    async def leadership(self) -> AsyncIterator[anyio.CancelScope]:
        """Wait until we lead; the body runs in a scope that is cancelled if we stop leading."""
        conn = await self._campaign()
        self.is_leader = True
        log.info("leading hub %s as %s", self.hub, self.identity)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_session, conn, tg.cancel_scope)
                yield tg.cancel_scope
                tg.cancel_scope.cancel()
        finally:
            self.is_leader = False
            with anyio.CancelScope(shield=True):
                # The session may be gone already (that may be why we stepped down): then the
                # lock went with it, and there is nothing to undo.
                try:
                    await conn.execute("SELECT pg_advisory_unlock($1)", lock_key(self.hub))
                    await conn.execute(
                        "DELETE FROM controller_leader WHERE hub = $1 AND holder = $2",
                        self.hub,
                        self.identity,
                    )
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    pass
                try:
                    await conn.close(timeout=5)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                    conn.terminate()
            log.info("stopped leading hub %s", self.hub)

    async def _campaign(self) -> asyncpg.Connection:
        waiting_logged = False
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("leader election: cannot reach the database: %s", exc)
                await anyio.sleep(self.retry_interval)
                continue
            try:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(self.hub)):
                    await conn.execute(
                        """INSERT INTO controller_leader (hub, holder, since) VALUES ($1, $2, now())
                           ON CONFLICT (hub)
                           DO UPDATE SET holder = EXCLUDED.holder, since = EXCLUDED.since""",
                        self.hub,
                        self.identity,
                    )
                    return conn
                if not waiting_logged:
                    holder = (
                        await conn.fetchval("SELECT holder FROM controller_leader WHERE hub = $1", self.hub)
                        if await conn.fetchval("SELECT to_regclass('controller_leader') IS NOT NULL")
                        else None
                    )
                    log.info(
                        "another controller leads hub %s (%s); standing by", self.hub, holder or "unknown"
                    )
                    waiting_logged = True
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("leader election failed: %s", exc)
            await conn.close(timeout=5)
            await anyio.sleep(self.retry_interval)

    async def _watch_session(self, conn: asyncpg.Connection, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(self.check_interval)
            try:
                with anyio.fail_after(self.check_interval * 2):
                    await conn.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError) as exc:
                log.error("lost the leader session (%s); stepping down", exc)
                scope.cancel()
                return


async def current_leader(dsn: str, hub: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailableError(f"cannot reach the database to read the leader: {exc}") from exc
    try:
        value = await conn.fetchval("SELECT holder FROM controller_leader WHERE hub = $1", hub)
        return str(value) if value is not None else None
    finally:
        await conn.close()
