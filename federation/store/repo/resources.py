"""`resources`: the hub's templates, keyed by (api_group, kind, namespace, name)."""

from __future__ import annotations

from collections.abc import Sequence

from federation.errors import StoreError
from federation.store.db import Connection, json_texts
from federation.store.rows import ObjectRef, ResourceId, ResourceRow
from federation.store.sealing import sealed_with

# Only rows that are new or whose resourceVersion/uid changed (or that come back after a
# deletion) reach the INSERT, so re-listing the hub after a restart writes nothing; the ids of
# every input row come back in input order. A template whose sensitive values are sealed (its
# key id in `sealed_kid`) is also rewritten when the stored row is not sealed with that key —
# plaintext from before sealing, or an older key: that is how rotation reaches this table. The
# stored template is only read for such rows, so other templates cost no manifest read.
UPSERT = """
WITH input AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
        $9::text[], $10::text[], $11::text[]
    ) WITH ORDINALITY AS i(api_group, api_version, kind, namespace, name, uid, generation, resource_version,
                           template, sealed_kid, last_writer, ord)
),
changed AS (
    INSERT INTO resources AS r (
        api_group, api_version, kind, namespace, name, uid, generation, resource_version, template,
        last_writer
    )
    SELECT i.api_group, i.api_version, i.kind, i.namespace, i.name, i.uid, i.generation, i.resource_version,
           i.template::jsonb, i.last_writer
    FROM input i
    LEFT JOIN resources o
        ON (o.api_group, o.kind, o.namespace, o.name) = (i.api_group, i.kind, i.namespace, i.name)
    WHERE o.id IS NULL
       OR o.deleted_at IS NOT NULL
       OR (o.uid, o.resource_version, o.api_version)
          IS DISTINCT FROM (i.uid, i.resource_version, i.api_version)
       OR (i.sealed_kid IS NOT NULL AND o.template->'$sealed'->>'kid' IS DISTINCT FROM i.sealed_kid)
    ON CONFLICT (api_group, kind, namespace, name) DO UPDATE SET
        api_version = EXCLUDED.api_version,
        uid = EXCLUDED.uid,
        generation = EXCLUDED.generation,
        resource_version = EXCLUDED.resource_version,
        template = EXCLUDED.template,
        last_writer = COALESCE(EXCLUDED.last_writer, r.last_writer),
        deleted_at = NULL,
        updated_at = now()
    RETURNING r.id, r.api_group, r.kind, r.namespace, r.name, (r.xmax = 0) AS inserted
)
SELECT COALESCE(c.id, o.id) AS id, COALESCE(c.inserted, false) AS inserted
FROM input i
LEFT JOIN changed c
    ON (c.api_group, c.kind, c.namespace, c.name) = (i.api_group, i.kind, i.namespace, i.name)
LEFT JOIN resources o
    ON (o.api_group, o.kind, o.namespace, o.name) = (i.api_group, i.kind, i.namespace, i.name)
ORDER BY i.ord
"""

MARK_DELETED = """
WITH target AS (
    SELECT id, deleted_at FROM resources
    WHERE api_group = $1 AND kind = $2 AND namespace = $3 AND name = $4
),
marked AS (
    UPDATE resources r SET deleted_at = now(), updated_at = now()
    FROM target t WHERE r.id = t.id AND t.deleted_at IS NULL
    RETURNING r.id
)
SELECT id FROM target
"""

# A resource goes only when nothing of it is left in a member: its works are finished
# (deleted) or orphaned on purpose.
PURGE = """
WITH purged AS (
    DELETE FROM resources r
    WHERE r.id = $1 AND r.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM works w WHERE w.resource_id = r.id AND w.state <> 'orphaned')
    RETURNING r.id
),
statuses AS (
    DELETE FROM member_status m USING purged p WHERE m.resource_id = p.id
)
SELECT count(*) FROM purged
"""


# The same rule for every deleted row at once, a batch at a time (housekeeping).
PURGE_DELETED = """
WITH doomed AS (
    SELECT r.id FROM resources r
    WHERE r.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM works w WHERE w.resource_id = r.id AND w.state <> 'orphaned')
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
purged AS (
    DELETE FROM resources r USING doomed d
    WHERE r.id = d.id AND r.deleted_at IS NOT NULL
    RETURNING r.id
),
statuses AS (
    DELETE FROM member_status m USING purged p WHERE m.resource_id = p.id
)
SELECT count(*) FROM purged
"""


def _check_unique(rows: Sequence[ResourceRow]) -> None:
    seen: set[ObjectRef] = set()
    for row in rows:
        if row.ref in seen:
            raise StoreError(f"resources {row.ref}: given twice in one upsert")
        seen.add(row.ref)


async def upsert_resources(conn: Connection, rows: Sequence[ResourceRow]) -> list[ResourceId]:
    """Insert or update templates; returns their ids in input order. Unchanged rows: no write."""
    return [rid for rid, _ in await upsert_resources_new(conn, rows)]


async def upsert_resources_new(
    conn: Connection, rows: Sequence[ResourceRow]
) -> list[tuple[ResourceId, bool]]:
    """`upsert_resources`, telling for each row whether it was inserted just now: a new row has
    no placement yet, which spares the hub controller reading one (a round trip per template
    in a bulk rollout). A deleted-then-recreated template reuses its row, so is not new."""
    if not rows:
        return []
    _check_unique(rows)
    records = await conn.fetch(
        UPSERT,
        [r.api_group for r in rows],
        [r.api_version for r in rows],
        [r.kind for r in rows],
        [r.namespace for r in rows],
        [r.name for r in rows],
        [r.uid for r in rows],
        [r.generation for r in rows],
        [r.resource_version for r in rows],
        json_texts([r.template for r in rows]),
        [sealed_with(r.template) for r in rows],
        [r.last_writer for r in rows],
    )
    return [(ResourceId(r["id"]), bool(r["inserted"])) for r in records]


async def mark_resource_deleted(conn: Connection, ref: ObjectRef) -> ResourceId | None:
    """Record that the template was deleted on the hub (its works are unplaced by the caller);
    its id, or None if the store never had it."""
    value = await conn.fetchval(MARK_DELETED, ref.api_group, ref.kind, ref.namespace, ref.name)
    return None if value is None else ResourceId(value)


async def purge_resource(conn: Connection, resource_id: ResourceId) -> bool:
    """Remove a deleted resource once no work of it is left in a member. True if removed."""
    return int(await conn.fetchval(PURGE, resource_id)) == 1


async def purge_deleted_resources(conn: Connection, *, batch: int) -> int:
    """Remove up to `batch` deleted (or no longer governed) resources with nothing left in any
    member; returns how many. Their templates leave the database with them."""
    return int(await conn.fetchval(PURGE_DELETED, batch))


async def resource_id_of(conn: Connection, ref: ObjectRef) -> ResourceId | None:
    value = await conn.fetchval(
        "SELECT id FROM resources WHERE api_group = $1 AND kind = $2 AND namespace = $3 AND name = $4",
        ref.api_group,
        ref.kind,
        ref.namespace,
        ref.name,
    )
    return None if value is None else ResourceId(value)
