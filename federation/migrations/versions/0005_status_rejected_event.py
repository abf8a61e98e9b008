"""events.type gains StatusRejected: the hub's apiserver refused an aggregated status write (the
members' values made it invalid, or a webhook on the hub objects): recorded once per new
refusal, beside the template's StatusAggregated=False condition and a metric.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = (
    "Applied",
    "DriftCorrected",
    "Conflict",
    "Failover",
    "ApplyFailed",
    "Deleted",
    "Orphaned",
    "Adopted",
    "Unschedulable",
    "ClusterNotReady",
    "ClusterReady",
)
_AFTER = (*_BEFORE, "StatusRejected")


def _check(types: Sequence[str]) -> str:
    return "type IN (" + ", ".join(f"'{t}'" for t in types) + ")"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_events_type"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type"), "events", _check(_AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE type = 'StatusRejected'")
    op.drop_constraint(op.f("ck_events_type"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type"), "events", _check(_BEFORE))
