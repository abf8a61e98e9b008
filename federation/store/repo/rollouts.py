"""`rollouts`: one row per template under a policy with ``spec.rollout`` (migration 0008).

The controller owns every column but two: ``approved`` and ``undo_requested`` are what people ask
(`federation rollout approve|undo`), written here by the CLI and only read by the controller, so
neither side's write can undo the other's. A new revision (``target_fp`` changes) clears them:
an approval is for the revision it was given for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from federation.store.db import Connection, rowcount
from federation.store.enums import Health, WorkState
from federation.store.rows import JSON, ObjectRef, PolicyId, ResourceId


def _empty() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class RolloutRow:
    """A template's rollout as stored (see `federation.hub.rollouts` for what it means)."""

    resource_id: ResourceId
    policy_id: PolicyId | None
    stable_fp: str
    stable_template: JSON
    phase: str
    target_fp: str | None = None
    stage: int = 0
    stage_name: str | None = None
    stage_started_at: datetime | None = None
    released: tuple[str, ...] = ()
    clusters: JSON = field(default_factory=_empty)
    """Per chosen cluster: its stage, the revision it holds (``new``/``previous``) and its state."""
    reason: str = ""
    failed_stage: str | None = None
    suspended_at: datetime | None = None
    approved: tuple[str, ...] = ()
    """Stages people approved (read only here)."""
    undo_requested: bool = False
    started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RolloutCopy:
    """One cluster's work and member status, as a rollout's gate reads them."""

    cluster: str
    state: WorkState
    desired_hash: str
    applied_hash: str | None
    last_error: str | None
    retrying: bool
    work_resource_version: str | None
    applied_at: datetime | None
    health: Health
    health_reason: str | None
    healthy_since: datetime | None
    status_resource_version: str | None


@dataclass(frozen=True)
class RolloutListing:
    """A rollout with the names of its template and policy (`federation rollout status`)."""

    ref: ObjectRef
    policy_kind: str | None
    policy_namespace: str | None
    policy_name: str | None
    rollout: RolloutRow


_COLUMNS = """
    ro.resource_id, ro.policy_id, ro.stable_fp, ro.stable_template, ro.target_fp, ro.phase, ro.stage,
    ro.stage_name, ro.stage_started_at, ro.released, ro.clusters, ro.reason, ro.failed_stage,
    ro.suspended_at, ro.approved, ro.undo_requested, ro.started_at, ro.updated_at
"""

GET = f"SELECT {_COLUMNS} FROM rollouts ro WHERE ro.resource_id = $1"

# The controller's columns only; a new target clears what people asked for the previous one and
# restarts the clock of `started_at`. Unchanged rows are not rewritten.
SAVE = """
INSERT INTO rollouts AS ro (
    resource_id, policy_id, stable_fp, stable_template, target_fp, phase, stage, stage_name,
    stage_started_at, released, clusters, reason, failed_stage, suspended_at
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, now()), $10, $11, $12, $13, $14)
ON CONFLICT (resource_id) DO UPDATE SET
    policy_id = EXCLUDED.policy_id,
    stable_fp = EXCLUDED.stable_fp,
    stable_template = EXCLUDED.stable_template,
    target_fp = EXCLUDED.target_fp,
    phase = EXCLUDED.phase,
    stage = EXCLUDED.stage,
    stage_name = EXCLUDED.stage_name,
    stage_started_at = EXCLUDED.stage_started_at,
    released = EXCLUDED.released,
    clusters = EXCLUDED.clusters,
    reason = EXCLUDED.reason,
    failed_stage = EXCLUDED.failed_stage,
    suspended_at = EXCLUDED.suspended_at,
    approved = CASE WHEN ro.target_fp IS DISTINCT FROM EXCLUDED.target_fp THEN '{}' ELSE ro.approved END,
    undo_requested = ro.undo_requested AND ro.target_fp IS NOT DISTINCT FROM EXCLUDED.target_fp,
    started_at = CASE WHEN ro.target_fp IS DISTINCT FROM EXCLUDED.target_fp THEN now() ELSE ro.started_at END,
    updated_at = now()
WHERE (ro.policy_id, ro.stable_fp, ro.target_fp, ro.phase, ro.stage, ro.stage_name, ro.stage_started_at,
       ro.released, ro.clusters, ro.reason, ro.failed_stage, ro.suspended_at)
    IS DISTINCT FROM
      (EXCLUDED.policy_id, EXCLUDED.stable_fp, EXCLUDED.target_fp, EXCLUDED.phase, EXCLUDED.stage,
       EXCLUDED.stage_name, EXCLUDED.stage_started_at, EXCLUDED.released, EXCLUDED.clusters, EXCLUDED.reason,
       EXCLUDED.failed_stage, EXCLUDED.suspended_at)
"""

DELETE = "DELETE FROM rollouts WHERE resource_id = $1"

COPIES = """
SELECT w.cluster, w.state, w.desired_hash, w.applied_hash, w.last_error,
       w.next_attempt_at IS NOT NULL AS retrying, w.member_resource_version AS work_resource_version,
       w.applied_at, COALESCE(ms.health, 'Unknown') AS health, ms.health_reason, ms.healthy_since,
       ms.member_resource_version AS status_resource_version
FROM works w
LEFT JOIN member_status ms ON ms.resource_id = w.resource_id AND ms.cluster = w.cluster
WHERE w.resource_id = $1
"""

