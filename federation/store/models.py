"""The schema of the state store, as SQLAlchemy 2 declarative models.

These classes are the source of truth for the tables: the alembic migrations in the top-level
``migrations/`` are written to match them, and a test runs alembic's autogenerate comparison
against a migrated database and requires it to find no difference. The dashboard views and the
one SQL helper function are not tables; they live in the migrations only (alembic does not
compare them) and are documented in ``docs/store.md``.

The repository (`federation.store.repo_*`) talks to these tables with asyncpg directly: the hot
paths are single ``unnest``-based statements that an ORM unit of work cannot express, so no
session or mapped instance is ever created at run time.

Conventions: every timestamp is ``timestamptz``; identity columns that Kubernetes leaves empty
(the core API group, the namespace of a cluster-scoped object) hold ``''`` rather than NULL so
that they can take part in unique constraints; constraint names come from the naming convention
below so migrations and models agree on them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from federation.store.enums import EventType, Health, PolicyKind, WorkState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NOW = text("now()")
EMPTY_OBJECT = text("'{}'::jsonb")
EMPTY_ARRAY = text("'[]'::jsonb")
EMPTY_TEXT = text("''")


def _values(enum: type[Any]) -> list[str]:
    return [member.value for member in enum]


def _in_list(column: str, enum: type[Any]) -> str:
    values = ", ".join(f"'{v}'" for v in _values(enum))
    return f"{column} IN ({values})"


WORK_STATE = Enum(WorkState, name="work_state", values_callable=_values)
HEALTH = Enum(Health, name="health", values_callable=_values)


def _timestamp(*, nullable: bool = False, now: bool = True) -> Mapped[Any]:
    return mapped_column(DateTime(timezone=True), nullable=nullable, server_default=NOW if now else None)


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Cluster(Base):
    """A member cluster as the registry and the health prober last saw it."""

    __tablename__ = "clusters"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)
    taints: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_ARRAY)
    endpoint: Mapped[str | None] = mapped_column(Text)
    ready: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    ready_reason: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)
    last_probe_at: Mapped[datetime | None] = _timestamp(nullable=True, now=False)
    kubernetes_version: Mapped[str | None] = mapped_column(Text)
    allocatable: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)
    updated_at: Mapped[datetime] = _timestamp()


class Resource(Base):
    """A template on the hub: any Kubernetes object the controller propagates."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("api_group", "kind", "namespace", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    api_group: Mapped[str] = mapped_column(Text, nullable=False)
    api_version: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    namespace: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    uid: Mapped[str] = mapped_column(Text, nullable=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    resource_version: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)
    template: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    deleted_at: Mapped[datetime | None] = _timestamp(nullable=True, now=False)
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
    # The field manager that last changed the template (migration 0010).
    last_writer: Mapped[str | None] = mapped_column(Text)


class Policy(Base):
    """A propagation or override policy on the hub (its spec is kept whole, as JSON)."""

    __tablename__ = "policies"
    __table_args__ = (
        UniqueConstraint("kind", "namespace", "name"),
        CheckConstraint(_in_list("kind", PolicyKind), name="kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    namespace: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    uid: Mapped[str] = mapped_column(Text, nullable=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)
    # The object's creationTimestamp: ties between policies of equal priority go to the older.
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
    deleted_at: Mapped[datetime | None] = _timestamp(nullable=True, now=False)


class Placement(Base):
    """The current placement decision of one resource; `revision` counts real changes."""

    __tablename__ = "placements"

    resource_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("policies.id", ondelete="SET NULL"))
    revision: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    # Why no cluster was chosen (NULL when at least one was).
    unschedulable: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = _timestamp()


class PlacementDecision(Base):
    """One candidate cluster of a placement: chosen or not, and why (every exclusion has a reason).

    `cluster` is deliberately not a foreign key to `clusters`: a decision (and a work) must outlive
    the removal of its cluster from the registry until its cleanup is done.
    """

    __tablename__ = "placement_decisions"
    __table_args__ = (PrimaryKeyConstraint("resource_id", "cluster"),)

    resource_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("placements.resource_id", ondelete="CASCADE"), nullable=False
    )
    cluster: Mapped[str] = mapped_column(Text, nullable=False)
    chosen: Mapped[bool] = mapped_column(Boolean, nullable=False)
    replicas: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)


