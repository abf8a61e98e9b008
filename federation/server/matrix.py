"""The fleet matrix and the per-cluster rows: pure functions from store rows to API models.

A cell's *phase* folds the work's state and the member's health into the one word the status
page colours by, and its *reason* is what a person reads on hover: the last error when there is
one (a conflict, a rejected manifest), else the health detail. Kept apart from the HTTP
handlers so the rules are unit-tested without a server or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from federation.server.models import (
    Cell,
    Matrix,
    MatrixCluster,
    MatrixRow,
    Phase,
    Work,
    resource_path,
)
from federation.store import ClusterStatus, Health, ResourceStatus, WorkState, WorkStatus

_STATE_PHASE = {
    WorkState.PENDING: Phase.PENDING,
    WorkState.CONFLICT: Phase.CONFLICT,
    WorkState.FAILED: Phase.FAILED,
    WorkState.DELETING: Phase.DELETING,
    WorkState.ORPHANING: Phase.ORPHANING,
    WorkState.ORPHANED: Phase.ORPHANED,
}
_HEALTH_PHASE = {
    Health.HEALTHY: Phase.HEALTHY,
    Health.PROGRESSING: Phase.PROGRESSING,
    Health.DEGRADED: Phase.DEGRADED,
    Health.UNKNOWN: Phase.UNKNOWN,
}


def phase_of(work: WorkStatus) -> Phase:
    """Applied works are as good as the member says; every other state speaks for itself."""
    if work.state == WorkState.APPLIED:
        return _HEALTH_PHASE[work.health]
    return _STATE_PHASE[work.state]


def _replicas(work: WorkStatus) -> str:
    if work.replicas_desired is None and work.replicas_ready is None:
        return ""
    desired = "?" if work.replicas_desired is None else str(work.replicas_desired)
    return f"{work.replicas_ready or 0}/{desired} replicas ready"


def reason_of(work: WorkStatus) -> str:
    """One line saying why the cell looks as it does (the status page's hover text)."""
    replicas = _replicas(work)
    match work.state:
        case WorkState.CONFLICT | WorkState.FAILED:
            prefix = "conflict" if work.state == WorkState.CONFLICT else "apply failed"
            detail = work.last_error or "no message recorded"
            retry = "" if work.next_attempt_at is None or work.state == WorkState.CONFLICT else ", will retry"
            return f"{prefix}: {detail}{retry}"
        case WorkState.PENDING:
            base = "waiting to be applied"
            if work.attempts:
                base += f" (attempt {work.attempts + 1}" + (
                    f"; last error: {work.last_error})" if work.last_error else ")"
                )
            return base
        case WorkState.DELETING:
            return "no longer placed here: deleting the member copy"
        case WorkState.ORPHANING:
            return "no longer placed here: releasing the member copy (deletionPolicy Orphan)"
        case WorkState.ORPHANED:
            return "released: the member copy stays, no longer managed"
    # applied
    if work.health == Health.UNKNOWN and work.status_collected_at is None:
        return "applied; no status collected from the member yet"
    parts = [f"applied, {work.health.value}"]
    # The member's own words (its health interpreter's) say more than a replica count.
    if work.health_reason:
        parts.append(work.health_reason)
    elif replicas:
        parts.append(replicas)
    if not work.in_sync:
        parts.append("a newer version is waiting to be applied")
    return "; ".join(parts)


def work_model(work: WorkStatus) -> Work:
    return Work.from_row(work, phase=phase_of(work), reason=reason_of(work))


def cell_of(work: WorkStatus) -> Cell:
    return Cell.from_row(work, phase=phase_of(work), reason=reason_of(work))


def build_matrix(
    *,
    resources: Sequence[ResourceStatus],
    works: Iterable[WorkStatus],
    clusters: Sequence[ClusterStatus],
    total: int,
    limit: int,
    now: datetime,
) -> Matrix:
    """Rows in the order given (the store's "attention" order), one column per registered cluster
    (by name) and, after them, any unregistered cluster that still holds a shown resource's works
    (being cleaned up after it left the registry): those must not vanish from the picture."""
    by_resource: dict[int, dict[str, Cell]] = {r.resource_id: {} for r in resources}
    extra: set[str] = set()
    registered = {c.cluster for c in clusters}
    for work in works:
        cells = by_resource.get(work.resource_id)
        if cells is None:
            continue
        cells[work.cluster] = cell_of(work)
        if work.cluster not in registered:
            extra.add(work.cluster)
    columns = [
        MatrixCluster(
            name=c.cluster, ready=c.ready, ready_reason=c.ready_reason, registered=True, owner=c.lease_holder
        )
        for c in sorted(clusters, key=lambda c: c.cluster)
    ] + [
        MatrixCluster(name=name, ready=False, ready_reason="not registered", registered=False)
        for name in sorted(extra)
    ]
    rows = [
        MatrixRow(
            resource_id=r.resource_id,
            api_group=r.ref.api_group,
            api_version=r.api_version,
            kind=r.ref.kind,
            namespace=r.ref.namespace,
            name=r.ref.name,
            path=resource_path(r.ref),
            worst_health=r.worst_health,
            unschedulable=r.unschedulable,
            deleted_at=r.deleted_at,
            last_change=r.last_change,
            cells=by_resource[r.resource_id],
        )
        for r in resources
    ]
    return Matrix(clusters=columns, resources=rows, total=total, limit=limit, generated_at=now)
