"""The Postgres state store: per-cluster fan-out state, transactional and queryable.

One row per (resource, cluster) lives here rather than in the hub's etcd: works (what each
member should hold and how far the apply got), member statuses, placements, events and watch
checkpoints, plus SQL views for dashboards. `Store` is the handle the controller uses;
`migrate` runs the alembic migrations; the tables are declared in `federation.store.models`.
Sensitive values in templates and works are sealed at this boundary by the `Sealer` the
controller gives `Store.connect` (`federation.store.sealing`).

This package imports nothing of ours but `federation.errors` (an import-linter contract).
"""

from federation.store.enums import EventType, Health, PolicyKind, WorkState
from federation.store.migrate import Revisions, head_revision
from federation.store.repo.changes import CHANGES_CHANNEL, ChangeRow
from federation.store.repo.rollouts import RolloutCopy, RolloutListing, RolloutRow
from federation.store.retry import RetryPolicy, give_up_after, retrying
from federation.store.rows import (
    ApplyResult,
    Checkpoint,
    ClaimedWork,
    ClusterDecision,
    ClusterRow,
    ClusterStatus,
    DesiredWork,
    EventRow,
    IndexedWork,
    MemberStatusRow,
    ObjectRef,
    PlacementChange,
    PolicyId,
    PolicyRow,
    PolicySummary,
    ResourceId,
    ResourceRow,
    ResourceStatus,
    ResourceWork,
    StoredEvent,
    WorkId,
    WorkStatus,
)
from federation.store.sealing import SealedRow, Sealer
from federation.store.store import HealthListener, Store, StoreSettings, StoreStats

__all__ = [
    "CHANGES_CHANNEL",
    "ApplyResult",
    "ChangeRow",
    "Checkpoint",
    "ClaimedWork",
    "ClusterDecision",
    "ClusterRow",
    "ClusterStatus",
    "DesiredWork",
    "EventRow",
    "EventType",
    "Health",
    "HealthListener",
    "IndexedWork",
    "MemberStatusRow",
    "ObjectRef",
    "PlacementChange",
    "PolicyId",
    "PolicyKind",
    "PolicyRow",
    "PolicySummary",
    "ResourceId",
    "ResourceRow",
    "ResourceStatus",
    "ResourceWork",
    "RetryPolicy",
    "Revisions",
    "RolloutCopy",
    "RolloutListing",
    "RolloutRow",
    "SealedRow",
    "Sealer",
    "Store",
    "StoreSettings",
    "StoreStats",
    "StoredEvent",
    "WorkId",
    "WorkState",
    "WorkStatus",
    "give_up_after",
    "head_revision",
    "retrying",
]
