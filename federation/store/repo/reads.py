"""Aggregated reads, straight from the dashboard views, so the API and Grafana agree."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from federation.store.db import Connection
from federation.store.enums import Health, WorkState
from federation.store.rows import ClusterStatus, ObjectRef, ResourceId, ResourceStatus, WorkId, WorkStatus


def _ref(r: asyncpg.Record) -> ObjectRef:
    return ObjectRef(api_group=r["api_group"], kind=r["kind"], namespace=r["namespace"], name=r["name"])


def _resource_status(r: asyncpg.Record) -> ResourceStatus:
    return ResourceStatus(
        resource_id=ResourceId(r["resource_id"]),
        ref=_ref(r),
        api_version=r["api_version"],
        uid=r["uid"],
        generation=r["generation"],
        deleted_at=r["deleted_at"],
        placement_revision=r["placement_revision"],
        unschedulable=r["unschedulable"],
        clusters_desired=r["clusters_desired"],
        clusters_applied=r["clusters_applied"],
        clusters_healthy=r["clusters_healthy"],
        clusters_conflicted=r["clusters_conflicted"],
        clusters_failed=r["clusters_failed"],
        clusters_removing=r["clusters_removing"],
        replicas_desired=r["replicas_desired"],
        replicas_ready=r["replicas_ready"],
        replicas_available=r["replicas_available"],
        replicas_updated=r["replicas_updated"],
        worst_health=None if r["worst_health"] is None else Health(r["worst_health"]),
        last_change=r["last_change"],
    )


def _work_status(r: asyncpg.Record) -> WorkStatus:
    return WorkStatus(
        work_id=WorkId(r["work_id"]),
        resource_id=ResourceId(r["resource_id"]),
        ref=_ref(r),
        api_version=r["api_version"],
        cluster=r["cluster"],
        state=WorkState(r["state"]),
        desired_here=r["desired_here"],
        health=Health(r["health"]),
        health_reason=r["health_reason"],
        in_sync=r["in_sync"],
        replicas_desired=r["replicas_desired"],
        replicas_ready=r["replicas_ready"],
        replicas_available=r["replicas_available"],
        replicas_updated=r["replicas_updated"],
        observed_generation=r["observed_generation"],
        desired_hash=r["desired_hash"],
        applied_hash=r["applied_hash"],
        member_resource_version=r["member_resource_version"],
        last_error=r["last_error"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        claimed_by=r["claimed_by"],
        claimed_until=r["claimed_until"],
        version=r["version"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        applied_at=r["applied_at"],
        status_collected_at=r["status_collected_at"],
        healthy_since=r["healthy_since"],
    )


def _cluster_status(r: asyncpg.Record) -> ClusterStatus:
    return ClusterStatus(**{name: r[name] for name in ClusterStatus.__dataclass_fields__})


async def resource_status(conn: Connection, resource_id: ResourceId) -> ResourceStatus | None:
    record = await conn.fetchrow("SELECT * FROM fleet_resource_status WHERE resource_id = $1", resource_id)
    return None if record is None else _resource_status(record)


async def resource_statuses(conn: Connection) -> list[ResourceStatus]:
    records = await conn.fetch(
        "SELECT * FROM fleet_resource_status ORDER BY api_group, kind, namespace, name"
    )
    return [_resource_status(r) for r in records]


async def cluster_status(conn: Connection, cluster: str) -> ClusterStatus | None:
    record = await conn.fetchrow("SELECT * FROM fleet_cluster_status WHERE cluster = $1", cluster)
    return None if record is None else _cluster_status(record)


async def cluster_statuses(conn: Connection) -> list[ClusterStatus]:
    return [
        _cluster_status(r) for r in await conn.fetch("SELECT * FROM fleet_cluster_status ORDER BY cluster")
    ]


async def works_of_resource(conn: Connection, resource_id: ResourceId) -> list[WorkStatus]:
    records = await conn.fetch(
        "SELECT * FROM fleet_work_status WHERE resource_id = $1 ORDER BY cluster", resource_id
    )
    return [_work_status(r) for r in records]


async def works_of_cluster(conn: Connection, cluster: str, *, limit: int = 1000) -> list[WorkStatus]:
    records = await conn.fetch(
        "SELECT * FROM fleet_work_status WHERE cluster = $1 ORDER BY work_id LIMIT $2", cluster, limit
    )
    return [_work_status(r) for r in records]


#: Orderings of `resource_status_page`. "attention" puts what needs a person first: resources
#: with conflicted or failed works, then by worst health (Degraded first, no works last), then the
#: most recently changed; "name" is the stable listing order.
_ORDER = {
    "name": "api_group, kind, namespace, name",
    "attention": "(clusters_conflicted + clusters_failed > 0) DESC, worst_health DESC NULLS LAST, "
    "last_change DESC, api_group, kind, namespace, name",
}

# One statement: the filtered rows of the page plus the count of every match (a window
# function), so a page and its total agree. The kind/namespace/group filters are on the view's
# plain columns and reach the `resources` scan; the health filter is on the aggregate.
PAGE = """
SELECT *, count(*) OVER () AS total
FROM fleet_resource_status
WHERE ($1::text IS NULL OR api_group = $1)
  AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR namespace = $3)
  AND ($4::text[] IS NULL OR worst_health::text = ANY($4))
ORDER BY {order}
LIMIT $5 OFFSET $6
"""

COUNT = """
SELECT count(*) FROM fleet_resource_status
WHERE ($1::text IS NULL OR api_group = $1)
  AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR namespace = $3)
  AND ($4::text[] IS NULL OR worst_health::text = ANY($4))
"""


async def resource_status_page(
    conn: Connection,
    *,
    api_group: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    worst_health: Sequence[Health] | None = None,
    limit: int = 100,
    offset: int = 0,
    order: str = "name",
) -> tuple[list[ResourceStatus], int]:
    """A page of `fleet_resource_status` rows matching every given filter, and how many match.

    Filtering and paging happen in SQL so a dashboard polling a large fleet reads one page,
    not every resource. `order` is "name" (stable) or "attention" (problems first, then the
    most recently changed), what a status page shows when it can only show the top N.
    """
    if order not in _ORDER:
        raise ValueError(f"order must be one of {sorted(_ORDER)}, not {order!r}")
    healths = None if worst_health is None else [h.value for h in worst_health]
    args = (api_group, kind, namespace, healths)
    records = await conn.fetch(PAGE.format(order=_ORDER[order]), *args, limit, offset)
    # Past the last page (or when nothing matches) the window function has no row to be read
    # from, so the count is asked for separately.
    total = int(records[0]["total"]) if records else int(await conn.fetchval(COUNT, *args))
    return [_resource_status(r) for r in records], total


async def works_of_resources(conn: Connection, resource_ids: Sequence[ResourceId]) -> list[WorkStatus]:
    """The `fleet_work_status` rows of several resources in one query (a dashboard's matrix)."""
    if not resource_ids:
        return []
    records = await conn.fetch(
        "SELECT * FROM fleet_work_status WHERE resource_id = ANY($1::bigint[]) ORDER BY resource_id, cluster",
        list(resource_ids),
    )
    return [_work_status(r) for r in records]
