"""The dashboard API's vocabulary: pydantic models of every response and query.

The OpenAPI document is generated from these models, and every handler builds its response by
validating one of them, so the document and the answers cannot drift apart. Response fields are
named after the columns of the store's dashboard views (docs/store.md describes them column by
column), so a dashboard written against SQL and one written against the API read the same
words.

Identity in URLs: a hub object is ``{group}/{kind}/{namespace}/{name}`` where the core group
(``''`` in the store) is spelled ``core`` and the namespace of a cluster-scoped object (``''``)
is spelled ``_``. Neither can collide with a real value: an API group of a custom resource has a
dot and the built-in ones are not called "core"; a namespace is a DNS label, never ``_``.

Why one module of this length: it is the API's whole vocabulary, and the OpenAPI document is
generated from it in one pass; split, a field renamed in one file would not be seen beside the
query parameter or the view column that shares its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self
from urllib.parse import quote

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)

from federation.store import (
    ClusterRow,
    ClusterStatus,
    EventType,
    Health,
    ObjectRef,
    ResourceStatus,
    RolloutListing,
    StoredEvent,
    WorkState,
)

API_PREFIX = "/api/v1"

#: How the core group and the namespace of a cluster-scoped object are spelled in URLs and
#: query parameters (both are ``''`` in the store).
CORE_GROUP = "core"
NO_NAMESPACE = "_"

# Patterns of path segments and filters. Every string that reaches Postgres is held to one: a
# NUL byte is the one character Postgres text cannot store (it would be a 500, not a 400).
GROUP_PATTERN = r"^(core|_|[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$"
KIND_PATTERN = r"^[A-Za-z][A-Za-z0-9]*$"
NAMESPACE_PATTERN = r"^(_|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"
#: Kubernetes' rule for a name that is a path segment: not "." or "..", no "/" or "%".
NAME_PATTERN = r"^(?!\.\.?$)[^/%\x00-\x1f\x7f]+$"
#: A filter value: anything printable; an empty value means the filter is not given.
FILTER_PATTERN = r"^[^\x00-\x1f\x7f]*$"
DURATION_PATTERN = r"^[0-9]{1,6}[smhd]$"

MAX_NAME = 253


def group_segment(api_group: str) -> str:
    return api_group or CORE_GROUP


def namespace_segment(namespace: str) -> str:
    return namespace or NO_NAMESPACE


def group_of_segment(segment: str) -> str:
    return "" if segment in (CORE_GROUP, NO_NAMESPACE) else segment


def namespace_of_segment(segment: str) -> str:
    return "" if segment == NO_NAMESPACE else segment


def resource_path(ref: ObjectRef) -> str:
    """The API path of a hub object (see the module docstring for the spelling)."""
    parts = (group_segment(ref.api_group), ref.kind, namespace_segment(ref.namespace), ref.name)
    return API_PREFIX + "/resources/" + "/".join(quote(p, safe="") for p in parts)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    @classmethod
    def from_row(cls, row: object, **given: Any) -> Self:
        """The model from a store row: every field the row has under the same name (the models
        are named after the view columns), plus `given` for the rest. A field the row lacks and
        nobody gives fails validation, so a renamed column cannot go unnoticed."""
        taken = {n: getattr(row, n) for n in cls.model_fields.keys() - given.keys() if hasattr(row, n)}
        return cls(**taken, **given)


# -- errors -------------------------------------------------------------------------------------


class Error(Model):
    """Every 4xx/5xx answer of the API: what went wrong, and which parameter (if one) caused it."""

    error: str = Field(description="What went wrong, in one sentence.")
    field: str | None = Field(
        default=None, description="The query or path parameter (or header) at fault, if one is."
    )


# -- clusters -----------------------------------------------------------------------------------


class Cluster(Model):
    """One member cluster: a `fleet_cluster_status` row plus the registry's taints and allocatable."""

    cluster: str
    ready: bool
    ready_reason: str
    last_probe_at: datetime | None
    kubernetes_version: str | None
    endpoint: str | None
    labels: dict[str, str]
    taints: list[dict[str, Any]] = Field(description="The cluster's taints (key, value, effect).")
    allocatable: dict[str, Any] = Field(description="Allocatable capacity the cluster reported.")
    lease_holder: str | None
    lease_expires_at: datetime | None
    works_total: int
    works_pending: int
    works_applied: int
    works_conflict: int
    works_failed: int
    works_deleting: int
    works_orphaning: int
    works_orphaned: int
    works_due: int
    drift_events_last_hour: int
    updated_at: datetime


