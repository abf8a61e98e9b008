"""`member_status`: what each member reports about each propagated object (status up)."""

from __future__ import annotations

from collections.abc import Sequence

from federation.errors import StoreError
from federation.store.db import Connection, jsonb_elements
from federation.store.rows import MemberStatusRow

# Rows whose work is gone (finished deletion racing a late status) are skipped rather than
# failing the batch; unchanged rows are not rewritten.
UPSERT = """
WITH written AS (
    INSERT INTO member_status AS m (
        resource_id, cluster, status, health, observed_generation, member_resource_version
    )
    SELECT u.resource_id, u.cluster, u.status, u.health, u.observed_generation, u.member_resource_version
    FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::health[], $5::bigint[], $6::text[])
        AS u(resource_id, cluster, status, health, observed_generation, member_resource_version)
    WHERE EXISTS (SELECT 1 FROM works w WHERE w.resource_id = u.resource_id AND w.cluster = u.cluster)
    ON CONFLICT (resource_id, cluster) DO UPDATE SET
        status = EXCLUDED.status,
        health = EXCLUDED.health,
        observed_generation = EXCLUDED.observed_generation,
        member_resource_version = EXCLUDED.member_resource_version,
        collected_at = now()
    WHERE (m.health, m.observed_generation, m.member_resource_version, m.status)
        IS DISTINCT FROM
          (EXCLUDED.health, EXCLUDED.observed_generation, EXCLUDED.member_resource_version, EXCLUDED.status)
    RETURNING 1
)
SELECT count(*) FROM written
"""


async def upsert_member_statuses(conn: Connection, rows: Sequence[MemberStatusRow]) -> int:
    """Bulk upsert of member statuses by (resource_id, cluster). Returns rows written."""
    if not rows:
        return 0
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row.resource_id, row.cluster)
        if key in seen:
            raise StoreError(
                f"member_status resource_id={row.resource_id} cluster={row.cluster}: given twice in one batch"
            )
        seen.add(key)
    written = await conn.fetchval(
        UPSERT,
        [r.resource_id for r in rows],
        [r.cluster for r in rows],
        jsonb_elements([r.status for r in rows]),
        [r.health.value for r in rows],
        [r.observed_generation for r in rows],
        [r.member_resource_version for r in rows],
    )
    return int(written)
