"""Initial schema of the state store: every table, constraint and index.

Generated from `federation/store/models.py` by alembic's autogenerate, then reviewed: the
downgrade also drops the two enum types, which autogenerate leaves behind.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_leases",
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cluster", name=op.f("pk_cluster_leases")),
    )
    op.create_table(
        "clusters",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "labels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "taints",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("ready", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("ready_reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("last_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kubernetes_version", sa.Text(), nullable=True),
        sa.Column(
            "allocatable",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_clusters")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_key", sa.UUID(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=True),
        sa.Column("api_group", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("namespace", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "type IN ('Applied', 'DriftCorrected', 'Conflict', 'Failover', 'ApplyFailed', 'Deleted', "
            "'Orphaned', 'Adopted', 'Unschedulable', 'ClusterNotReady', 'ClusterReady')",
            name=op.f("ck_events_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_events_event_key")),
    )
    op.create_index("ix_events_cluster_time", "events", ["cluster", "time"], unique=False)
    op.create_index("ix_events_time", "events", ["time"], unique=False)
    op.create_table(
        "policies",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "spec",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('PropagationPolicy', 'ClusterPropagationPolicy', 'OverridePolicy', "
            "'ClusterOverridePolicy')",
            name=op.f("ck_policies_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("kind", "namespace", "name", name=op.f("uq_policies_kind_namespace_name")),
    )
    op.create_table(
        "resources",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("api_group", sa.Text(), nullable=False),
        sa.Column("api_version", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("resource_version", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("template", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
        sa.UniqueConstraint(
            "api_group", "kind", "namespace", "name", name=op.f("uq_resources_api_group_kind_namespace_name")
        ),
    )
    op.create_table(
        "watch_checkpoints",
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("resource_version", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "resource", name=op.f("pk_watch_checkpoints")),
    )
    op.create_table(
        "placements",
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
        sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("unschedulable", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_placements_policy_id_policies"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_placements_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_placements")),
    )
    op.create_table(
        "works",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("desired", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("desired_hash", sa.Text(), nullable=False),
        sa.Column("applied_hash", sa.Text(), nullable=True),
        sa.Column("member_resource_version", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "applied",
                "conflict",
                "failed",
                "deleting",
                "orphaning",
                "orphaned",
                name="work_state",
            ),
            server_default="pending",
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("(claimed_by IS NULL) = (claimed_until IS NULL)", name=op.f("ck_works_claim")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_works_attempts")),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_works_resource_id_resources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_works")),
        sa.UniqueConstraint("resource_id", "cluster", name=op.f("uq_works_resource_id_cluster")),
    )
    op.create_index(
        "ix_works_claimed_by",
        "works",
        ["claimed_by"],
        unique=False,
        postgresql_where=sa.text("claimed_by IS NOT NULL"),
    )
    op.create_index("ix_works_cluster_state", "works", ["cluster", "state"], unique=False)
    op.create_index(
        "ix_works_due",
        "works",
        ["cluster", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.create_table(
        "member_status",
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column(
            "status",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "health",
            sa.Enum("Healthy", "Progressing", "Unknown", "Degraded", name="health"),
            server_default="Unknown",
            nullable=False,
        ),
        sa.Column("observed_generation", sa.BigInteger(), nullable=True),
        sa.Column("member_resource_version", sa.Text(), nullable=True),
        sa.Column(
            "collected_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("resource_id", "cluster", name=op.f("pk_member_status")),
    )
    op.create_table(
        "placement_decisions",
        sa.Column("resource_id", sa.BigInteger(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["placements.resource_id"],
            name=op.f("fk_placement_decisions_resource_id_placements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("resource_id", "cluster", name=op.f("pk_placement_decisions")),
    )


def downgrade() -> None:
    op.drop_table("placement_decisions")
    op.drop_table("member_status")
    op.drop_index("ix_works_due", table_name="works", postgresql_where=sa.text("next_attempt_at IS NOT NULL"))
    op.drop_index("ix_works_cluster_state", table_name="works")
    op.drop_index(
        "ix_works_claimed_by", table_name="works", postgresql_where=sa.text("claimed_by IS NOT NULL")
    )
    op.drop_table("works")
    op.drop_table("placements")
    op.drop_table("watch_checkpoints")
    op.drop_table("resources")
    op.drop_table("policies")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_events_cluster_time", table_name="events")
    op.drop_table("events")
    op.drop_table("clusters")
    op.drop_table("cluster_leases")
    sa.Enum(name="health").drop(op.get_bind(), checkfirst=False)
    sa.Enum(name="work_state").drop(op.get_bind(), checkfirst=False)