class ClusterList(Model):
    items: list[Cluster]


def cluster_model(status: ClusterStatus, registry: ClusterRow | None) -> Cluster:
    return Cluster.from_row(
        status,
        labels=dict(status.labels or {}),
        taints=[dict(t) for t in (registry.taints if registry else ())],
        allocatable=dict(registry.allocatable) if registry else {},
    )


# -- resources ----------------------------------------------------------------------------------


class Resource(Model):
    """One hub template across the fleet: a `fleet_resource_status` row."""

    resource_id: int
    api_group: str = Field(description="The API group; '' for the core group.")
    api_version: str
    kind: str
    namespace: str = Field(description="'' for a cluster-scoped object.")
    name: str
    path: str = Field(description="This resource's URL in the API; append /clusters for its works.")
    uid: str
    generation: int
    deleted_at: datetime | None
    placement_revision: int | None
    unschedulable: str | None
    clusters_desired: int
    clusters_applied: int
    clusters_healthy: int
    clusters_conflicted: int
    clusters_failed: int
    clusters_removing: int
    replicas_desired: int | None
    replicas_ready: int | None
    replicas_available: int | None
    replicas_updated: int | None
    worst_health: Health | None
    last_change: datetime


class ResourceList(Model):
    items: list[Resource]
    total: int = Field(description="Resources matching the filters (all pages).")
    limit: int
    offset: int


def resource_model(row: ResourceStatus) -> Resource:
    return Resource.from_row(
        row,
        api_group=row.ref.api_group,
        kind=row.ref.kind,
        namespace=row.ref.namespace,
        name=row.ref.name,
        path=resource_path(row.ref),
    )


# -- per-cluster works ----------------------------------------------------------------------------


class Phase(StrEnum):
    """One word for a (resource, cluster) cell: the work's state and the member's health combined.

    What a person wants to see first: a conflict or failure (nothing of ours is running as
    intended), then whether the applied copy is healthy. ``absent`` is a cluster that holds no
    work of the resource (not chosen).
    """

    HEALTHY = "healthy"
    PROGRESSING = "progressing"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"
    PENDING = "pending"
    CONFLICT = "conflict"
    FAILED = "failed"
    DELETING = "deleting"
    ORPHANING = "orphaning"
    ORPHANED = "orphaned"
    ABSENT = "absent"


class Work(Model):
    """One resource in one member cluster: a `fleet_work_status` row, plus its phase and reason."""

    cluster: str
    state: WorkState
    phase: Phase = Field(description="state and health in one word (what the status page colours).")
    reason: str = Field(description="Why the cell looks as it does: the last error, or the health detail.")
    desired_here: bool
    health: Health
    health_reason: str | None = Field(
        description='Why the member copy has that health, e.g. "2/3 replicas available" (null before '
        "any status is collected)."
    )
    in_sync: bool
    replicas_desired: int | None
    replicas_ready: int | None
    replicas_available: int | None
    replicas_updated: int | None
    observed_generation: int | None
    desired_hash: str
    applied_hash: str | None
    member_resource_version: str | None
    last_error: str | None
    attempts: int
    next_attempt_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    created_at: datetime
    updated_at: datetime
    applied_at: datetime | None
    status_collected_at: datetime | None
    healthy_since: datetime | None = Field(
        description="When the member copy last turned Healthy (null while it is not): it stays put "
        "while other fields of the status change, so now minus it is how long the copy has been Healthy.",
    )


class WorkList(Model):
    resource: Resource
    items: list[Work]


# -- events -------------------------------------------------------------------------------------------


