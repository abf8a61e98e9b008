"""changes: the fleet's change log — one row per state change, written by triggers in the
transaction that makes the change, numbered in commit order by a sequencer.

**Written by triggers** (statement-level, with transition tables: one INSERT … SELECT per
statement, whatever its row count; but a row trigger behind a WHEN for a work's updates, most of
which — claims, lease renewals — change nothing logged and so cost no call), so a change without
its log row — or a row without its change — is impossible (a transactional outbox), whichever
code path writes:

- ``works``: a copy placed (``CopyPlaced``), changed (``CopyChanged``: a new desired manifest),
  applied, failed, conflicted, deleting, orphaning, orphaned (``Copy<State>``), deleted
  (``CopyDeleted``: the row finished);
- ``member_status``: a copy's health changed (``HealthChanged``, from/to and the reason);
- ``placements``: a new placement revision (``PlacementDecided``: the chosen clusters, policy);
- ``clusters``: ready or not (``ClusterReady``/``ClusterNotReady``), taints changed
  (``ClusterTainted``), joined, removed;
- ``events``: every event as its own type (DriftCorrected, Failover, Conflict, ApplyFailed,
  Rollout…), message and details (which never hold a Secret's value: see the events' writers).

Names come from the rows themselves (a work's manifest identity is never sealed), so a log row
never joins the template's row — which a cascaded purge may already have removed.

**Numbered in commit order.** Identity values are handed out at insert time, and transactions
commit in another order, so a reader that followed ``id`` could step past a row committed
later with a smaller id and never see it. Rows are inserted without a ``position``; the
sequencer (`federation_sequence_changes`, one at a time under an advisory lock) gives positions,
in ``id`` order, only to rows whose transaction is older than every transaction still running
(``txid < pg_snapshot_xmin``): those can no longer be joined by an earlier-numbered row. Readers
follow ``position``, which therefore never has a row appear behind them. Two changes of the same
row are in commit order (the second waits for the first's row lock, so it is inserted later).

``sink_positions``: how far each event sink (`federation run --event-sinks`) has delivered —
saved after each delivered batch, so a restart repeats at most the batch in flight.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The lock the sequencer holds for its transaction: one numbering at a time.
SEQUENCER_LOCK = 7_210_001

_IDENTITY = """
    NULLIF(split_part({m}->>'apiVersion', '/', 1), {m}->>'apiVersion'),
    {m}->>'kind', COALESCE({m}->'metadata'->>'namespace', ''), {m}->'metadata'->>'name'
"""
_COLUMNS = "type, cluster, resource_id, api_group, kind, namespace, name, data"

FUNCTIONS = {
    "federation_works_changes": f"""
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes ({_COLUMNS})
        SELECT 'CopyPlaced', n.cluster, n.resource_id, {_IDENTITY.format(m="n.desired")},
               jsonb_build_object('state', n.state, 'desiredHash', n.desired_hash, 'error', n.last_error)
        FROM new_rows n;
    ELSE
        INSERT INTO changes ({_COLUMNS})
        SELECT 'CopyDeleted', o.cluster, o.resource_id, {_IDENTITY.format(m="o.desired")},
               jsonb_build_object('from', o.state)
        FROM old_rows o;
    END IF;
    RETURN NULL;
END
""",
    # Row by row, behind the trigger's WHEN: most updates of a work (claims, lease renewals,
    # releases) change nothing logged, and a row trigger whose WHEN fails costs no call — a
    # statement trigger would build its transition tables for every one of them (and Postgres
    # allows no column list with transition tables).
    "federation_work_updated": f"""
BEGIN
    INSERT INTO changes ({_COLUMNS})
    VALUES (
        CASE WHEN NEW.desired_hash IS DISTINCT FROM OLD.desired_hash AND NEW.state = 'pending'
             THEN 'CopyChanged' ELSE 'Copy' || initcap(NEW.state::text) END,
        NEW.cluster, NEW.resource_id, {_IDENTITY.format(m="NEW.desired")},
        jsonb_build_object('state', NEW.state, 'from', OLD.state, 'desiredHash', NEW.desired_hash,
                           'memberResourceVersion', NEW.member_resource_version, 'error', NEW.last_error)
    );
    RETURN NULL;
END
""",
    "federation_member_status_changes": f"""
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes ({_COLUMNS})
        SELECT 'HealthChanged', n.cluster, n.resource_id, {_IDENTITY.format(m="w.desired")},
               jsonb_build_object('health', n.health, 'from', NULL, 'reason', n.health_reason)
        FROM new_rows n JOIN works w ON w.resource_id = n.resource_id AND w.cluster = n.cluster;
    ELSE
        INSERT INTO changes ({_COLUMNS})
        SELECT 'HealthChanged', n.cluster, n.resource_id, {_IDENTITY.format(m="w.desired")},
               jsonb_build_object('health', n.health, 'from', o.health, 'reason', n.health_reason)
        FROM new_rows n
        JOIN old_rows o ON o.resource_id = n.resource_id AND o.cluster = n.cluster
        JOIN works w ON w.resource_id = n.resource_id AND w.cluster = n.cluster
        WHERE n.health IS DISTINCT FROM o.health;
    END IF;
    RETURN NULL;
END
""",
    "federation_placements_changes": f"""
