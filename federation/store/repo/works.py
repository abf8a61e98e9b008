"""`works`: one resource in one member cluster, and the lease-based queue the propagators use.

The life of a work row (states in `federation.store.enums.WorkState`):

    save_placement ──► pending ──claim──► (apply in the member, outside any transaction)
                          ▲                  │ record_apply_results
                          │                  ▼
        desired changes ──┴──── applied | conflict | failed (retried at next_attempt_at)
    cluster unchosen ──► deleting ──claim──► delete in the member ──► finish_deletion (row gone)
                      └► orphaning ──claim──► unmark in the member ──► orphaned

`next_attempt_at` is the to-do flag: NULL means nothing to do until the input changes, so the
claim query's partial index holds only the backlog. Every change bumps `version`, a claim too:
a worker reports with the version its claim returned, and a result from a worker whose lease
expired (and whose work someone else re-claimed) or whose work changed meanwhile is refused
(not recorded, and told apart in the batch's answer; `finish_deletion` raises
`VersionConflictError`).

Why one module of this length: every statement here moves a work along the one life drawn
above, and each relies on the others keeping `version`, the lease and `next_attempt_at` the
same way; the claim query's partial index and the states it serves are read together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from federation.errors import StoreError, VersionConflictError
from federation.store.db import Connection, json_texts, rowcount
from federation.store.enums import WorkState
from federation.store.rows import (
    ApplyResult,
    ClaimedWork,
    IndexedWork,
    ObjectRef,
    ResourceId,
    ResourceWork,
    WorkId,
)

# The core of the "zero writes when nothing changed" rule: only works that are new, whose
# desired hash changed, or that are being taken away and must come back reach the INSERT; the
# ON CONFLICT clause repeats the test for a row that changed between the read and the write.
#
# A work whose translation was refused (`error` given) is stored `failed` with that message and
# nothing to do (next_attempt_at NULL): its `desired` is only the template's identity (what
# deleting or orphaning the member copy later needs), and its hash, chosen by the caller, never
# equals a manifest's, so the fixed translation is written as soon as there is one.
#
# A work whose sensitive values are sealed with a key the writer cannot open ({keys}: the ids
# it can open; NULL when the store has no sealer) is never overwritten: the key may be a
# misconfiguration that the right key file fixes, and rewriting would hide it (and, with two
# replicas holding different keys, flip every row at each change of leader). Such works come
# out in {name}_held. The old row's `desired` is only read for works that would be written, so
# the restart path (nothing changed) never reads a manifest.
UPSERT_DESIRED_TEMPLATE = """
{name}_changed AS (
    SELECT i.resource_id, i.cluster, i.desired, i.desired_hash, i.overwrite, i.error, o.state AS old_state,
           o.desired AS old_desired
    FROM {input} i
    LEFT JOIN LATERAL (
        -- LIMIT 1 keeps this a per-row index probe: flattened into a plain join, the planner
        -- may hash the whole works table for every batch.
        SELECT o.desired_hash, o.state, o.overwrite, o.desired FROM works o
        WHERE o.resource_id = i.resource_id AND o.cluster = i.cluster
        LIMIT 1
    ) o ON true
    WHERE o.state IS NULL
       OR o.desired_hash <> i.desired_hash
       OR o.overwrite <> i.overwrite
       OR o.state IN ('deleting', 'orphaning', 'orphaned')
),
{name}_held AS (
    SELECT resource_id, cluster, old_desired->'$sealed'->>'kid' AS kid FROM {name}_changed
    WHERE old_state IS NOT NULL AND {keys}::text[] IS NOT NULL AND old_desired ? '$sealed'
      AND NOT COALESCE(old_desired->'$sealed'->>'kid' = ANY({keys}::text[]), false)
),
{name}_todo AS (
    SELECT c.resource_id, c.cluster, c.desired, c.desired_hash, c.overwrite, c.error FROM {name}_changed c
    WHERE NOT EXISTS (
        SELECT 1 FROM {name}_held h WHERE h.resource_id = c.resource_id AND h.cluster = c.cluster
    )
),
{name} AS (
    INSERT INTO works AS w (
        resource_id, cluster, desired, desired_hash, overwrite, state, next_attempt_at, last_error
    )
    SELECT resource_id, cluster, desired::jsonb, desired_hash, overwrite,
           CASE WHEN error IS NULL THEN 'pending' ELSE 'failed' END::work_state,
           CASE WHEN error IS NULL THEN now() END, error
    FROM {name}_todo
    ON CONFLICT (resource_id, cluster) DO UPDATE SET
        desired = EXCLUDED.desired,
        desired_hash = EXCLUDED.desired_hash,
        overwrite = EXCLUDED.overwrite,
        state = EXCLUDED.state,
        -- A worker applying the old version will have its result refused (version check);
        -- the new version must not wait for that worker's lease to expire.
        claimed_by = NULL,
        claimed_until = NULL,
        last_error = EXCLUDED.last_error,
        attempts = 0,
        -- A work still waiting for its first turn keeps its place in the queue: a template
        -- changed during a bulk rollout is not sent behind the whole backlog for it. A change
        -- to a copy the member already holds is due since the work was made: it goes before
        -- the copies placed after it (a fix to what runs is not queued behind a bulk of new
        -- placements), and in the order the works were made among its peers.
        next_attempt_at = CASE
            WHEN w.state = 'pending' AND EXCLUDED.state = 'pending'
                 AND w.next_attempt_at < EXCLUDED.next_attempt_at THEN w.next_attempt_at
            WHEN w.state = 'applied' AND EXCLUDED.state = 'pending'
                THEN LEAST(w.created_at, EXCLUDED.next_attempt_at)
            ELSE EXCLUDED.next_attempt_at END,
        version = w.version + 1,
        updated_at = now()
    WHERE (w.desired_hash <> EXCLUDED.desired_hash OR w.overwrite <> EXCLUDED.overwrite
           OR w.state IN ('deleting', 'orphaning', 'orphaned'))
      AND ({keys}::text[] IS NULL OR NOT (w.desired ? '$sealed')
           OR COALESCE(w.desired->'$sealed'->>'kid' = ANY({keys}::text[]), false))
    RETURNING w.resource_id, w.cluster, w.version = 1 AS inserted
)"""

UPSERT_DESIRED = (
    """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[])
        AS i(resource_id, cluster, desired, desired_hash, overwrite, error)
),"""
    + UPSERT_DESIRED_TEMPLATE.format(name="upserted", input="input", keys="$7")
    + """