# The kept revision is not read for a listing (it can be a whole template per row).
_LISTED = _COLUMNS.replace("ro.stable_template", "'{}'::jsonb AS stable_template")
LIST = f"""
SELECT {_LISTED},
       r.api_group, r.kind, r.namespace, r.name,
       p.kind AS policy_kind, p.namespace AS policy_namespace, p.name AS policy_name
FROM rollouts ro
JOIN resources r ON r.id = ro.resource_id AND r.deleted_at IS NULL
JOIN policies p ON p.id = ro.policy_id AND p.spec ? 'rollout'
WHERE ($1::text IS NULL OR r.namespace = $1) AND ($2 OR ro.phase <> 'Complete')
ORDER BY r.namespace, r.kind, r.name
LIMIT $3
"""

APPROVE = """
UPDATE rollouts SET approved = array_append(approved, COALESCE($2, stage_name))
WHERE resource_id = ANY($1::bigint[]) AND phase IN ('Progressing', 'WaitingApproval')
  AND COALESCE($2, stage_name) IS NOT NULL AND NOT (COALESCE($2, stage_name) = ANY(approved))
"""

UNDO = """
UPDATE rollouts SET undo_requested = true
WHERE resource_id = ANY($1::bigint[]) AND phase IN ('Progressing', 'WaitingApproval', 'Halted')
  AND NOT undo_requested
"""


def _row(r: asyncpg.Record) -> RolloutRow:
    return RolloutRow(
        resource_id=ResourceId(r["resource_id"]),
        policy_id=None if r["policy_id"] is None else PolicyId(r["policy_id"]),
        stable_fp=r["stable_fp"],
        stable_template=r["stable_template"],
        target_fp=r["target_fp"],
        phase=r["phase"],
        stage=r["stage"],
        stage_name=r["stage_name"],
        stage_started_at=r["stage_started_at"],
        released=tuple(r["released"]),
        clusters=r["clusters"],
        reason=r["reason"],
        failed_stage=r["failed_stage"],
        suspended_at=r["suspended_at"],
        approved=tuple(r["approved"]),
        undo_requested=r["undo_requested"],
        started_at=r["started_at"],
        updated_at=r["updated_at"],
    )


async def rollout_of(conn: Connection, resource_id: ResourceId) -> RolloutRow | None:
    """The template's rollout row, or None (its policy has no rollout, or it was never placed)."""
    r = await conn.fetchrow(GET, resource_id)
    return None if r is None else _row(r)


async def save_rollout(conn: Connection, row: RolloutRow) -> bool:
    """Insert or update the controller's columns; whether anything was written."""
    status = await conn.execute(
        SAVE,
        row.resource_id,
        row.policy_id,
        row.stable_fp,
        row.stable_template,
        row.target_fp,
        row.phase,
        row.stage,
        row.stage_name,
        row.stage_started_at,
        list(row.released),
        row.clusters,
        row.reason,
        row.failed_stage,
        row.suspended_at,
    )
    return rowcount(status) > 0


async def delete_rollout(conn: Connection, resource_id: ResourceId) -> bool:
    """The template's policy no longer has a rollout (or a different policy governs it now)."""
    return rowcount(await conn.execute(DELETE, resource_id)) > 0


async def rollout_copies(conn: Connection, resource_id: ResourceId) -> list[RolloutCopy]:
    """Every work of the template with its member status: what a rollout's gate reads."""
    return [
        RolloutCopy(
            cluster=r["cluster"],
            state=WorkState(r["state"]),
            desired_hash=r["desired_hash"],
            applied_hash=r["applied_hash"],
            last_error=r["last_error"],
            retrying=r["retrying"],
            work_resource_version=r["work_resource_version"],
            applied_at=r["applied_at"],
            health=Health(r["health"]),
            health_reason=r["health_reason"],
            healthy_since=r["healthy_since"],
            status_resource_version=r["status_resource_version"],
        )
        for r in await conn.fetch(COPIES, resource_id)
    ]


async def list_rollouts(
    conn: Connection, *, namespace: str | None = None, complete: bool = True, limit: int | None = None
) -> list[RolloutListing]:
    """The rollouts of templates still on the hub under a policy that still has a rollout,
    with their template's and policy's names (`complete`: also those with nothing in progress);
    their kept revision is left out (empty)."""
    return [
        RolloutListing(
            ref=ObjectRef(api_group=r["api_group"], kind=r["kind"], namespace=r["namespace"], name=r["name"]),
            policy_kind=r["policy_kind"],
            policy_namespace=r["policy_namespace"],
            policy_name=r["policy_name"],
            rollout=_row(r),
        )
        for r in await conn.fetch(LIST, namespace, complete, limit)
    ]


async def approve_rollouts(conn: Connection, resource_ids: Sequence[ResourceId], stage: str | None) -> int:
    """Approve `stage` (None: each rollout's current stage) of the given in-progress rollouts;
    how many rows took it (an approval given twice counts once)."""
    return rowcount(await conn.execute(APPROVE, list(resource_ids), stage))


async def undo_rollouts(conn: Connection, resource_ids: Sequence[ResourceId]) -> int:
    """Ask the controller to put the previous revision back where these rollouts reached."""
    return rowcount(await conn.execute(UNDO, list(resource_ids)))
