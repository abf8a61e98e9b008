"""changes carry their context: who last changed the template, the policy that placed it and
the placement's revision — written with the change, as it was then.

- ``resources.last_writer``: the field manager that last changed the template itself (not its
  status), from its managedFields (``kubectl-edit (Update)``, ``argocd-controller``): the only
  "who" the object records. The authenticated user is in the apiserver's audit log, not in the
  object.
- ``changes.actor``, ``changes.policy`` (``PropagationPolicy/shop/web``), and
  ``changes.placement_revision``: filled by the triggers from the template's row and its
  placement in the changing transaction, so a sink delivering a backlog an hour late still says
  what was true when the change happened (a join at read time would say what is true now).
  Changes about a template (copies, health, placement, its events) get them; a cluster's
  changes have none.

The 0009 functions are replaced whole (their bodies gain the three columns and the joins that
fill them, and an order: the joins would otherwise log one statement's rows in whatever order
the join produced, where a reader expects them by template and cluster); the downgrade
restores 0009's.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from federation.migrations.earlier import revision_module

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IDENTITY = """
    NULLIF(split_part({m}->>'apiVersion', '/', 1), {m}->>'apiVersion'),
    {m}->>'kind', COALESCE({m}->'metadata'->>'namespace', ''), {m}->'metadata'->>'name'
"""
_COLUMNS = (
    "type, cluster, resource_id, api_group, kind, namespace, name, data, actor, policy, placement_revision"
)
#: The context's three values, from the joins `_CONTEXT` makes (aliases r, p, pol).
_VALUES = """r.last_writer,
               pol.kind || '/' || COALESCE(NULLIF(pol.namespace || '/', '/'), '') || pol.name,
               p.revision"""
_CONTEXT = """
    LEFT JOIN resources r ON r.id = {rid}
    LEFT JOIN placements p ON p.resource_id = {rid}
    LEFT JOIN policies pol ON pol.id = p.policy_id"""

FUNCTIONS = {
    "federation_works_changes": f"""
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes ({_COLUMNS})
        SELECT 'CopyPlaced', n.cluster, n.resource_id, {_IDENTITY.format(m="n.desired")},
               jsonb_build_object('state', n.state, 'desiredHash', n.desired_hash, 'error', n.last_error),
               {_VALUES}
        FROM new_rows n {_CONTEXT.format(rid="n.resource_id")}
        ORDER BY n.resource_id, n.cluster;
    ELSE
        INSERT INTO changes ({_COLUMNS})
        SELECT 'CopyDeleted', o.cluster, o.resource_id, {_IDENTITY.format(m="o.desired")},
               jsonb_build_object('from', o.state),
               {_VALUES}
        FROM old_rows o {_CONTEXT.format(rid="o.resource_id")}
        ORDER BY o.resource_id, o.cluster;
    END IF;
    RETURN NULL;
END
""",
    "federation_work_updated": f"""
BEGIN
    INSERT INTO changes ({_COLUMNS})
    SELECT CASE WHEN NEW.desired_hash IS DISTINCT FROM OLD.desired_hash AND NEW.state = 'pending'
                THEN 'CopyChanged' ELSE 'Copy' || initcap(NEW.state::text) END,
           NEW.cluster, NEW.resource_id, {_IDENTITY.format(m="NEW.desired")},
           jsonb_build_object('state', NEW.state, 'from', OLD.state, 'desiredHash', NEW.desired_hash,
                              'memberResourceVersion', NEW.member_resource_version, 'error', NEW.last_error),
           {_VALUES}
    FROM (SELECT 1) one {_CONTEXT.format(rid="NEW.resource_id")};
    RETURN NULL;
END
""",
    "federation_member_status_changes": f"""
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO changes ({_COLUMNS})
        SELECT 'HealthChanged', n.cluster, n.resource_id, {_IDENTITY.format(m="w.desired")},
               jsonb_build_object('health', n.health, 'from', NULL, 'reason', n.health_reason),
               {_VALUES}
        FROM new_rows n JOIN works w ON w.resource_id = n.resource_id AND w.cluster = n.cluster
        {_CONTEXT.format(rid="n.resource_id")}
        ORDER BY n.resource_id, n.cluster;
    ELSE
        INSERT INTO changes ({_COLUMNS})
        SELECT 'HealthChanged', n.cluster, n.resource_id, {_IDENTITY.format(m="w.desired")},
               jsonb_build_object('health', n.health, 'from', o.health, 'reason', n.health_reason),
               {_VALUES}
        FROM new_rows n
        JOIN old_rows o ON o.resource_id = n.resource_id AND o.cluster = n.cluster
        JOIN works w ON w.resource_id = n.resource_id AND w.cluster = n.cluster
        {_CONTEXT.format(rid="n.resource_id")}
        WHERE n.health IS DISTINCT FROM o.health
        ORDER BY n.resource_id, n.cluster;
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
               'policy', pol.kind || '/' || COALESCE(NULLIF(pol.namespace || '/', '/'), '') || pol.name,
               'clusters', COALESCE((SELECT jsonb_agg(d.cluster ORDER BY d.cluster) FROM placement_decisions d
                                     WHERE d.resource_id = n.resource_id AND d.chosen), '[]'::jsonb)),
           r.last_writer,
           pol.kind || '/' || COALESCE(NULLIF(pol.namespace || '/', '/'), '') || pol.name,
           n.revision
    FROM new_rows n
    JOIN resources r ON r.id = n.resource_id
    LEFT JOIN policies pol ON pol.id = n.policy_id
    ORDER BY n.resource_id;
    RETURN NULL;
END
""",
    # Events name their object, not its row: the template is found by its identity (the change
    # keeps no resource_id, as in 0009: an event is not a state of the template's copies).
    "federation_events_changes": f"""
BEGIN
    INSERT INTO changes ({_COLUMNS})
    SELECT n.type, n.cluster, NULL, NULLIF(n.api_group, ''), n.kind, n.namespace, n.name,
           jsonb_build_object('message', n.message, 'details', n.details, 'event', n.id),
           {_VALUES}
    FROM new_rows n
    LEFT JOIN resources r
        ON n.kind IS NOT NULL
       AND (r.api_group, r.kind, r.namespace, r.name)
           = (COALESCE(n.api_group, ''), n.kind, COALESCE(n.namespace, ''), n.name)
    LEFT JOIN placements p ON p.resource_id = r.id
    LEFT JOIN policies pol ON pol.id = p.policy_id
    ORDER BY n.id;
    RETURN NULL;
END
""",
}


def _replace(functions: dict[str, str]) -> None:
    for name, body in functions.items():
        op.execute(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$")


def upgrade() -> None:
    op.add_column("resources", sa.Column("last_writer", sa.Text(), nullable=True))
    op.add_column("changes", sa.Column("actor", sa.Text(), nullable=True))
    op.add_column("changes", sa.Column("policy", sa.Text(), nullable=True))
    op.add_column("changes", sa.Column("placement_revision", sa.Integer(), nullable=True))
    _replace(FUNCTIONS)


def downgrade() -> None:
    previous: dict[str, str] = revision_module("0009_change_log.py").FUNCTIONS
    _replace({name: previous[name] for name in FUNCTIONS})
    op.drop_column("changes", "placement_revision")
    op.drop_column("changes", "policy")
    op.drop_column("changes", "actor")
    op.drop_column("resources", "last_writer")
