"""Helpers for tests of the state store: throwaway databases on the session's Postgres."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from federation.devfleet import EmbeddedPostgres
from federation.store.url import parse


def with_database(url: str, database: str) -> str:
    """The same server as `url`, another database."""
    return parse(url).set(database=database).render_as_string(hide_password=False)


async def admin_execute(url: str, sql: str) -> None:
    """Run `sql` on the server's `postgres` database (CREATE/DROP DATABASE cannot run elsewhere)."""
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(url: str, name: str, *, template: str | None = None) -> str:
    suffix = f' TEMPLATE "{template}"' if template else ""
    await admin_execute(url, f'CREATE DATABASE "{name}"{suffix}')
    return with_database(url, name)


async def drop_database(url: str, name: str) -> None:
    await admin_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One query on a connection of its own (not the store's pool): what a dashboard would see."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@contextmanager
def temporary_postgres(prefix: str) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of its own, removed afterwards.

    Its directory is not under pytest's tmp_path: pytest prunes old numbered temp directories
    of every session of the same user, which would pull the data from under a running server.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(base / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
