"""`member_status`: what each member reports about each propagated object (status up)."""

from __future__ import annotations

from collections.abc import Sequence

from federation.errors import StoreError
from federation.store.db import Connection, json_texts, rowcount
from federation.store.rows import MemberStatusRow

# Unchanged rows are not rewritten. There is deliberately no foreign key to works (and no
# existence check): on this, the hottest table, those cost half the write rate (a key-share
# lock on the work row per status, or a join); the rows of a finished work are deleted with it
# (`works.finish_deletion`, `resources.purge_resource`), and `DELETE_ORPHANS` sweeps what a
# late status of a just-finished work leaves behind. The views join statuses from works, so an
# orphan is never shown.
UPSERT = """
WITH written AS (
    INSERT INTO member_status AS m (
        resource_id, cluster, status, health, observed_generation, member_resource_version, health_reason,
        healthy_since
    )
    SELECT u.resource_id, u.cluster, u.status::jsonb, u.health, u.observed_generation,
           u.member_resource_version, u.health_reason, CASE WHEN u.health = 'Healthy' THEN now() END
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::health[], $5::bigint[], $6::text[], $7::text[])
        AS u(resource_id, cluster, status, health, observed_generation, member_resource_version,
             health_reason)
    ON CONFLICT (resource_id, cluster) DO UPDATE SET
        status = EXCLUDED.status,
        health = EXCLUDED.health,
        observed_generation = EXCLUDED.observed_generation,
        member_resource_version = EXCLUDED.member_resource_version,
        health_reason = EXCLUDED.health_reason,
        collected_at = now(),
        -- Moves only with health: kept while Healthy stays Healthy, cleared when it leaves.
        healthy_since = CASE
            WHEN EXCLUDED.health <> 'Healthy' THEN NULL
            WHEN m.health = 'Healthy' THEN COALESCE(m.healthy_since, now())
            ELSE now()
        END
    WHERE (m.health, m.observed_generation, m.member_resource_version, m.status, m.health_reason)
        IS DISTINCT FROM
          (EXCLUDED.health, EXCLUDED.observed_generation, EXCLUDED.member_resource_version, EXCLUDED.status,
           EXCLUDED.health_reason)
    RETURNING 1
)
SELECT count(*) FROM written
"""

DELETE_ORPHANS = """
DELETE FROM member_status m
WHERE NOT EXISTS (SELECT 1 FROM works w WHERE w.resource_id = m.resource_id AND w.cluster = m.cluster)
"""


def check_unique_statuses(rows: Sequence[MemberStatusRow]) -> None:
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row.resource_id, row.cluster)
        if key in seen:
            raise StoreError(
                f"member_status resource_id={row.resource_id} cluster={row.cluster}: given twice in one batch"
            )
        seen.add(key)


async def upsert_member_statuses(conn: Connection, rows: Sequence[MemberStatusRow]) -> int:
    """Bulk upsert of member statuses by (resource_id, cluster). Returns rows written."""
    if not rows:
        return 0
    check_unique_statuses(rows)
    written = await conn.fetchval(
        UPSERT,
        [r.resource_id for r in rows],
        [r.cluster for r in rows],
        json_texts([r.status for r in rows]),
        [r.health.value for r in rows],
        [r.observed_generation for r in rows],
        [r.member_resource_version for r in rows],
        [r.health_reason for r in rows],
    )
    return int(written)


async def delete_orphaned_statuses(conn: Connection) -> int:
    """Remove statuses whose work is gone (maintenance, with the event pruning)."""
    return rowcount(await conn.execute(DELETE_ORPHANS))