SELECT (SELECT count(*) FROM upserted) AS written,
       ARRAY(SELECT resource_id || '/' || cluster || '/' || COALESCE(kid, '') FROM upserted_held) AS held
"""
)

CLAIM = """
WITH due AS MATERIALIZED (
    SELECT id FROM works
    WHERE cluster = $1
      AND next_attempt_at <= now()
      AND state IN ('pending', 'failed', 'conflict', 'deleting', 'orphaning')
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE works w SET
    claimed_by = $2,
    claimed_until = now() + make_interval(secs => $4),
    version = w.version + 1
FROM due, resources r
WHERE w.id = due.id AND r.id = w.resource_id
RETURNING w.id, w.resource_id, w.cluster, w.state, w.desired, w.desired_hash, w.applied_hash,
          w.member_resource_version, w.attempts, w.version, w.claimed_until, w.overwrite, w.baseline,
          r.api_group, r.kind, r.namespace, r.name
"""

RECORD_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::text[])
        AS r(id, version, state, applied_hash, member_resource_version, error, next_attempt_at, baseline)
),
updated AS (
    UPDATE works w SET
        state = r.state::work_state,
        applied_hash = CASE WHEN r.state = 'applied' THEN COALESCE(r.applied_hash, w.desired_hash)
                            ELSE COALESCE(r.applied_hash, w.applied_hash) END,
        member_resource_version = COALESCE(r.member_resource_version, w.member_resource_version),
        last_error = r.error,
        attempts = CASE WHEN r.error IS NULL THEN 0 ELSE w.attempts + 1 END,
        next_attempt_at = r.next_attempt_at,
        applied_at = CASE WHEN r.state = 'applied' THEN now() ELSE w.applied_at END,
        baseline = CASE WHEN r.state = 'applied' THEN COALESCE(r.baseline, w.baseline) ELSE w.baseline END,
        claimed_by = NULL,
        claimed_until = NULL,
        version = w.version + 1,
        updated_at = now()
    FROM input r
    WHERE w.id = r.id AND w.version = r.version
    RETURNING w.id, w.version
)
SELECT i.id, u.version FROM input i LEFT JOIN updated u ON u.id = i.id
"""

FINISH_DELETION = """
WITH deleted AS (
    DELETE FROM works WHERE id = $1 AND version = $2 RETURNING id, resource_id, cluster
),
statuses AS (
    DELETE FROM member_status m USING deleted d WHERE m.resource_id = d.resource_id AND m.cluster = d.cluster
)
SELECT (SELECT id FROM deleted) AS deleted, (SELECT version FROM works WHERE id = $1) AS found
"""

RELEASE_FOREIGN = """
UPDATE works SET claimed_by = NULL, claimed_until = NULL, version = version + 1
WHERE claimed_by IS NOT NULL AND claimed_by <> $1
"""

RELEASE = """
UPDATE works SET claimed_by = NULL, claimed_until = NULL, version = version + 1
WHERE claimed_by = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
"""

RENEW = """
UPDATE works w SET claimed_until = now() + make_interval(secs => $4)
FROM unnest($2::bigint[], $3::int[]) AS h(id, version)
WHERE w.id = h.id AND w.version = h.version AND w.claimed_by = $1
"""

REQUEUE = """
UPDATE works SET state = 'pending', next_attempt_at = now(), last_error = NULL, version = version + 1,
                 updated_at = now(), claimed_by = NULL, claimed_until = NULL
WHERE resource_id = $1 AND cluster = $2 AND state IN ('applied', 'failed', 'conflict')
RETURNING version
"""


def check_unique_works(rows: Sequence[ResourceWork]) -> None:
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row.resource_id, row.cluster)
        if key in seen:
            raise StoreError(
                f"works resource_id={row.resource_id} cluster={row.cluster}: given twice in one batch"
            )
        seen.add(key)


