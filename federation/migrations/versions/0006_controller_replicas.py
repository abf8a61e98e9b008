"""controller_replicas: the live controller replicas, each heartbeating its own row, so every
replica computes the same owner of each member cluster (rendezvous hashing over the live ones:
`federation.propagate.shard`); and a statement-level trigger on member_status that notifies
channel ``federation_member_status`` after every batch a propagator writes, so the leader (which
aggregates status into the hub) learns at once of members whose propagators run on another
replica (a lost notification only delays: the leader also scans by ``collected_at``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "controller_replicas",
        sa.Column("replica", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "heartbeat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica", name=op.f("pk_controller_replicas")),
    )
    op.execute(
        """
        CREATE FUNCTION federation_member_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('federation_member_status', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER member_status_notify
        AFTER INSERT OR UPDATE ON member_status
        FOR EACH STATEMENT EXECUTE FUNCTION federation_member_status_notify()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS member_status_notify ON member_status")
    op.execute("DROP FUNCTION IF EXISTS federation_member_status_notify()")
    op.drop_table("controller_replicas")
