"""Which driver errors count as the database going away, and what the caller sees instead."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from federation.errors import ConfigError, StoreError, StoreUnavailableError
from federation.store import faults
from federation.store.url import asyncpg_dsn, describe, sqlalchemy_url

CONNECTION_FAULTS = [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    ConnectionResetError("reset"),
    TimeoutError(),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError(
        "terminating connection because of crash of another server process"
    ),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.InterfaceError("cannot call Connection.fetch(): connection is closed"),
]

NOT_FAULTS = [
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.ForeignKeyViolationError("violates foreign key constraint"),
    asyncpg.exceptions.UndefinedTableError('relation "works" does not exist'),
    asyncpg.exceptions.InterfaceError("the pool is closing"),
    ValueError("a bug"),
]


def test_connection_faults_are_recognised() -> None:
    for exc in CONNECTION_FAULTS:
        assert faults.is_connection_fault(exc), exc
        assert faults.is_retryable(exc), exc
        assert isinstance(faults.translate(exc, what="w", target="t"), StoreUnavailableError), exc


def test_other_errors_are_not() -> None:
    for exc in NOT_FAULTS:
        assert not faults.is_retryable(exc), exc
        translated = faults.translate(exc, what="resources Deployment.apps default/web", target="t")
        assert type(translated) is StoreError
        assert str(translated).startswith("resources Deployment.apps default/web: "), translated


def test_faults_wrapped_by_sqlalchemy_or_chained_are_found() -> None:
    wrapped = OperationalError("SELECT 1", {}, asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert isinstance(wrapped, DBAPIError) and faults.is_connection_fault(wrapped)
    outer = RuntimeError("while migrating")
    outer.__cause__ = ConnectionRefusedError(111, "refused")
    assert faults.is_connection_fault(outer)


def test_transaction_conflicts_are_retryable_but_not_faults() -> None:
    exc = asyncpg.exceptions.SerializationError("could not serialize access")
    assert faults.is_retryable(exc) and not faults.is_connection_fault(exc)


def test_urls() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u:p%40ss@h:5433/db") == "postgresql://u:p%40ss@h:5433/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert describe("postgresql://u:secret@db.example:6543/fed") == "db.example:6543/fed"
    assert describe("postgresql:///fed") == "localhost:5432/fed"
    with pytest.raises(ConfigError, match="'sqlite' is not supported"):
        describe("sqlite:///x.db")
    with pytest.raises(ConfigError, match="is not a URL"):
        describe("not a url")