@dataclass(frozen=True, slots=True)
class HeldWork:
    """A work not rewritten because its values are sealed with a key the writer cannot open."""

    resource_id: ResourceId
    cluster: str
    key_id: str


def parse_held(values: Sequence[str]) -> list[HeldWork]:
    out = []
    for value in values:
        rid, cluster, kid = value.split("/", 2)
        out.append(HeldWork(resource_id=ResourceId(int(rid)), cluster=cluster, key_id=kid))
    return out


async def upsert_desired_works(
    conn: Connection, rows: Sequence[ResourceWork], *, readable_keys: Sequence[str] | None = None
) -> tuple[int, list[HeldWork]]:
    """Bulk form of the works half of `save_placement` (no unplacing). Returns the rows written
    and the works held back (sealed with a key not in `readable_keys`; None: no check)."""
    if not rows:
        return 0, []
    check_unique_works(rows)
    record = await conn.fetchrow(
        UPSERT_DESIRED,
        [r.resource_id for r in rows],
        [r.cluster for r in rows],
        json_texts([r.desired for r in rows]),
        [r.desired_hash for r in rows],
        [r.overwrite for r in rows],
        [r.error for r in rows],
        None if readable_keys is None else list(readable_keys),
    )
    assert record is not None
    return int(record["written"]), parse_held(record["held"])


def _claimed(r: asyncpg.Record) -> ClaimedWork:
    return ClaimedWork(
        id=WorkId(r["id"]),
        resource_id=ResourceId(r["resource_id"]),
        cluster=r["cluster"],
        state=WorkState(r["state"]),
        desired=r["desired"],
        desired_hash=r["desired_hash"],
        applied_hash=r["applied_hash"],
        member_resource_version=r["member_resource_version"],
        attempts=r["attempts"],
        version=r["version"],
        claimed_until=r["claimed_until"],
        overwrite=r["overwrite"],
        baseline=r["baseline"],
        template=ObjectRef(r["api_group"], r["kind"], r["namespace"], r["name"]),
    )


async def claim_due_works(
    conn: Connection, cluster: str, *, holder: str, limit: int, lease_seconds: float
) -> list[ClaimedWork]:
    """Lease up to `limit` due works of `cluster` to `holder`; never one another holder has."""
    records = await conn.fetch(CLAIM, cluster, holder, limit, float(lease_seconds))
    return sorted((_claimed(r) for r in records), key=lambda w: w.id)


def _conflict(*, work_id: WorkId, expected: int, found: int | None) -> VersionConflictError:
    key = f"id={work_id}"
    if found is None:
        message = f"works {key}: the row no longer exists (held version {expected})"
    else:
        message = f"works {key}: version is {found}, not {expected}: the work changed or was re-claimed"
    return VersionConflictError(message, table="works", key=key, expected=expected, actual=found)


async def record_apply_results(conn: Connection, rows: Sequence[ApplyResult]) -> dict[WorkId, int | None]:
    """Record what applies (or deletes, or orphanings) did, in one statement: a propagator's batch.

    Each result is recorded only if its work is still at the result's `version`, and releases
    the claim. `applied_hash` defaults to the work's desired hash when `state` is applied;
    `next_attempt_at` None means nothing more to do; `baseline` (applied only) is the drift
    baseline. Returns each work's new version, or None where the version check failed (the
    work changed, was re-claimed or is gone meanwhile: that result is not recorded, the others
    are). A work given twice is refused (`StoreError`, nothing recorded).
    """
    if not rows:
        return {}
    if len({r.work_id for r in rows}) != len(rows):
        raise StoreError("works: a work appears twice in one batch of results")
    records = await conn.fetch(
        RECORD_MANY,
        [r.work_id for r in rows],
        [r.version for r in rows],
        [r.state.value for r in rows],
        [r.applied_hash for r in rows],
        [r.member_resource_version for r in rows],
        [r.error for r in rows],
        [r.next_attempt_at for r in rows],
        [r.baseline for r in rows],
    )
    return {WorkId(r["id"]): (int(r["version"]) if r["version"] is not None else None) for r in records}