class Work(Base):
    """One resource in one member cluster: what should be there, and how far the apply got.

    Claimed with a lease (`claimed_by`, `claimed_until`) because the apply itself happens outside
    any transaction; `version` is bumped by every change (including a claim) so a stale writer's
    result is refused. `next_attempt_at` is NULL when there is nothing to do until the input
    changes, which keeps the partial index of the claim query as small as the backlog.
    """

    __tablename__ = "works"
    __table_args__ = (
        UniqueConstraint("resource_id", "cluster"),
        CheckConstraint("(claimed_by IS NULL) = (claimed_until IS NULL)", name="claim"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # The claim query: due works of one cluster, oldest first.
        Index(
            "ix_works_due", "cluster", "next_attempt_at", postgresql_where=text("next_attempt_at IS NOT NULL")
        ),
        # Per-cluster counts by state (fleet_cluster_status).
        Index("ix_works_cluster_state", "cluster", "state"),
        # release_claims(holder) on shutdown.
        Index("ix_works_claimed_by", "claimed_by", postgresql_where=text("claimed_by IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    resource_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("resources.id", ondelete="CASCADE"), nullable=False
    )
    cluster: Mapped[str] = mapped_column(Text, nullable=False)
    desired: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    desired_hash: Mapped[str] = mapped_column(Text, nullable=False)
    applied_hash: Mapped[str | None] = mapped_column(Text)
    member_resource_version: Mapped[str | None] = mapped_column(Text)
    state: Mapped[WorkState] = mapped_column(
        WORK_STATE, nullable=False, server_default=WorkState.PENDING.value
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = _timestamp(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None] = _timestamp(nullable=True, now=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
    applied_at: Mapped[datetime | None] = _timestamp(nullable=True, now=False)
    # conflictResolution=Overwrite of the governing policy: may adopt a pre-existing object.
    overwrite: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # Drift baseline: hash of the member object's managed fields right after our last apply.
    baseline: Mapped[str | None] = mapped_column(Text)


class MemberStatus(Base):
    """The status of a propagated object as a member reports it (status up)."""

    __tablename__ = "member_status"
    # No foreign key to works, on purpose (see federation/store/repo/status.py): the rows of a
    # work are deleted with it by the store's own statements.
    __table_args__ = (PrimaryKeyConstraint("resource_id", "cluster"),)

    resource_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cluster: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)
    health: Mapped[Health] = mapped_column(HEALTH, nullable=False, server_default=Health.UNKNOWN.value)
    observed_generation: Mapped[int | None] = mapped_column(BigInteger)
    member_resource_version: Mapped[str | None] = mapped_column(Text)
    collected_at: Mapped[datetime] = _timestamp()
    health_reason: Mapped[str | None] = mapped_column(Text)
    #: When health last turned Healthy (NULL while it is not): kept while it stays Healthy.
    healthy_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """Append-only history: drift corrected, conflicts, failovers, failed applies, deletions.

    `event_key` is generated by the writer, so a write retried after a lost acknowledgement
    inserts nothing twice. Old events are removed by `prune_events` (retention setting).
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("event_key"),
        CheckConstraint(_in_list("type", EventType), name="type"),
        Index("ix_events_time", "time"),
        Index("ix_events_cluster_time", "cluster", "time"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_key: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    time: Mapped[datetime] = _timestamp()
    type: Mapped[str] = mapped_column(Text, nullable=False)
    cluster: Mapped[str | None] = mapped_column(Text)
    api_group: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text)
    namespace: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)


class WatchCheckpoint(Base):
    """The last resourceVersion seen by a watch, so a restarted controller resumes from it."""

    __tablename__ = "watch_checkpoints"
    __table_args__ = (PrimaryKeyConstraint("cluster", "resource"),)

    cluster: Mapped[str] = mapped_column(Text, nullable=False)
    # "group/version/resource", e.g. "apps/v1/deployments" ("v1/configmaps" for the core group).
    resource: Mapped[str] = mapped_column(Text, nullable=False)
    resource_version: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = _timestamp()


class ClusterLease(Base):
    """Which controller replica owns a member cluster (sharding members across replicas)."""

    __tablename__ = "cluster_leases"

    cluster: Mapped[str] = mapped_column(Text, primary_key=True)
    holder: Mapped[str] = mapped_column(Text, nullable=False)
    acquired_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime] = _timestamp(now=False)


class ControllerReplica(Base):
    """A live controller replica (migration 0006): each heartbeats its own row, and every replica
    derives the owner of each member cluster from the live ones (`federation.propagate.shard`)."""

    __tablename__ = "controller_replicas"

    replica: Mapped[str] = mapped_column(Text, primary_key=True)
    started_at: Mapped[datetime] = _timestamp()
    heartbeat_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime] = _timestamp(now=False)


class Rollout(Base):
    """A template's staged rollout (migration 0008): the revision the clusters not yet reached
    keep, the one being rolled out, and how far it got (`federation.hub.rollouts`)."""

    __tablename__ = "rollouts"
    __table_args__ = (
        CheckConstraint(
            "phase IN ('Progressing', 'WaitingApproval', 'Complete', 'Halted', 'RolledBack')", name="phase"
        ),
        Index("ix_rollouts_policy_id", "policy_id"),
    )

    resource_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("policies.id", ondelete="SET NULL"))
    stable_fp: Mapped[str] = mapped_column(Text, nullable=False)
    #: The revision every cluster not reached keeps (sealed as `resources.template` is).
    stable_template: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    target_fp: Mapped[str | None] = mapped_column(Text)
    phase: Mapped[str] = mapped_column(Text, nullable=False)
    stage: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    stage_name: Mapped[str | None] = mapped_column(Text)
    stage_started_at: Mapped[datetime] = _timestamp()
    released: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    clusters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY_TEXT)
    failed_stage: Mapped[str | None] = mapped_column(Text)
    suspended_at: Mapped[datetime | None] = _timestamp(nullable=True, now=False)
    #: Written by people (`federation rollout approve|undo`), only read by the controller.
    approved: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    undo_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    started_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class XID8(UserDefinedType[int]):
    """Postgres' 64-bit transaction id (``pg_current_xact_id()``)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "xid8"


# Reflected as what it is (alembic's comparison would otherwise warn of an unknown type).
ischema_names["xid8"] = XID8


class Change(Base):
    """The change log (migration 0009): a row per state change, written by triggers in the
    changing transaction; ``position`` is given by the sequencer in commit order (see the
    migration for why ``id`` cannot be followed)."""

    __tablename__ = "changes"
    __table_args__ = (
        UniqueConstraint("position"),
        Index("ix_changes_unsequenced", "id", postgresql_where=text("position IS NULL")),
        Index("ix_changes_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    position: Mapped[int | None] = mapped_column(BigInteger)
    time: Mapped[datetime] = _timestamp()
    type: Mapped[str] = mapped_column(Text, nullable=False)
    cluster: Mapped[str | None] = mapped_column(Text)
    resource_id: Mapped[int | None] = mapped_column(BigInteger)
    api_group: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text)
    namespace: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_OBJECT)
    txid: Mapped[int] = mapped_column(XID8, nullable=False, server_default=text("pg_current_xact_id()"))
    # Context as it was when the change was written (migration 0010).
    actor: Mapped[str | None] = mapped_column(Text)
    policy: Mapped[str | None] = mapped_column(Text)
    placement_revision: Mapped[int | None] = mapped_column(Integer)


class SinkPosition(Base):
    """How far an event sink has delivered the change log (migration 0009)."""

    __tablename__ = "sink_positions"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = _timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)


#: The dashboard views the migrations create; alembic's comparison leaves them alone.
VIEW_NAMES = frozenset({"fleet_resource_status", "fleet_cluster_status", "fleet_work_status"})


class ControllerLeader(Base):
    """Which controller replica leads each hub (the advisory lock is the truth; this is for people)."""

    __tablename__ = "controller_leader"

    hub: Mapped[str] = mapped_column(Text, primary_key=True)
    holder: Mapped[str] = mapped_column(Text, nullable=False)
    since: Mapped[datetime] = _timestamp()
