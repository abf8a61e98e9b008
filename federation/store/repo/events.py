"""`events`: the append-only history, and its retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from federation.store.db import Connection, json_texts
from federation.store.enums import EventType
from federation.store.rows import EventRow, ObjectRef, StoredEvent

# ON CONFLICT on the writer's key: an append retried after a lost acknowledgement adds nothing.
APPEND = """
WITH written AS (
    INSERT INTO events (event_key, time, type, cluster, api_group, kind, namespace, name, message, details)
    SELECT e.event_key, COALESCE(e.time, now()), e.type, e.cluster, e.api_group, e.kind, e.namespace, e.name,
           e.message, e.details::jsonb
    FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[])
        AS e(event_key, time, type, cluster, api_group, kind, namespace, name, message, details)
    ON CONFLICT (event_key) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM written
"""

PRUNE_BATCH = """
WITH doomed AS (
    SELECT id FROM events WHERE time < $1 ORDER BY time LIMIT $2
),
deleted AS (
    DELETE FROM events e USING doomed d WHERE e.id = d.id RETURNING 1
)
SELECT count(*) FROM deleted
"""


async def append_events(conn: Connection, rows: Sequence[EventRow]) -> int:
    """Append events; returns how many were new (a retried append returns fewer)."""
    if not rows:
        return 0
    written = await conn.fetchval(
        APPEND,
        [r.key for r in rows],
        [r.time for r in rows],
        [r.type.value for r in rows],
        [r.cluster for r in rows],
        [r.ref.api_group if r.ref else None for r in rows],
        [r.ref.kind if r.ref else None for r in rows],
        [r.ref.namespace if r.ref else None for r in rows],
        [r.ref.name if r.ref else None for r in rows],
        [r.message for r in rows],
        json_texts([r.details for r in rows]),
    )
    return int(written)


async def prune_events_batch(conn: Connection, *, before: datetime, batch: int) -> int:
    """Delete up to `batch` of the oldest events older than `before` (short transactions)."""
    return int(await conn.fetchval(PRUNE_BATCH, before, batch))


LIST = """
SELECT id, time, type, cluster, api_group, kind, namespace, name, message, details
FROM events
WHERE ($1::text IS NULL OR cluster = $1)
  AND ($2::text IS NULL OR namespace = $2)
  AND ($3::text IS NULL OR name = $3)
  AND ($4::text IS NULL OR kind = $4)
  AND ($5::text IS NULL OR type = $5)
  AND ($6::timestamptz IS NULL OR time >= $6)
ORDER BY time DESC, id DESC
LIMIT $7
"""


async def list_events(
    conn: Connection,
    *,
    cluster: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    type_: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[StoredEvent]:
    """The newest events first, filtered (every filter optional)."""
    records = await conn.fetch(LIST, cluster, namespace, name, kind, type_, since, limit)
    out = []
    for r in records:
        ref = (
            ObjectRef(
                api_group=r["api_group"] or "", kind=r["kind"], namespace=r["namespace"] or "", name=r["name"]
            )
            if r["kind"]
            else None
        )
        out.append(
            StoredEvent(
                id=int(r["id"]),
                time=r["time"],
                type=EventType(r["type"]),
                message=r["message"],
                cluster=r["cluster"],
                ref=ref,
                details=r["details"] or {},
            )
        )
    return out