class Event(Model):
    """One stored event (newest first in lists)."""

    id: int
    time: datetime
    type: EventType
    message: str
    cluster: str | None
    api_group: str | None = Field(description="The object's group ('' core); null for a cluster event.")
    kind: str | None
    namespace: str | None
    name: str | None
    details: dict[str, Any]


class EventList(Model):
    items: list[Event]


def event_model(row: StoredEvent) -> Event:
    ref = row.ref
    return Event(
        id=row.id,
        time=row.time,
        type=row.type,
        message=row.message,
        cluster=row.cluster,
        api_group=ref.api_group if ref else None,
        kind=ref.kind if ref else None,
        namespace=ref.namespace if ref else None,
        name=ref.name if ref else None,
        details=dict(row.details),
    )


def rollout_model(row: RolloutListing) -> Rollout:
    ro = row.rollout
    policy = None
    if row.policy_kind and row.policy_name:
        where = f"{row.policy_namespace}/" if row.policy_namespace else ""
        policy = f"{row.policy_kind}/{where}{row.policy_name}"
    clusters = {
        c: RolloutCluster(
            stage=str(v.get("stage", "")),
            revision=str(v.get("revision", "")),
            health=str(v.get("health", "")),
        )
        for c, v in (ro.clusters or {}).items()
        if isinstance(v, Mapping)
    }
    return Rollout(
        api_group=row.ref.api_group,
        kind=row.ref.kind,
        namespace=row.ref.namespace,
        name=row.ref.name,
        policy=policy,
        phase=ro.phase,
        stage=ro.stage_name or ro.failed_stage,
        reason=ro.reason,
        released=list(ro.released),
        approved=list(ro.approved),
        clusters=clusters,
        started_at=ro.started_at,
        updated_at=ro.updated_at,
    )


# -- the matrix -----------------------------------------------------------------------------------------


class MatrixCluster(Model):
    """A column of the matrix."""

    name: str
    ready: bool
    ready_reason: str
    registered: bool = Field(
        description="False for a cluster that is no longer registered but still holds works being removed."
    )
    owner: str | None = Field(
        default=None, description="The controller replica holding the cluster's lease (runs its propagator)."
    )


class Cell(Model):
    """A (resource, cluster) cell of the matrix."""

    state: WorkState
    health: Health
    phase: Phase
    reason: str
    replicas_desired: int | None
    replicas_ready: int | None


class MatrixRow(Model):
    """A row of the matrix: one resource and its cell per cluster (missing: not placed there)."""

    resource_id: int
    api_group: str
    api_version: str
    kind: str
    namespace: str
    name: str
    path: str
    worst_health: Health | None
    unschedulable: str | None
    deleted_at: datetime | None
    last_change: datetime
    cells: dict[str, Cell] = Field(description="By cluster name; a cluster with no work here is absent.")


class Matrix(Model):
    clusters: list[MatrixCluster]
    resources: list[MatrixRow] = Field(description="Problems first, then the most recently changed.")
    total: int = Field(description="Resources matching the filters; at most `limit` are in `resources`.")
    limit: int
    generated_at: datetime


# -- query parameters -----------------------------------------------------------------------------


FilterText = Annotated[str, StringConstraints(max_length=MAX_NAME, pattern=FILTER_PATTERN)]

_DIGITS = re.compile(r"^-?[0-9]{1,12}$")


def _strict_int(value: Any) -> Any:
    """Only plain decimal digits in a query string: pydantic alone would take "2.0", "+2" or
    "1_000", and an API that accepts what its document calls invalid is not the API documented."""
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise ValueError(f"expected an integer, not {value!r}")
        return int(value)
    return value


QueryInt = Annotated[int, BeforeValidator(_strict_int)]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(DURATION_PATTERN)


