"""`changes`: the fleet's change log (migration 0009) — numbered, read by position, pruned.

Rows are written by the tables' own triggers; here they are only numbered (`sequence_changes`:
the migration explains why positions are given after commit, in commit order), read after a
position (every reader: `federation events -w`, the watch API, the sinks) and pruned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from federation.store.db import Connection
from federation.store.rows import JSON, ObjectRef

#: Notified with the last position each time the sequencer numbers rows.
CHANGES_CHANNEL = "federation_changes"


@dataclass(frozen=True)
class ChangeRow:
    """One numbered change."""

    position: int
    time: datetime
    type: str
    cluster: str | None
    ref: ObjectRef | None
    data: JSON
    resource_id: int | None = None
    """The template's row, when the change is about a template (not for events and clusters)."""
    actor: str | None = None
    """Who last changed the template when this was written: its last field manager."""
    policy: str | None = None
    """The policy that placed the template then (``PropagationPolicy/shop/web``)."""
    placement_revision: int | None = None
    """The template's placement revision then."""

    def to_json(self) -> dict[str, Any]:
        """The change as the CLI's ``-o json`` and the watch API give it."""
        ref = self.ref
        return {
            "position": self.position,
            "time": self.time.isoformat(),
            "type": self.type,
            "cluster": self.cluster,
            "apiGroup": ref.api_group if ref else None,
            "kind": ref.kind if ref else None,
            "namespace": ref.namespace if ref else None,
            "name": ref.name if ref else None,
            "by": self.actor,
            "policy": self.policy,
            "placementRevision": self.placement_revision,
            "data": dict(self.data),
        }


SEQUENCE = "SELECT federation_sequence_changes($1)"

AFTER = """
SELECT position, time, type, cluster, api_group, kind, namespace, name, data, resource_id,
       actor, policy, placement_revision
FROM changes
WHERE position > $1
  AND ($2::text[] IS NULL OR type = ANY($2))
  AND ($3::text IS NULL OR namespace = $3)
  AND ($4::text IS NULL OR kind = $4)
  AND ($5::text IS NULL OR cluster LIKE $5)
ORDER BY position
LIMIT $6
"""

LAST = "SELECT COALESCE(max(position), 0) FROM changes"

FIRST = "SELECT COALESCE(min(position), 0) FROM changes"

FIRST_AFTER_TIME = """
SELECT COALESCE(min(position) - 1, (SELECT COALESCE(max(position), 0) FROM changes))
FROM changes WHERE position IS NOT NULL AND time >= $1
"""

PRUNE_BATCH = """
WITH doomed AS (
    SELECT id FROM changes WHERE time < $1 AND position IS NOT NULL ORDER BY position LIMIT $2
)
DELETE FROM changes c USING doomed WHERE c.id = doomed.id
"""


def _row(r: asyncpg.Record) -> ChangeRow:
    ref = None
    if r["kind"] is not None and r["name"] is not None:
        ref = ObjectRef(
            api_group=r["api_group"] or "", kind=r["kind"], namespace=r["namespace"] or "", name=r["name"]
        )
    return ChangeRow(
        position=r["position"],
        time=r["time"],
        type=r["type"],
        cluster=r["cluster"],
        ref=ref,
        data=r["data"],
        resource_id=r["resource_id"],
        actor=r["actor"],
        policy=r["policy"],
        placement_revision=r["placement_revision"],
    )


def cluster_pattern(glob: str | None) -> str | None:
    """A cluster filter such as ``eu-*`` as a LIKE pattern (``*`` any run, ``?`` one character)."""
    if glob is None:
        return None
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


async def sequence_changes(conn: Connection, max_rows: int = 5000) -> int:
    """Number the rows whose transactions are older than every running one; how many."""
    return int(await conn.fetchval(SEQUENCE, max_rows))


async def changes_after(
    conn: Connection,
    position: int,
    *,
    types: Sequence[str] | None = None,
    namespace: str | None = None,
    kind: str | None = None,
    cluster: str | None = None,
    limit: int = 500,
) -> list[ChangeRow]:
    """The numbered changes after `position`, in order, filtered (``cluster`` may be a glob)."""
    rows = await conn.fetch(
        AFTER, position, list(types) if types else None, namespace, kind, cluster_pattern(cluster), limit
    )
    return [_row(r) for r in rows]


async def last_position(conn: Connection) -> int:
    """The newest position numbered (0 when none): where a reader that wants only what comes
    next starts."""
    return int(await conn.fetchval(LAST))


async def first_position(conn: Connection) -> int:
    """The oldest position the log still holds (0 when it holds none): a reader asking to
    resume before it has lost changes to the retention."""
    return int(await conn.fetchval(FIRST))


async def position_at(conn: Connection, when: datetime) -> int:
    """The position just before the first change at or after `when` (a reader's start by time)."""
    return max(0, int(await conn.fetchval(FIRST_AFTER_TIME, when)))


async def prune_changes_batch(conn: Connection, *, before: datetime, batch: int) -> int:
    """Delete up to `batch` of the oldest numbered changes older than `before`."""
    status = await conn.execute(PRUNE_BATCH, before, batch)
    return int(status.split()[-1])


SINK_POSITION = "SELECT position FROM sink_positions WHERE name = $1"

SAVE_SINK_POSITION = """
INSERT INTO sink_positions AS s (name, position, last_error, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (name) DO UPDATE SET
    position = GREATEST(s.position, EXCLUDED.position),
    last_error = EXCLUDED.last_error,
    updated_at = now()
"""


async def sink_position(conn: Connection, name: str) -> int | None:
    """How far sink `name` has delivered (None: a sink never started)."""
    value = await conn.fetchval(SINK_POSITION, name)
    return None if value is None else int(value)


async def save_sink_position(
    conn: Connection, name: str, position: int, last_error: str | None = None
) -> None:
    """Sink `name` delivered everything up to `position` (it never goes back: a stale writer —
    a replica that lost the lead mid-batch — cannot undo a newer one's progress)."""
    await conn.execute(SAVE_SINK_POSITION, name, position, last_error)
