"""Aggregated reads, straight from the dashboard views, so the API and Grafana agree."""

from __future__ import annotations

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
