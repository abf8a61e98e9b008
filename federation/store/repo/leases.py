"""`cluster_leases` and `controller_replicas`: which controller replica owns which member cluster.

DESIGN.md "Growing past one process": members are sharded across replicas by a lease row per
cluster. A replica acquires (or renews: the same call) a lease for a time-to-live and works on
that cluster's works only while it holds it; an expired lease can be taken by anyone. Holding
the lease decides who *should* work on a cluster; the work claims (`FOR UPDATE SKIP LOCKED` and
the works' version) are what make a mistake harmless.

Which replica should hold which lease is computed by each replica alike from the live replicas
(`controller_replicas`: each heartbeats its own row; `federation.propagate.shard`), so that no
replica has to hand out assignments and a dead one drops out when its row expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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

# A lease is taken when free or expired. Any claim another holder still has on the cluster's
# works is stale then (a holder that handed the cluster over released its claims first; one whose
# lease expired died or lost the database) and would keep the works from us until the claim's own
# lease ran out: released in the same statement, the version bumped, so a result the old holder
# may still try to record is refused.
TAKE = f"""
WITH taken AS ({ACQUIRE.replace("RETURNING holder", "RETURNING cluster")}
), released AS (
    UPDATE works w SET claimed_by = NULL, claimed_until = NULL, version = w.version + 1
    FROM taken
    WHERE w.cluster = taken.cluster AND w.claimed_by IS NOT NULL AND w.claimed_by <> $2
    RETURNING 1
)
SELECT (SELECT count(*) FROM taken) AS taken, (SELECT count(*) FROM released) AS released
"""

RELEASE_CLUSTER_CLAIMS = """
UPDATE works SET claimed_by = NULL, claimed_until = NULL, version = version + 1
WHERE cluster = $1 AND claimed_by = $2
"""


@dataclass(frozen=True)
class Lease:
    """One member cluster's lease as the table holds it (expired ones included)."""

    cluster: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    live: bool


async def acquire_cluster_lease(conn: Connection, cluster: str, *, holder: str, ttl_seconds: float) -> bool:
    """Take the lease of `cluster` for `ttl_seconds`, or renew it if `holder` has it. True if held."""
    return await conn.fetchval(ACQUIRE, cluster, holder, float(ttl_seconds)) is not None


async def renew_cluster_leases(
    conn: Connection, clusters: list[str], *, holder: str, ttl_seconds: float
) -> list[str]:
    """Extend every lease of `clusters` that `holder` still has (one statement); the ones renewed.

    Only the holder's own rows: a lease that expired and was taken by another meanwhile is lost."""
    records = await conn.fetch(
        """UPDATE cluster_leases SET expires_at = now() + make_interval(secs => $3)
           WHERE cluster = ANY($1::text[]) AND holder = $2 RETURNING cluster""",
        clusters,
        holder,
        float(ttl_seconds),
    )
    return sorted(r["cluster"] for r in records)


async def take_cluster_lease(
    conn: Connection, cluster: str, *, holder: str, ttl_seconds: float
) -> tuple[bool, int]:
    """Take the lease of `cluster` if it is free, expired or already `holder`'s, with the stale
    claims of others on its works (see `TAKE`). (held now, claims released)."""
    record = await conn.fetchrow(TAKE, cluster, holder, float(ttl_seconds))
    assert record is not None
    return bool(record["taken"]), int(record["released"])


async def release_cluster_lease(conn: Connection, cluster: str, *, holder: str) -> bool:
    """Give the lease up (on shutdown) so another replica need not wait for it to expire."""
    status = await conn.execute(
        "DELETE FROM cluster_leases WHERE cluster = $1 AND holder = $2", cluster, holder
    )
    return rowcount(status) == 1


async def release_cluster_claims(conn: Connection, cluster: str, *, holder: str) -> int:
    """Give back `holder`'s claims on `cluster`'s works (the cluster is handed over: what its
    propagator claimed and never started is the next owner's at once, not a claim's lease later)."""
    return rowcount(await conn.execute(RELEASE_CLUSTER_CLAIMS, cluster, holder))


async def clusters_held_by(conn: Connection, holder: str) -> list[str]:
    """The clusters whose unexpired lease `holder` has."""
    records = await conn.fetch(
        "SELECT cluster FROM cluster_leases WHERE holder = $1 AND expires_at > now() ORDER BY cluster", holder
    )
    return [r["cluster"] for r in records]


async def list_cluster_leases(conn: Connection) -> list[Lease]:
    """Every lease row, for `clusters list`, the API and the page (who owns which member)."""
    records = await conn.fetch(
        """SELECT cluster, holder, acquired_at, expires_at, expires_at > now() AS live
           FROM cluster_leases ORDER BY cluster"""
    )
    return [Lease(**dict(r)) for r in records]  # the columns are the fields


async def heartbeat_replica(conn: Connection, replica: str, *, ttl_seconds: float) -> list[str]:
    """Say `replica` is alive for `ttl_seconds` more; returns every live replica (itself too),
    in one round trip: what the owner of each cluster is computed from."""
    records = await conn.fetch(
        """WITH beat AS (
               INSERT INTO controller_replicas AS r (replica, started_at, heartbeat_at, expires_at)
               VALUES ($1, now(), now(), now() + make_interval(secs => $2))
               ON CONFLICT (replica) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at
               RETURNING replica
           )
           SELECT replica FROM controller_replicas WHERE expires_at > now() AND replica <> $1
           UNION SELECT replica FROM beat""",
        replica,
        float(ttl_seconds),
    )
    return sorted(r["replica"] for r in records)


async def retire_replica(conn: Connection, replica: str) -> bool:
    """`replica` stops (a clean shutdown): the others stop counting it at once, not a TTL later."""
    return rowcount(await conn.execute("DELETE FROM controller_replicas WHERE replica = $1", replica)) == 1


async def live_replicas(conn: Connection) -> list[str]:
    """The replicas whose heartbeat has not expired."""
    records = await conn.fetch(
        "SELECT replica FROM controller_replicas WHERE expires_at > now() ORDER BY replica"
    )
    return [r["replica"] for r in records]


async def prune_replicas(conn: Connection, *, older_than_seconds: float) -> int:
    """Forget replicas expired for longer than `older_than_seconds` (dead ones; housekeeping)."""
    status = await conn.execute(
        "DELETE FROM controller_replicas WHERE expires_at < now() - make_interval(secs => $1)",
        float(older_than_seconds),
    )
    return rowcount(status)
