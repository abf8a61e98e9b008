"""What goes into the store and what comes out: plain frozen dataclasses, no ORM instances.

The controller builds these from plain dicts (hub objects, placement decisions, member status)
and reads the aggregated rows of the dashboard views back as these. Ids are `NewType`s so a
work id cannot be passed where a resource id is expected.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NewType

from federation.store.enums import EventType, Health, PolicyKind, WorkState

ResourceId = NewType("ResourceId", int)
PolicyId = NewType("PolicyId", int)
WorkId = NewType("WorkId", int)

JSON = Mapping[str, Any]


def _empty() -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The identity of a hub object: ``namespace`` is ``''`` for a cluster-scoped one and
    ``api_group`` is ``''`` for the core group."""

    api_group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.api_group}" if self.api_group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


@dataclass(frozen=True, slots=True)
class ClusterRow:
    """A member cluster as the registry and the health prober see it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[JSON] = ()
    endpoint: str | None = None
    ready: bool = False
    ready_reason: str = ""
    last_probe_at: datetime | None = None
    kubernetes_version: str | None = None
    allocatable: JSON = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class ResourceRow:
    """A template on the hub, as its informer delivers it."""

    api_group: str
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    template: JSON
    last_writer: str | None = None
    """The field manager that last changed the template (`federation.informers.transform.last_writer`)."""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(api_group=self.api_group, kind=self.kind, namespace=self.namespace, name=self.name)


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """A propagation or override policy; `created_at` is the object's creationTimestamp."""

    kind: PolicyKind
    namespace: str
    name: str
    uid: str
    generation: int
    priority: int
    spec: JSON
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClusterDecision:
    """One candidate cluster of a placement: chosen or not, and why (a `placement_decisions`
    row). Not the placement engine's `Decision`, the whole decision, which the hub renders
    into one of these per candidate cluster."""

    cluster: str
    chosen: bool
    replicas: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DesiredWork:
    """What one chosen cluster should hold: the translated manifest and its content hash."""

    cluster: str
    desired: JSON
    desired_hash: str
    overwrite: bool = False
    """conflictResolution=Overwrite: an existing member object we did not create may be adopted."""
    error: str | None = None
    """The translation was refused (e.g. an override that would change the copy's identity): the
    work is stored ``failed`` with this message and is not applied; `desired` then holds only the
    template's identity and `desired_hash` must differ from every real manifest's hash."""


@dataclass(frozen=True, slots=True)
class ResourceWork:
    """A `DesiredWork` of a given resource, for bulk writes across resources."""

    resource_id: ResourceId
    cluster: str
    desired: JSON
    desired_hash: str
    overwrite: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PlacementChange:
    """What `save_placement` changed. All empty and `placement_changed` False: nothing written."""

    revision: int
    placement_changed: bool
    works_created: tuple[str, ...] = ()
    works_updated: tuple[str, ...] = ()
    works_unplaced: tuple[str, ...] = ()
    works_held: tuple[tuple[str, str], ...] = ()
    """(cluster, key id) of works not rewritten: their values are sealed with a key the store's
    sealer cannot open (see `federation.store.sealing`). Not a change."""

    @property
    def changed(self) -> bool:
        return self.placement_changed or bool(self.works_created or self.works_updated or self.works_unplaced)


@dataclass(frozen=True, slots=True)
class ClaimedWork:
    """A work leased to one worker until `claimed_until`; report back with `version`."""

    id: WorkId
    resource_id: ResourceId
    cluster: str
    state: WorkState
    desired: JSON
    desired_hash: str
    applied_hash: str | None
    member_resource_version: str | None
    attempts: int
    version: int
    claimed_until: datetime
    overwrite: bool = False
    baseline: str | None = None
    """Hash of the member object's managed fields right after our last apply (drift baseline)."""
    template: ObjectRef | None = None
    """The hub template the work copies, from its `resources` row: the applier refuses a
    `desired` manifest that names any other object (defence in depth behind the translator)."""
    sealing_error: str | None = None
    """Why the sealed values of `desired` do not open (a key missing from the key file, a wrong
    key, an altered row); `desired` then holds what is readable: the identity and the rest
    without the sensitive values. Such a work can be deleted or orphaned, not applied."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """One outcome for `Store.record_apply_results`: what an apply of the work at `version` did."""

    work_id: WorkId
    version: int
    state: WorkState
    applied_hash: str | None = None
    member_resource_version: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    baseline: str | None = None


@dataclass(frozen=True, slots=True)
class IndexedWork:
    """A work as a cluster's propagator keeps it in memory, to map member objects to works."""

    id: WorkId
    resource_id: ResourceId
    state: WorkState
    desired: JSON
    desired_hash: str
    applied_hash: str | None
    baseline: str | None
    version: int
    sealing_error: str | None = None
    """As `ClaimedWork.sealing_error`."""


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """What a policy governs, for its status conditions."""

    matched: int
    placed: int
    applied: int
    healthy: int
    conflicted: int
    failed: int
    pending: int


@dataclass(frozen=True, slots=True)
class MemberStatusRow:
    """The status of a propagated object in one member (status up)."""

    resource_id: ResourceId
    cluster: str
    status: JSON
    health: Health
    observed_generation: int | None = None
    member_resource_version: str | None = None
    #: Why the health is what it is, in words ("2/3 replicas available").
    health_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event. `key` makes a retried append idempotent; `time` defaults to the server's now."""

    type: EventType
    message: str
    cluster: str | None = None
    ref: ObjectRef | None = None
    details: JSON = field(default_factory=_empty)
    time: datetime | None = None
    key: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back (for the CLI, the API and dashboards)."""

    id: int
    time: datetime
    type: EventType
    message: str
    cluster: str | None
    ref: ObjectRef | None
    details: JSON


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a watch of `resource` ("group/version/resource") in `cluster` may resume."""

    cluster: str
    resource: str
    resource_version: str


@dataclass(frozen=True, slots=True)
class WorkStatus:
    """A row of the `fleet_work_status` view."""

    work_id: WorkId
    resource_id: ResourceId
    ref: ObjectRef
    api_version: str
    cluster: str
    state: WorkState
    desired_here: bool
    health: Health
    health_reason: str | None
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
    version: int
    created_at: datetime
    updated_at: datetime
    applied_at: datetime | None
    status_collected_at: datetime | None
    healthy_since: datetime | None = None
    """When the copy last turned Healthy (None while it is not)."""


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """A row of the `fleet_resource_status` view: one resource across the fleet."""

    resource_id: ResourceId
    ref: ObjectRef
    api_version: str
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


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """A row of the `fleet_cluster_status` view: one member cluster."""

    cluster: str
    ready: bool
    ready_reason: str
    last_probe_at: datetime | None
    kubernetes_version: str | None
    endpoint: str | None
    labels: Mapping[str, str]
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
