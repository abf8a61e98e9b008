"""What propagation needs beyond the initial schema.

- ``works.overwrite``: the governing policy's conflictResolution=Overwrite, per work, so a
  propagator knows whether it may adopt a pre-existing member object (and a change of it
  makes the work due again);
- ``works.baseline``: the drift baseline, a hash of the member object's managed fields right
  after our last apply, kept across restarts so a restart does not re-apply to find out;
- ``controller_leader``: which replica leads each hub (for people; the advisory lock decides).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "works", sa.Column("overwrite", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column("works", sa.Column("baseline", sa.Text(), nullable=True))
    op.create_table(
        "controller_leader",
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("hub", name=op.f("pk_controller_leader")),
    )


def downgrade() -> None:
    op.drop_table("controller_leader")
    op.drop_column("works", "baseline")
    op.drop_column("works", "overwrite")