def parse_since(value: Any, info: ValidationInfo) -> Any:
    """An RFC 3339 time, or a duration back from now (``15m``); always an aware UTC datetime.

    "now" comes from the validation context (``{"now": datetime}``) so tests can fix it. A time
    outside what a datetime can hold is clamped rather than refused: "since the year 1" means
    "everything", and the document allows any date-time.
    """
    if not isinstance(value, str):
        return value
    now = (info.context or {}).get("now") or datetime.now(UTC)
    if _DURATION.match(value):
        seconds = int(value[:-1]) * _UNITS[value[-1]]
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "expected an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (90s, 15m, 2h, 7d), "
            f"not {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"a time needs a UTC offset or Z: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if parsed.year < 2 else datetime.max.replace(tzinfo=UTC)


Since = Annotated[
    datetime,
    BeforeValidator(parse_since),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": DURATION_PATTERN},
            ]
        }
    ),
]


class ResourceFilters(Model):
    """Filters of GET /resources and GET /matrix. An empty value is the same as no value."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    group: FilterText | None = Field(default=None, description="API group; `core` for the core group.")
    kind: FilterText | None = Field(default=None, description="Kind, e.g. Deployment (case-sensitive).")
    namespace: FilterText | None = Field(default=None, description="Namespace; `_` for cluster-scoped.")
    health: list[Health] | None = Field(
        default=None,
        description="Worst health over the resource's clusters: one value or several, comma-separated.",
    )


class ResourceQuery(ResourceFilters):
    limit: QueryInt = Field(default=100, ge=1, le=1000, description="Page size.")
    offset: QueryInt = Field(default=0, ge=0, le=1_000_000, description="Rows to skip.")


class MatrixQuery(ResourceFilters):
    limit: QueryInt = Field(default=50, ge=1, le=500, description="At most this many resources (rows).")


class EventQuery(Model):
    """Filters of GET /events; every one optional."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cluster: FilterText | None = Field(default=None, description="Member cluster name.")
    namespace: FilterText | None = Field(default=None, description="Namespace; `_` for cluster-scoped.")
    kind: FilterText | None = Field(default=None, description="Kind of the object the event is about.")
    name: FilterText | None = Field(default=None, description="Name of the object the event is about.")
    type: EventType | None = Field(default=None, description="Event type.")
    since: Since | None = Field(
        default=None,
        description="Only events at or after this time: an RFC 3339 time, or a duration ago "
        "(`90s`, `15m`, `2h`, `7d`).",
    )
    limit: QueryInt = Field(default=100, ge=1, le=1000, description="At most this many events, newest first.")


class RolloutQuery(Model):
    """Filters of GET /rollouts; every one optional."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    namespace: FilterText | None = Field(default=None, description="Namespace of the templates.")
    complete: bool = Field(
        default=False,
        description="Also the templates with nothing in progress (their last rollout complete).",
    )
    limit: QueryInt = Field(default=500, ge=1, le=5000, description="At most this many rollouts.")


class RolloutCluster(Model):
    stage: str = Field(description="The stage a change reaches this cluster in.")
    revision: str = Field(description="`new` (the revision being rolled out) or `previous`.")
    health: str = Field(
        description="Its copy of the new revision: `-` (none yet), `updating`, `Healthy`, or why it fails."
    )


class Rollout(Model):
    """A template's staged rollout (`spec.rollout` of its policy)."""

    api_group: str
    kind: str
    namespace: str
    name: str
    policy: str | None = Field(description="`Kind/namespace/name` of the governing policy.")
    phase: str = Field(description="Progressing, WaitingApproval, Complete, Halted or RolledBack.")
    stage: str | None = Field(description="The stage in progress (or the one that failed).")
    reason: str = Field(description="Why it is where it is, in words.")
    released: list[str] = Field(description="The clusters given the new revision.")
    approved: list[str] = Field(description="Stages someone approved (federation rollout approve).")
    clusters: dict[str, RolloutCluster]
    started_at: datetime | None
    updated_at: datetime | None


class RolloutList(Model):
    items: list[Rollout]


#: Compiled once: handlers check path segments with the same patterns the document declares.
PATH_PATTERNS: dict[str, re.Pattern[str]] = {
    "group": re.compile(GROUP_PATTERN),
    "kind": re.compile(KIND_PATTERN),
    "namespace": re.compile(NAMESPACE_PATTERN),
    "name": re.compile(NAME_PATTERN),
}
