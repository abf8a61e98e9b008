"""`placements` and `placement_decisions`, saved together with the works they imply.

`save_placement` is one SQL statement (data-modifying CTEs), hence one transaction and one round
trip: the decision rows, the placement row and the works of the resource change together or not
at all. Each part writes only what differs from what is stored:

- decision rows are upserted only when (chosen, replicas, reason) changed, and removed when the
  cluster is no longer a candidate;
- the placement row is written (and its revision bumped) only when its policy or unschedulable
  reason changed or a decision row did;
- works are written only when new, when their desired hash changed, or when a cluster that was
  being taken away is chosen again (see `works.UPSERT_DESIRED_TEMPLATE`), and never over values
  sealed with a key the writer cannot open (held back instead); works of clusters no longer
  chosen move to ``deleting`` (or ``orphaning``), once.

So a second identical call writes nothing at all — no new row versions, not even a row lock, no
transaction id — which is what lets a restarted controller recompute every placement without
re-applying a single work.
"""

from __future__ import annotations

from collections.abc import Sequence

from federation.errors import StoreError
from federation.store.db import Connection, json_texts
from federation.store.enums import WorkState
from federation.store.repo.works import UPSERT_DESIRED_TEMPLATE, parse_held
from federation.store.rows import (
    ClusterDecision,
    DesiredWork,
    PlacementChange,
    PolicyId,
    PolicySummary,
    ResourceId,
)

SAVE_PLACEMENT = (
    """
WITH
new_decisions AS (
    SELECT * FROM unnest($3::text[], $4::bool[], $5::int[], $6::text[])
        AS d(cluster, chosen, replicas, reason)
),
changed_decisions AS (
    SELECT d.* FROM new_decisions d
    LEFT JOIN placement_decisions o ON o.resource_id = $1 AND o.cluster = d.cluster
    WHERE o.resource_id IS NULL
       OR (o.chosen, o.replicas, o.reason) IS DISTINCT FROM (d.chosen, d.replicas, d.reason)
),
upserted_decisions AS (
    INSERT INTO placement_decisions AS o (resource_id, cluster, chosen, replicas, reason)
    SELECT $1, cluster, chosen, replicas, reason FROM changed_decisions
    ON CONFLICT (resource_id, cluster) DO UPDATE SET
        chosen = EXCLUDED.chosen, replicas = EXCLUDED.replicas, reason = EXCLUDED.reason
    RETURNING o.cluster
),
removed_decisions AS (
    DELETE FROM placement_decisions o
    WHERE o.resource_id = $1 AND o.cluster <> ALL($3::text[])
    RETURNING o.cluster
),
current_placement AS (
    SELECT policy_id, unschedulable, revision FROM placements WHERE resource_id = $1
),
dirty AS (
    SELECT NOT EXISTS (SELECT 1 FROM current_placement)
        OR EXISTS (
            SELECT 1 FROM current_placement c
            WHERE (c.policy_id, c.unschedulable) IS DISTINCT FROM ($2::bigint, $7::text)
        )
        OR EXISTS (SELECT 1 FROM upserted_decisions)
        OR EXISTS (SELECT 1 FROM removed_decisions) AS yes
),
placed AS (
    INSERT INTO placements AS p (resource_id, policy_id, revision, unschedulable, decided_at)
    SELECT $1, $2, 1, $7, now() FROM dirty WHERE dirty.yes
    ON CONFLICT (resource_id) DO UPDATE SET
        policy_id = EXCLUDED.policy_id,
        unschedulable = EXCLUDED.unschedulable,
        revision = p.revision + 1,
        decided_at = EXCLUDED.decided_at
    RETURNING p.revision
),
desired_input AS (
    SELECT $1::bigint AS resource_id, i.*
    FROM unnest($8::text[], $9::text[], $10::text[], $13::bool[], $15::text[])
        AS i(cluster, desired, desired_hash, overwrite, error)
),"""
    + UPSERT_DESIRED_TEMPLATE.format(name="upserted_works", input="desired_input", keys="$14")
    + """,
unplaced_works AS (
    UPDATE works w SET
        state = $11::work_state,
        claimed_by = NULL,
        claimed_until = NULL,
        next_attempt_at = now(),
        last_error = NULL,
        attempts = 0,
        version = w.version + 1,
        updated_at = now()
    WHERE w.resource_id = $1
      AND w.cluster <> ALL($12::text[])
      AND w.state NOT IN ('deleting', 'orphaning', 'orphaned')
    RETURNING w.cluster
)
SELECT
    COALESCE((SELECT revision FROM placed), (SELECT revision FROM current_placement)) AS revision,
    EXISTS (SELECT 1 FROM placed) AS placement_changed,
    ARRAY(SELECT cluster FROM upserted_works WHERE inserted ORDER BY cluster) AS created,
    ARRAY(SELECT cluster FROM upserted_works WHERE NOT inserted ORDER BY cluster) AS updated,
    ARRAY(SELECT cluster FROM unplaced_works ORDER BY cluster) AS unplaced,
    ARRAY(SELECT resource_id || '/' || cluster || '/' || COALESCE(kid, '') FROM upserted_works_held
          ORDER BY cluster) AS held
"""
)


