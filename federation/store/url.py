"""Database URLs: what the store accepts, and how to name a server in an error message.

People paste libpq URLs (``postgresql://``, ``postgres://``) and SQLAlchemy URLs
(``postgresql+asyncpg://``); both mean the same server. asyncpg wants the first form and
SQLAlchemy (alembic) the second, so each caller asks for its own spelling here.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from federation.errors import ConfigError

_ACCEPTED = ("postgresql", "postgres", "postgresql+asyncpg")


def parse(url: str) -> URL:
    """Parse and check a database URL; a wrong scheme is a `ConfigError` naming it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url!r} is not a URL",
            hint="use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
        ) from exc
    if parsed.drivername not in _ACCEPTED:
        raise ConfigError(
            f"database URL scheme {parsed.drivername!r} is not supported (Postgres only)",
            hint="use postgresql://… or postgresql+asyncpg://…",
        )
    return parsed


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg connects with (``postgresql://…``)."""
    return parse(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL of the same server, with the asyncpg driver."""
    return parse(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def describe(url: str) -> str:
    """``host:port/database`` for messages: never the password."""
    parsed = parse(url)
    host = parsed.host or "localhost"
    port = parsed.port or 5432
    return f"{host}:{port}/{parsed.database or ''}"
