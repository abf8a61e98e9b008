"""`watch_checkpoints`: the resourceVersion each watch may resume from after a restart."""

from __future__ import annotations

from collections.abc import Sequence

from federation.store.db import Connection, rowcount
from federation.store.rows import Checkpoint

SET = """
INSERT INTO watch_checkpoints AS c (cluster, resource, resource_version)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
ON CONFLICT (cluster, resource) DO UPDATE SET resource_version = EXCLUDED.resource_version, updated_at = now()
WHERE c.resource_version IS DISTINCT FROM EXCLUDED.resource_version
"""


async def get_checkpoint(conn: Connection, cluster: str, resource: str) -> str | None:
    value = await conn.fetchval(
        "SELECT resource_version FROM watch_checkpoints WHERE cluster = $1 AND resource = $2",
        cluster,
        resource,
    )
    return None if value is None else str(value)


async def get_checkpoints(conn: Connection, cluster: str) -> dict[str, str]:
    records = await conn.fetch(
        "SELECT resource, resource_version FROM watch_checkpoints WHERE cluster = $1", cluster
    )
    return {r["resource"]: r["resource_version"] for r in records}


async def set_checkpoints(conn: Connection, rows: Sequence[Checkpoint]) -> int:
    """Save checkpoints (the last one wins for a key given twice). Returns rows written."""
    latest = {(r.cluster, r.resource): r.resource_version for r in rows}
    if not latest:
        return 0
    keys = list(latest)
    status = await conn.execute(SET, [k[0] for k in keys], [k[1] for k in keys], [latest[k] for k in keys])
    return rowcount(status)
