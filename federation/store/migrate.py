"""Schema migrations, run programmatically (alembic as a library, no ``alembic.ini``).

The migration scripts are package data in ``federation/migrations/`` (``env.py``,
``script.py.mako``, ``versions/``), so a wheel carries them and ``federation db upgrade`` and
``federation run`` migrate from any install, not only from a checkout. They are found relative to
this package, or at ``FEDERATION_MIGRATIONS_DIR`` (scripts of another build), never relative to
the current directory, so the commands work from anywhere.

Every function is async and runs alembic inside ``AsyncConnection.run_sync`` on one connection
and one transaction (Postgres DDL is transactional: a failed upgrade leaves nothing behind).
``federation/migrations/env.py`` uses the connection handed over in ``config.attributes`` when
there is one and only opens its own when alembic's own command line runs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from federation.errors import ConfigError, StoreError
from federation.store import faults
from federation.store.models import VIEW_NAMES, Base
from federation.store.url import describe, sqlalchemy_url

MIGRATIONS_DIR_ENV = "FEDERATION_MIGRATIONS_DIR"
T = TypeVar("T")


#: The scripts shipped with this package (a path, not `importlib.resources`: alembic imports
#: ``env.py`` and the versions from a directory, and a wheel always installs one).
PACKAGED_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def migrations_dir() -> Path:
    """Where the alembic scripts are: ``FEDERATION_MIGRATIONS_DIR``, else the package's own."""
    override = os.environ.get(MIGRATIONS_DIR_ENV)
    path = Path(override) if override else PACKAGED_MIGRATIONS
    if not (path / "env.py").is_file():
        hint = (
            f"point {MIGRATIONS_DIR_ENV} at a directory with env.py and versions/, or unset it: "
            f"the package carries its own ({PACKAGED_MIGRATIONS})"
            if override
            else "reinstall the package (pip install --force-reinstall federation): its migrations are gone"
        )
        raise ConfigError(f"the schema migrations are not at {path}", hint=hint)
    return path


def alembic_config(url: str | None = None) -> Config:
    """An alembic `Config` built in code: script location and, when given, the database URL."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        # '%' would be read as interpolation by configparser.
        config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision the scripts know (what `upgrade` goes to by default)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migration scripts in {migrations_dir()}")
    return head


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """What alembic may compare: everything but the dashboard views."""
    return not (type_ == "table" and name in VIEW_NAMES)


@dataclass(frozen=True)
class Revisions:
    """The database's revision before and after a command (None: no schema / base)."""

    before: str | None
    after: str | None


def _current(connection: Connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()
    return heads[0] if heads else None


async def _run(url: str, what: str, fn: Callable[[Connection, Config], T]) -> T:
    config = alembic_config(url)
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(lambda sync_conn: fn(sync_conn, config))
    except CommandError as exc:
        raise StoreError(f"{what}: {exc}") from exc
    except StoreError:
        raise
    except Exception as exc:
        if faults.is_connection_fault(exc):
            raise faults.unavailable(exc, what=what, target=describe(url)) from exc
        raise faults.translate(exc, what=what, target=describe(url)) from exc
    finally:
        await engine.dispose()


#: The advisory lock migrations take (until their transaction ends): replicas of the controller
#: started together each migrate at start, and two concurrent upgrades of an empty database both
#: create the schema (the second fails on a duplicate type). The second waits, then finds it done.
MIGRATION_LOCK = 0x66656465726D6967  # "federmig"


def _migrate(step: Callable[[Config], None]) -> Callable[[Connection, Config], Revisions]:
    def run(connection: Connection, config: Config) -> Revisions:
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        before = _current(connection)
        config.attributes["connection"] = connection
        step(config)
        return Revisions(before=before, after=_current(connection))

    return run


async def upgrade(url: str, revision: str = "head") -> Revisions:
    """Upgrade the schema to `revision` (default: the newest)."""
    return await _run(
        url,
        f"upgrading the schema to {revision}",
        _migrate(lambda config: command.upgrade(config, revision)),
    )


async def downgrade(url: str, revision: str) -> Revisions:
    """Downgrade the schema to `revision` (``base`` removes every table and view)."""
    return await _run(
        url,
        f"downgrading the schema to {revision}",
        _migrate(lambda config: command.downgrade(config, revision)),
    )


async def current(url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return await _run(url, "reading the schema revision", lambda conn, _config: _current(conn))


async def schema_diff(url: str) -> list[Any]:
    """What alembic's autogenerate would change to make the database match the models.

    Empty when the migrations and the models agree (a test requires that).
    """

    def diff(connection: Connection, _config: Config) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={"include_object": include_object, "compare_type": True, "compare_server_default": True},
        )
        return list(compare_metadata(context, Base.metadata))

    return await _run(url, "comparing the schema with the models", diff)
