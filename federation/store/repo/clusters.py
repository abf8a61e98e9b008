"""`clusters`: the member registry as the controller last saw it."""

from __future__ import annotations

from collections.abc import Sequence

from federation.store.db import Connection, json_texts, rowcount
from federation.store.rows import ClusterRow

UPSERT = """
INSERT INTO clusters AS c (
    name, labels, taints, endpoint, ready, ready_reason, last_probe_at, kubernetes_version, allocatable
)
SELECT u.name, u.labels::jsonb, u.taints::jsonb, u.endpoint, u.ready, u.ready_reason, u.last_probe_at,
       u.kubernetes_version, u.allocatable::jsonb
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::timestamptz[], $8::text[],
    $9::text[]
) AS u(name, labels, taints, endpoint, ready, ready_reason, last_probe_at, kubernetes_version, allocatable)
ON CONFLICT (name) DO UPDATE SET
    labels = EXCLUDED.labels,
    taints = EXCLUDED.taints,
    endpoint = EXCLUDED.endpoint,
    ready = EXCLUDED.ready,
    ready_reason = EXCLUDED.ready_reason,
    last_probe_at = EXCLUDED.last_probe_at,
    kubernetes_version = EXCLUDED.kubernetes_version,
    allocatable = EXCLUDED.allocatable,
    updated_at = now()
WHERE (c.labels, c.taints, c.endpoint, c.ready, c.ready_reason, c.last_probe_at, c.kubernetes_version,
       c.allocatable)
    IS DISTINCT FROM
      (EXCLUDED.labels, EXCLUDED.taints, EXCLUDED.endpoint, EXCLUDED.ready, EXCLUDED.ready_reason,
       EXCLUDED.last_probe_at, EXCLUDED.kubernetes_version, EXCLUDED.allocatable)
"""


async def upsert_clusters(conn: Connection, rows: Sequence[ClusterRow]) -> int:
    """Insert or update clusters by name; unchanged rows are not rewritten. Returns rows written."""
    if not rows:
        return 0
    status = await conn.execute(
        UPSERT,
        [r.name for r in rows],
        json_texts([r.labels for r in rows]),
        json_texts([list(r.taints) for r in rows]),
        [r.endpoint for r in rows],
        [r.ready for r in rows],
        [r.ready_reason for r in rows],
        [r.last_probe_at for r in rows],
        [r.kubernetes_version for r in rows],
        json_texts([r.allocatable for r in rows]),
    )
    return rowcount(status)


async def delete_cluster(conn: Connection, name: str) -> bool:
    """Forget a cluster (its works stay until they are cleaned up: no foreign key by design)."""
    return rowcount(await conn.execute("DELETE FROM clusters WHERE name = $1", name)) == 1


async def list_clusters(conn: Connection) -> list[ClusterRow]:
    records = await conn.fetch(
        "SELECT name, labels, taints, endpoint, ready, ready_reason, last_probe_at, kubernetes_version, "
        "allocatable FROM clusters ORDER BY name"
    )
    return [
        ClusterRow(
            name=r["name"],
            labels=r["labels"],
            taints=tuple(r["taints"]),
            endpoint=r["endpoint"],
            ready=r["ready"],
            ready_reason=r["ready_reason"],
            last_probe_at=r["last_probe_at"],
            kubernetes_version=r["kubernetes_version"],
            allocatable=r["allocatable"],
        )
        for r in records
    ]
