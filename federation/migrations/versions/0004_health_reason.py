"""member_status.health_reason: why a copy's health is what it is ("2/3 replicas available"),
for the status page's hover text and the API's per-cluster detail; fleet_work_status gains it
as its last column (CREATE OR REPLACE VIEW can only add at the end).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _views() -> ModuleType:
    """0002, whose view definitions this one extends (and restores on downgrade)."""
    path = Path(__file__).with_name("0002_dashboard_views.py")
    spec = importlib.util.spec_from_file_location("federation_migration_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _work_status_with_reason(sql: str) -> str:
    last = "ms.collected_at AS status_collected_at"
    assert sql.count(last) == 1, "0002's fleet_work_status changed shape"
    return sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1).replace(
        last, f"{last},\n    ms.health_reason AS health_reason"
    )


def upgrade() -> None:
    op.add_column("member_status", sa.Column("health_reason", sa.Text(), nullable=True))
    op.execute(_work_status_with_reason(_views().FLEET_WORK_STATUS))


def downgrade() -> None:
    views = _views()
    # A view cannot lose a column in place: rebuild 0002's three (two depend on this one).
    op.execute("DROP VIEW fleet_cluster_status")
    op.execute("DROP VIEW fleet_resource_status")
    op.execute("DROP VIEW fleet_work_status")
    op.execute(views.FLEET_WORK_STATUS)
    op.execute(views.FLEET_RESOURCE_STATUS)
    op.execute(views.FLEET_CLUSTER_STATUS)
    op.drop_column("member_status", "health_reason")
