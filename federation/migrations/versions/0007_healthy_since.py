"""member_status.healthy_since: when a copy last turned Healthy (NULL while it is not);
fleet_work_status gains it as its last column.

`collected_at` moves with every change the member reports, so "Healthy for how long" — what a
rollout's soak waits on, and what a person reading `federation status` asks — needs a time that
moves only when health does: set by the status upsert when health turns Healthy, kept while it
stays Healthy (replica counts may change meanwhile), cleared when it leaves. Rows Healthy at the
upgrade start from their `collected_at` (the last change seen while Healthy: later than the
real turn, never earlier, so a soak counted from it only waits longer).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from federation.migrations.earlier import revision_module

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _work_status_0004() -> str:
    views = revision_module("0002_dashboard_views.py")
    sql: str = revision_module("0004_health_reason.py")._work_status_with_reason(views.FLEET_WORK_STATUS)
    return sql


def _work_status_with_healthy_since() -> str:
    sql = _work_status_0004()
    last = "ms.health_reason AS health_reason"
    assert sql.count(last) == 1, "0004's fleet_work_status changed shape"
    return sql.replace(last, f"{last},\n    ms.healthy_since AS healthy_since")


def upgrade() -> None:
    op.add_column("member_status", sa.Column("healthy_since", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE member_status SET healthy_since = collected_at WHERE health = 'Healthy'")
    op.execute(_work_status_with_healthy_since())


def downgrade() -> None:
    views = revision_module("0002_dashboard_views.py")
    # A view cannot lose a column in place: rebuild the three (two depend on this one) as 0004 left them.
    op.execute("DROP VIEW fleet_cluster_status")
    op.execute("DROP VIEW fleet_resource_status")
    op.execute("DROP VIEW fleet_work_status")
    op.execute(views.FLEET_WORK_STATUS)
    op.execute(_work_status_0004())
    op.execute(views.FLEET_RESOURCE_STATUS)
    op.execute(views.FLEET_CLUSTER_STATUS)
    op.drop_column("member_status", "healthy_since")
