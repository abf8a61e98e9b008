"""Dashboard views: fleet_work_status, fleet_resource_status, fleet_cluster_status.

Grafana (deploy/grafana/federation.json) and the store's aggregated reads query only these
views; docs/store.md documents them column by column. Views are not tables, so alembic's
comparison with the models does not see them: changing one means a new migration that
replaces it (CREATE OR REPLACE VIEW can only add columns at the end).

Replica counts: Kubernetes omits a count that is zero (``readyReplicas`` is absent when no pod
is ready), so for a *workload* (a work whose desired manifest has ``spec.replicas``, or whose
member status reports any replica count) an absent count is 0; for anything else (a ConfigMap)
the counts are NULL, and a resource's sums are NULL when none of its works is a workload.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLEET_INT = """
CREATE FUNCTION fleet_int(doc jsonb, key text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN jsonb_typeof(doc -> key) = 'number' THEN floor((doc ->> key)::numeric)::bigint END
"""

FLEET_WORK_STATUS = """
CREATE VIEW fleet_work_status AS
SELECT
    w.id AS work_id,
    w.resource_id,
    r.api_group,
    r.api_version,
    r.kind,
    r.namespace,
    r.name,
    w.cluster,
    w.state,
    w.state NOT IN ('deleting', 'orphaning', 'orphaned') AS desired_here,
    COALESCE(ms.health, 'Unknown') AS health,
    w.state = 'applied' AND w.applied_hash IS NOT DISTINCT FROM w.desired_hash AS in_sync,
    fleet_int(w.desired -> 'spec', 'replicas') AS replicas_desired,
    CASE WHEN k.workload THEN COALESCE(fleet_int(ms.status, 'readyReplicas'), 0) END AS replicas_ready,
    CASE WHEN k.workload THEN COALESCE(fleet_int(ms.status, 'availableReplicas'), 0) END
        AS replicas_available,
    CASE WHEN k.workload THEN COALESCE(fleet_int(ms.status, 'updatedReplicas'), 0) END AS replicas_updated,
    ms.observed_generation,
    w.desired_hash,
    w.applied_hash,
    w.member_resource_version,
    w.last_error,
    w.attempts,
    w.next_attempt_at,
    w.claimed_by,
    w.claimed_until,
    w.version,
    w.created_at,
    w.updated_at,
    w.applied_at,
    ms.collected_at AS status_collected_at
FROM works w
JOIN resources r ON r.id = w.resource_id
LEFT JOIN member_status ms ON ms.resource_id = w.resource_id AND ms.cluster = w.cluster
CROSS JOIN LATERAL (
    SELECT COALESCE(jsonb_typeof(w.desired -> 'spec' -> 'replicas') = 'number', false)
        OR COALESCE(
            ms.status ?| ARRAY['replicas', 'readyReplicas', 'availableReplicas', 'updatedReplicas'], false
        )
        AS workload
) k
"""

FLEET_RESOURCE_STATUS = """
CREATE VIEW fleet_resource_status AS
SELECT
    r.id AS resource_id,
    r.api_group,
    r.api_version,
    r.kind,
    r.namespace,
    r.name,
    r.uid,
    r.generation,
    r.deleted_at,
    p.revision AS placement_revision,
    p.unschedulable,
    w.clusters_desired,
    w.clusters_applied,
    w.clusters_healthy,
    w.clusters_conflicted,
    w.clusters_failed,
    w.clusters_removing,
    w.replicas_desired,
    w.replicas_ready,
    w.replicas_available,
    w.replicas_updated,
    w.worst_health,
    GREATEST(r.updated_at, p.decided_at, w.last_work_change) AS last_change
FROM resources r
LEFT JOIN placements p ON p.resource_id = r.id
CROSS JOIN LATERAL (
    SELECT
        count(*) FILTER (WHERE ws.desired_here) AS clusters_desired,
        count(*) FILTER (WHERE ws.state = 'applied') AS clusters_applied,
        count(*) FILTER (WHERE ws.desired_here AND ws.health = 'Healthy') AS clusters_healthy,
        count(*) FILTER (WHERE ws.state = 'conflict') AS clusters_conflicted,
        count(*) FILTER (WHERE ws.state = 'failed') AS clusters_failed,
        count(*) FILTER (WHERE ws.state IN ('deleting', 'orphaning')) AS clusters_removing,
        (sum(ws.replicas_desired) FILTER (WHERE ws.desired_here))::bigint AS replicas_desired,
        (sum(ws.replicas_ready) FILTER (WHERE ws.desired_here))::bigint AS replicas_ready,
        (sum(ws.replicas_available) FILTER (WHERE ws.desired_here))::bigint AS replicas_available,
        (sum(ws.replicas_updated) FILTER (WHERE ws.desired_here))::bigint AS replicas_updated,
        max(ws.health) FILTER (WHERE ws.desired_here) AS worst_health,
        max(GREATEST(ws.updated_at, ws.status_collected_at)) AS last_work_change
    FROM fleet_work_status ws
    WHERE ws.resource_id = r.id
) w
"""

FLEET_CLUSTER_STATUS = """
CREATE VIEW fleet_cluster_status AS
SELECT
    c.name AS cluster,
    c.ready,
    c.ready_reason,
    c.last_probe_at,
    c.kubernetes_version,
    c.endpoint,
    c.labels,
    l.holder AS lease_holder,
    l.expires_at AS lease_expires_at,
    w.works_total,
    w.works_pending,
    w.works_applied,
    w.works_conflict,
    w.works_failed,
    w.works_deleting,
    w.works_orphaning,
    w.works_orphaned,
    (
        SELECT count(*) FROM works d
        WHERE d.cluster = c.name AND d.next_attempt_at <= now()
    ) AS works_due,
    (
        SELECT count(*) FROM events e
        WHERE e.cluster = c.name AND e.type = 'DriftCorrected' AND e.time > now() - interval '1 hour'
    ) AS drift_events_last_hour,
    c.updated_at
FROM clusters c
LEFT JOIN cluster_leases l ON l.cluster = c.name
CROSS JOIN LATERAL (
    SELECT
        count(*) AS works_total,
        count(*) FILTER (WHERE s.state = 'pending') AS works_pending,
        count(*) FILTER (WHERE s.state = 'applied') AS works_applied,
        count(*) FILTER (WHERE s.state = 'conflict') AS works_conflict,
        count(*) FILTER (WHERE s.state = 'failed') AS works_failed,
        count(*) FILTER (WHERE s.state = 'deleting') AS works_deleting,
        count(*) FILTER (WHERE s.state = 'orphaning') AS works_orphaning,
        count(*) FILTER (WHERE s.state = 'orphaned') AS works_orphaned
    FROM works s
    WHERE s.cluster = c.name
) w
"""


def upgrade() -> None:
    op.execute(FLEET_INT)
    op.execute(FLEET_WORK_STATUS)
    op.execute(FLEET_RESOURCE_STATUS)
    op.execute(FLEET_CLUSTER_STATUS)


def downgrade() -> None:
    op.execute("DROP VIEW fleet_cluster_status")
    op.execute("DROP VIEW fleet_resource_status")
    op.execute("DROP VIEW fleet_work_status")
    op.execute("DROP FUNCTION fleet_int(jsonb, text)")