def _validate(
    resource_id: ResourceId, decisions: Sequence[ClusterDecision], desired_works: Sequence[DesiredWork]
) -> None:
    where = f"placements resource_id={resource_id}"
    clusters = [d.cluster for d in decisions]
    if len(set(clusters)) != len(clusters):
        raise StoreError(f"{where}: a cluster appears twice among the decisions")
    chosen = {d.cluster for d in decisions if d.chosen}
    targets = [w.cluster for w in desired_works]
    if len(set(targets)) != len(targets):
        raise StoreError(f"{where}: a cluster appears twice among the desired works")
    stray = sorted(set(targets) - chosen)
    if stray:
        raise StoreError(f"{where}: desired works for clusters that are not chosen: {', '.join(stray)}")


async def save_placement(
    conn: Connection,
    resource_id: ResourceId,
    *,
    policy_id: PolicyId | None,
    decisions: Sequence[ClusterDecision],
    desired_works: Sequence[DesiredWork],
    unschedulable: str | None = None,
    orphan: bool = False,
    readable_keys: Sequence[str] | None = None,
) -> PlacementChange:
    """Save the placement of one resource and the works it implies, writing only what changed.

    `decisions` are every candidate cluster (chosen or not, with the reason); `desired_works` the
    translated manifest of each chosen cluster, or the reason its translation was refused (an
    `error`: the work is stored ``failed``, its member copy left as it is); a chosen cluster
    without one keeps its current work untouched. Works of clusters not chosen are moved to
    ``deleting``, or to ``orphaning`` when `orphan` (deletionPolicy=Orphan). A work sealed with a
    key not in `readable_keys` (None: no check) is left as it is and named in `works_held`.
    """
    _validate(resource_id, decisions, desired_works)
    record = await conn.fetchrow(
        SAVE_PLACEMENT,
        resource_id,
        policy_id,
        [d.cluster for d in decisions],
        [d.chosen for d in decisions],
        [d.replicas for d in decisions],
        [d.reason for d in decisions],
        unschedulable,
        [w.cluster for w in desired_works],
        json_texts([w.desired for w in desired_works]),
        [w.desired_hash for w in desired_works],
        (WorkState.ORPHANING if orphan else WorkState.DELETING).value,
        [d.cluster for d in decisions if d.chosen],
        [w.overwrite for w in desired_works],
        None if readable_keys is None else list(readable_keys),
        [w.error for w in desired_works],
    )
    assert record is not None
    return PlacementChange(
        revision=int(record["revision"]),
        placement_changed=bool(record["placement_changed"]),
        works_created=tuple(record["created"]),
        works_updated=tuple(record["updated"]),
        works_unplaced=tuple(record["unplaced"]),
        works_held=tuple((h.cluster, h.key_id) for h in parse_held(record["held"])),
    )


async def placement_of(conn: Connection, resource_id: ResourceId) -> list[ClusterDecision]:
    """The stored decision rows of a resource (the `previous` the placement engine keeps stable)."""
    records = await conn.fetch(
        "SELECT cluster, chosen, replicas, reason FROM placement_decisions"
        " WHERE resource_id = $1 ORDER BY cluster",
        resource_id,
    )
    return [ClusterDecision(r["cluster"], r["chosen"], r["replicas"], r["reason"]) for r in records]


POLICY_SUMMARY = """
SELECT
    count(DISTINCT p.resource_id) AS matched,
    count(w.id) FILTER (WHERE w.state NOT IN ('deleting', 'orphaning', 'orphaned')) AS placed,
    count(w.id) FILTER (WHERE w.state = 'applied') AS applied,
    count(w.id) FILTER (WHERE w.state = 'applied' AND m.health = 'Healthy') AS healthy,
    count(w.id) FILTER (WHERE w.state = 'conflict') AS conflicted,
    count(w.id) FILTER (WHERE w.state = 'failed') AS failed,
    count(w.id) FILTER (WHERE w.state = 'pending') AS pending
FROM placements p
JOIN resources r ON r.id = p.resource_id AND r.deleted_at IS NULL
LEFT JOIN works w ON w.resource_id = p.resource_id
LEFT JOIN member_status m ON m.resource_id = w.resource_id AND m.cluster = w.cluster
WHERE p.policy_id = $1
"""


async def policy_summary(conn: Connection, policy_id: PolicyId) -> PolicySummary:
    r = await conn.fetchrow(POLICY_SUMMARY, policy_id)
    assert r is not None
    return PolicySummary(**{k: int(r[k]) for k in PolicySummary.__dataclass_fields__})
