"""`policies`: propagation and override policies, kept whole for restarts and dashboards."""

from __future__ import annotations

from federation.store.db import Connection, rowcount
from federation.store.enums import PolicyKind
from federation.store.rows import PolicyId, PolicyRow

# The INSERT sees the row only when something changed, so an unchanged re-list writes nothing.
UPSERT = """
WITH changed AS (
    INSERT INTO policies AS p (kind, namespace, name, uid, generation, priority, spec, created_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8
    WHERE NOT EXISTS (
        SELECT 1 FROM policies o
        WHERE o.kind = $1 AND o.namespace = $2 AND o.name = $3 AND o.deleted_at IS NULL
          AND (o.uid, o.generation, o.priority, o.spec, o.created_at)
              IS NOT DISTINCT FROM ($4::text, $5::bigint, $6::int, $7::jsonb, $8::timestamptz)
    )
    ON CONFLICT (kind, namespace, name) DO UPDATE SET
        uid = EXCLUDED.uid,
        generation = EXCLUDED.generation,
        priority = EXCLUDED.priority,
        spec = EXCLUDED.spec,
        created_at = EXCLUDED.created_at,
        deleted_at = NULL,
        updated_at = now()
    RETURNING p.id
)
SELECT id FROM changed
UNION ALL
SELECT id FROM policies
WHERE kind = $1 AND namespace = $2 AND name = $3 AND NOT EXISTS (SELECT 1 FROM changed)
"""


async def upsert_policy(conn: Connection, row: PolicyRow) -> PolicyId:
    """Insert or update a policy by (kind, namespace, name); returns its id."""
    value = await conn.fetchval(
        UPSERT,
        row.kind.value,
        row.namespace,
        row.name,
        row.uid,
        row.generation,
        row.priority,
        row.spec,
        row.created_at,
    )
    return PolicyId(value)


async def delete_policy(conn: Connection, *, kind: PolicyKind, namespace: str, name: str) -> bool:
    """Mark a policy deleted (placements keep pointing at it until they are recomputed)."""
    status = await conn.execute(
        "UPDATE policies SET deleted_at = now(), updated_at = now() "
        "WHERE kind = $1 AND namespace = $2 AND name = $3 AND deleted_at IS NULL",
        kind.value,
        namespace,
        name,
    )
    return rowcount(status) == 1
