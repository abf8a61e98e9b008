"""The asyncpg side of the store: the connection type the repository takes, and its codecs.

JSONB goes over the wire in Postgres's binary format (a version byte, then the JSON text),
encoded and decoded with orjson: the manifests and statuses are the bulk of every hot
statement, so this is where the time goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

_JSONB_VERSION = b"\x01"


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _Wrapped:
    """A JSON value that asyncpg must not mistake for a sub-array (see `jsonb_elements`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def jsonb_elements(values: Iterable[Any]) -> list[Any]:
    """The elements of a ``jsonb[]`` parameter.

    asyncpg reads a list inside an array parameter as a sub-array (a second dimension), so a
    JSON array (or scalar) is wrapped; mappings go as they are.
    """
    return [v if isinstance(v, dict) else _Wrapped(v) for v in values]


def encode_jsonb(value: Any) -> bytes:
    if isinstance(value, _Wrapped):
        value = value.value
    return _JSONB_VERSION + orjson.dumps(value, default=_default)


def decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Run on every new pool connection: JSONB as Python values (binary wire format)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=encode_jsonb, decoder=decode_jsonb, format="binary"
    )


def rowcount(status: str) -> int:
    """The row count of a command tag (``"INSERT 0 12"`` → 12, ``"UPDATE 3"`` → 3)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0
