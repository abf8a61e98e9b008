"""Which database errors are worth retrying, and how every other one becomes a `StoreError`.

This is the boundary where asyncpg's and SQLAlchemy's exceptions stop: the rest of the store
(and everything above it) sees only `federation.errors`:

- a *connection fault* (the server restarted, crashed, refused us, is starting up or shutting
  down, the socket broke) is retryable and marks the store unhealthy meanwhile;
- a *transaction conflict* (serialization failure, deadlock) is retryable but says nothing
  about the server's health;
- anything else is a bug or bad data: it is raised at once as `StoreError` naming the table and
  key the caller was working on.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.exc import DBAPIError

from federation.errors import StoreError, StoreUnavailableError

# SQLSTATEs of a server that is going away or not there yet (classes 08 and 57P, and 53300).
_CONNECTION_SQLSTATES = frozenset(
    {
        "08000",  # connection_exception
        "08001",  # sqlclient_unable_to_establish_sqlconnection
        "08003",  # connection_does_not_exist
        "08004",  # sqlserver_rejected_establishment_of_sqlconnection
        "08006",  # connection_failure
        "57P01",  # admin_shutdown: "terminating connection due to administrator command"
        "57P02",  # crash_shutdown: another backend crashed, the server is resetting
        "57P03",  # cannot_connect_now: "the database system is starting up / shutting down"
        "53300",  # too_many_connections
    }
)
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

_CLOSED_MARKERS = ("connection is closed", "connection was closed", "underlying connection is closed")


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, what SQLAlchemy wrapped, and its causes: the driver error may sit at any depth."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, DBAPIError) and isinstance(current.orig, BaseException):
            seen.append(current.orig)
        current = current.__cause__ or current.__context__
    return seen


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_connection_fault(exc: BaseException) -> bool:
    """The server or the connection to it is gone: retry on a fresh connection."""
    for e in _chain(exc):
        if isinstance(e, StoreUnavailableError):
            return True
        if isinstance(
            e, asyncpg.PostgresConnectionError | ConnectionError | asyncio.TimeoutError | TimeoutError
        ):
            return True
        if isinstance(e, OSError):  # refused, reset, unreachable
            return True
        if _sqlstate(e) in _CONNECTION_SQLSTATES:
            return True
        if isinstance(e, asyncpg.InterfaceError) and any(m in str(e) for m in _CLOSED_MARKERS):
            return True
        if isinstance(e, asyncpg.exceptions.InternalClientError):
            # "cannot switch to state N; another operation is in progress": asyncpg's protocol
            # state of a connection that broke mid-operation (seen when the pool resets it on
            # release after a server crash). The pool discards that connection.
            return True
    return False


def is_transaction_conflict(exc: BaseException) -> bool:
    """Postgres aborted the transaction to resolve a conflict: retry it as it is."""
    return any(_sqlstate(e) in _CONFLICT_SQLSTATES for e in _chain(exc))


def is_retryable(exc: BaseException) -> bool:
    return is_connection_fault(exc) or is_transaction_conflict(exc)


def _driver_message(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
            return f"{type(e).__name__}: {e}".strip()
    return f"{type(exc).__name__}: {exc}".strip()


def translate(exc: BaseException, *, what: str, target: str) -> StoreError:
    """The `StoreError` to raise (``from exc``) for a failure while doing `what` on `target`.

    `what` names the table and key (``"works id=42"``); `target` is ``host:port/db``.
    """
    if isinstance(exc, StoreError):
        return exc
    if is_connection_fault(exc):
        return unavailable(exc, what=what, target=target)
    return StoreError(f"{what}: {_driver_message(exc)}")


def unavailable(exc: BaseException, *, what: str, target: str) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"{what}: the database at {target} is unavailable ({_driver_message(exc)})",
        hint="is Postgres running and reachable? check --database-url / FEDERATION_DATABASE_URL, "
        "or leave both unset to use the embedded database",
    )