BEGIN
    INSERT INTO changes ({_COLUMNS})
    SELECT 'PlacementDecided', NULL, n.resource_id, NULLIF(r.api_group, ''), r.kind, r.namespace, r.name,
           jsonb_build_object(
               'revision', n.revision,
               'unschedulable', n.unschedulable,
               'policy', p.kind || '/' || COALESCE(NULLIF(p.namespace || '/', '/'), '') || p.name,
               'clusters', COALESCE((SELECT jsonb_agg(d.cluster ORDER BY d.cluster) FROM placement_decisions d
                                     WHERE d.resource_id = n.resource_id AND d.chosen), '[]'::jsonb))
    FROM new_rows n
    JOIN resources r ON r.id = n.resource_id
    LEFT JOIN policies p ON p.id = n.policy_id;
    RETURN NULL;
END
""",
    "federation_clusters_changes": f"""
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes ({_COLUMNS})
        SELECT 'ClusterJoined', n.name, NULL, NULL, NULL, NULL, NULL, jsonb_build_object('labels', n.labels)
        FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO changes ({_COLUMNS})
        SELECT CASE WHEN n.ready THEN 'ClusterReady' ELSE 'ClusterNotReady' END,
               n.name, NULL, NULL, NULL, NULL, NULL, jsonb_build_object('reason', n.ready_reason)
        FROM new_rows n JOIN old_rows o ON o.name = n.name
        WHERE n.ready IS DISTINCT FROM o.ready;
        INSERT INTO changes ({_COLUMNS})
        SELECT 'ClusterTainted', n.name, NULL, NULL, NULL, NULL, NULL,
               jsonb_build_object('taints', n.taints, 'from', o.taints)
        FROM new_rows n JOIN old_rows o ON o.name = n.name
        WHERE n.taints IS DISTINCT FROM o.taints;
    ELSE
        INSERT INTO changes ({_COLUMNS})
        SELECT 'ClusterRemoved', o.name, NULL, NULL, NULL, NULL, NULL, '{{}}'::jsonb FROM old_rows o;
    END IF;
    RETURN NULL;
END
""",
    "federation_events_changes": f"""
BEGIN
    INSERT INTO changes ({_COLUMNS})
    SELECT n.type, n.cluster, NULL, NULLIF(n.api_group, ''), n.kind, n.namespace, n.name,
           jsonb_build_object('message', n.message, 'details', n.details, 'event', n.id)
    FROM new_rows n;
    RETURN NULL;
END
""",
}

#: Statement triggers: (table, function, events), each event with its transition tables.
TRIGGERS = (
    ("works", "federation_works_changes", ("INSERT", "DELETE")),
    ("member_status", "federation_member_status_changes", ("INSERT", "UPDATE")),
    ("placements", "federation_placements_changes", ("INSERT", "UPDATE")),
    ("clusters", "federation_clusters_changes", ("INSERT", "UPDATE", "DELETE")),
    ("events", "federation_events_changes", ("INSERT",)),
)

WORK_UPDATED = """
CREATE TRIGGER works_changes_update AFTER UPDATE OF state, desired_hash, applied_hash ON works
FOR EACH ROW
WHEN (NEW.state IS DISTINCT FROM OLD.state OR NEW.desired_hash IS DISTINCT FROM OLD.desired_hash
      OR (NEW.state = 'applied' AND NEW.applied_hash IS DISTINCT FROM OLD.applied_hash))
EXECUTE FUNCTION federation_work_updated()
"""

SEQUENCE = f"""
CREATE FUNCTION federation_sequence_changes(max_rows integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
    numbered bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({SEQUENCER_LOCK});
    SELECT COALESCE(max(position), 0) INTO last FROM changes;
    WITH todo AS (
        SELECT id, last + row_number() OVER (ORDER BY id) AS pos
        FROM (
            SELECT id FROM changes
            WHERE position IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY id
            LIMIT max_rows
        ) t
    )
    UPDATE changes c SET position = todo.pos FROM todo WHERE c.id = todo.id;
    GET DIAGNOSTICS numbered = ROW_COUNT;
    IF numbered > 0 THEN
        PERFORM pg_notify('federation_changes', (last + numbered)::text);
    END IF;
    RETURN numbered;
END
$$
"""


def _trigger_name(table: str, event: str) -> str:
    return f"{table}_changes_{event.lower()}"


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=True),
        sa.Column("resource_id", sa.BigInteger(), nullable=True),
        sa.Column("api_group", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("namespace", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sa.UniqueConstraint("position", name=op.f("uq_changes_position")),
    )
    # A type alembic does not know: the writing transaction, what the sequencer orders by.
    op.execute("ALTER TABLE changes ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.create_table(
        "sink_positions",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sink_positions")),
    )
    op.create_index("ix_changes_unsequenced", "changes", ["id"], postgresql_where=sa.text("position IS NULL"))
    op.create_index("ix_changes_time", "changes", ["time"])
    for name, body in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$")
    for table, function, events in TRIGGERS:
        for event in events:
            tables = {
                "INSERT": "NEW TABLE AS new_rows",
                "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows",
            }[event]
            op.execute(
                f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    op.execute(WORK_UPDATED)
    op.execute(SEQUENCE)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS federation_sequence_changes(integer)")
    op.execute("DROP TRIGGER IF EXISTS works_changes_update ON works")
    for table, _function, events in TRIGGERS:
        for event in events:
            op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("sink_positions")
    op.drop_table("changes")