async def finish_deletion(conn: Connection, work_id: WorkId, version: int) -> None:
    """Remove a work whose member object is gone (or released), if it is still at `version`."""
    record = await conn.fetchrow(FINISH_DELETION, work_id, version)
    assert record is not None
    if record["deleted"] is None:
        raise _conflict(work_id=work_id, expected=version, found=record["found"])


async def release_claims(conn: Connection, holder: str, *, work_ids: Sequence[WorkId] | None = None) -> int:
    """Give back `holder`'s leases (all, or those of `work_ids`) so others may claim at once."""
    ids = None if work_ids is None else list(work_ids)
    return rowcount(await conn.execute(RELEASE, holder, ids))


async def renew_claims(
    conn: Connection, holder: str, held: Sequence[tuple[WorkId, int]], *, lease_seconds: float
) -> int:
    """Extend `holder`'s leases of the works in `held` (id, claimed version) that are still as
    claimed, without a new version: a result recorded later still matches its claim. A work
    changed or re-claimed meanwhile is left alone. Returns how many were extended."""
    if not held:
        return 0
    ids, versions = [w for w, _ in held], [v for _, v in held]
    return rowcount(await conn.execute(RENEW, holder, ids, versions, float(lease_seconds)))


async def release_foreign_claims(conn: Connection, holder: str) -> int:
    """Release every claim not held by `holder` (a new leader's first act, and only a leader's:
    the previous leader is gone, and its leases would otherwise hold its works until they expire)."""
    return rowcount(await conn.execute(RELEASE_FOREIGN, holder))


async def requeue_work(conn: Connection, resource_id: ResourceId, cluster: str) -> int | None:
    """Make a settled work due again now (drift seen in the member). Returns the new version,
    or None when the work is not settled (already due, being removed, or absent)."""
    value = await conn.fetchval(REQUEUE, resource_id, cluster)
    return None if value is None else int(value)


WORK_INDEX = """
SELECT id, resource_id, state, desired, desired_hash, applied_hash, baseline, version
FROM works WHERE cluster = $1
"""


async def work_index(conn: Connection, cluster: str) -> list[IndexedWork]:
    """Every work of `cluster`, as its propagator indexes member objects by."""
    records = await conn.fetch(WORK_INDEX, cluster)
    return [
        IndexedWork(
            id=WorkId(r["id"]),
            resource_id=ResourceId(r["resource_id"]),
            state=WorkState(r["state"]),
            desired=r["desired"],
            desired_hash=r["desired_hash"],
            applied_hash=r["applied_hash"],
            baseline=r["baseline"],
            version=r["version"],
        )
        for r in records
    ]


async def count_works(conn: Connection, resource_id: ResourceId) -> int:
    """How many works a resource still has (deletion waits for zero)."""
    return int(await conn.fetchval("SELECT count(*) FROM works WHERE resource_id = $1", resource_id))


async def works_to_drain(conn: Connection, cluster: str) -> int:
    """How many works of `cluster` still have a copy to delete or keep in step (orphaned ones
    are left in the member on purpose): a leaving cluster is drained at zero."""
    value = await conn.fetchval(
        "SELECT count(*) FROM works WHERE cluster = $1 AND state <> 'orphaned'", cluster
    )
    return int(value)


ABANDON = """
UPDATE works
SET state = 'orphaned', claimed_by = NULL, claimed_until = NULL, version = version + 1,
    last_error = $2, updated_at = now()
WHERE cluster = $1 AND state <> 'orphaned'
"""


async def abandon_cluster(conn: Connection, cluster: str, reason: str) -> int:
    """Mark every remaining work of a cluster that left before it was drained as orphaned:
    its copies stay in the member, and no propagator will ever claim them."""
    return rowcount(await conn.execute(ABANDON, cluster, reason))


SEALED_KEY_USAGE = """
SELECT 'works' AS tbl, desired->'$sealed'->>'kid' AS kid, count(*) AS n FROM works
WHERE desired ? '$sealed' GROUP BY 2
UNION ALL
SELECT 'resources', template->'$sealed'->>'kid', count(*) FROM resources
WHERE template ? '$sealed' GROUP BY 2
"""


async def sealed_key_usage(conn: Connection) -> dict[str, dict[str, int]]:
    """How many rows of each table hold values sealed with each key id: {key id: {table: n}}.

    A full scan of both tables (an operator's question when rotating keys, not a hot path)."""
    usage: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(SEALED_KEY_USAGE):
        usage.setdefault(str(r["kid"]), {})[r["tbl"]] = int(r["n"])
    return usage
