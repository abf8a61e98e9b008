"""Alembic environment of the state store.

Normally run by `federation.store.migrate` (``federation db upgrade``), which hands over an open
connection in ``config.attributes["connection"]``. Run by alembic's own command line (for
``alembic revision --autogenerate`` while developing) it opens an asyncpg engine on
``sqlalchemy.url`` or ``FEDERATION_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from federation.store.migrate import include_object
from federation.store.models import Base
from federation.store.url import sqlalchemy_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("FEDERATION_DATABASE_URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or FEDERATION_DATABASE_URL")
    return sqlalchemy_url(url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_async_engine(_url(), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_configure)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _configure(given)
else:
    asyncio.run(_run_with_own_engine())
