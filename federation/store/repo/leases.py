"""`cluster_leases`: which controller replica owns which member cluster.

DESIGN.md "Growing past one process": members are sharded across replicas by a lease row per
cluster. A replica acquires (or renews: the same call) a lease for a time-to-live and works on
that cluster's works only while it holds it; an expired lease can be taken by anyone. Holding
the lease decides who *should* work on a cluster; the work claims (`FOR UPDATE SKIP LOCKED` and
the works' version) are what make a mistake harmless.
"""

from __future__ import annotations

from federation.store.db import Connection, rowcount

ACQUIRE = """
INSERT INTO cluster_leases AS l (cluster, holder, acquired_at, expires_at)
VALUES ($1, $2, now(), now() + make_interval(secs => $3))
ON CONFLICT (cluster) DO UPDATE SET
    holder = EXCLUDED.holder,
    expires_at = EXCLUDED.expires_at,
    acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE EXCLUDED.acquired_at END
WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
RETURNING holder
"""


async def acquire_cluster_lease(conn: Connection, cluster: str, *, holder: str, ttl_seconds: float) -> bool:
    """Take the lease of `cluster` for `ttl_seconds`, or renew it if `holder` has it. True if held."""
    return await conn.fetchval(ACQUIRE, cluster, holder, float(ttl_seconds)) is not None


async def release_cluster_lease(conn: Connection, cluster: str, *, holder: str) -> bool:
    """Give the lease up (on shutdown) so another replica need not wait for it to expire."""
    status = await conn.execute(
        "DELETE FROM cluster_leases WHERE cluster = $1 AND holder = $2", cluster, holder
    )
    return rowcount(status) == 1


async def clusters_held_by(conn: Connection, holder: str) -> list[str]:
    """The clusters whose unexpired lease `holder` has."""
    records = await conn.fetch(
        "SELECT cluster FROM cluster_leases WHERE holder = $1 AND expires_at > now() ORDER BY cluster", holder
    )
    return [r["cluster"] for r in records]
