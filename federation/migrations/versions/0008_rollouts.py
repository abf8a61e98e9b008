"""rollouts: a template's staged rollout under a policy with ``spec.rollout`` — the revision every
cluster not yet reached keeps (sealed like the template itself), the revision being rolled out,
the stage, the clusters released to it, and what a person asked (approvals, an undo); events.type
gains the rollout's own events.

One row per template, not per (revision, stage): a newer revision supersedes the one in progress
(it starts again from the first stage), so only the current rollout has a state worth keeping;
its history is in the events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from federation.migrations.earlier import revision_module

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_0005 = revision_module("0005_status_rejected_event.py")
_BEFORE: tuple[str, ...] = _0005._AFTER
_AFTER = (
    *_BEFORE,
    "RolloutStarted",
    "RolloutStagePassed",
    "RolloutComplete",
    "RolloutHalted",
    "RolloutRolledBack",
)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
        sa.Column("stable_fp", sa.Text(), nullable=False),
        sa.Column("stable_template", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("target_fp", sa.Text(), nullable=True),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("stage", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("stage_name", sa.Text(), nullable=True),
        sa.Column(
            "stage_started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("released", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "clusters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("failed_stage", sa.Text(), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("undo_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "phase IN ('Progressing', 'WaitingApproval', 'Complete', 'Halted', 'RolledBack')",
            name=op.f("ck_rollouts_phase"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_rollouts_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_rollouts_policy_id_policies"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_rollouts")),
    )
    op.create_index("ix_rollouts_policy_id", "rollouts", ["policy_id"])
    op.drop_constraint(op.f("ck_events_type"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type"), "events", _0005._check(_AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE type LIKE 'Rollout%'")
    op.drop_constraint(op.f("ck_events_type"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type"), "events", _0005._check(_BEFORE))
    op.drop_index("ix_rollouts_policy_id", table_name="rollouts")
    op.drop_table("rollouts")
