"""Per-kind health of one member object: Healthy, Progressing, Degraded or Unknown, with a reason.

Pure functions over the object as the member's apiserver returns it. The rules follow what
each kind's controller promises (a Deployment is healthy when its controller has observed the
current generation and every replica is updated and available; a Job when it completed), and
a generic rule for anything else (`status.conditions` Ready/Available, `observedGeneration`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Obj = Mapping[str, Any]


class Health(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"


#: Worst first: what a resource's aggregated health is when clusters disagree.
SEVERITY = {Health.DEGRADED: 3, Health.UNKNOWN: 2, Health.PROGRESSING: 1, Health.HEALTHY: 0}


def worst(healths: list[Health]) -> Health:
    return max(healths, key=SEVERITY.__getitem__) if healths else Health.UNKNOWN


@dataclass(frozen=True)
class Assessment:
    health: Health
    reason: str
    observed_generation: int | None = None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _generation_lag(obj: Obj) -> Assessment | None:
    """Progressing while the object's controller has not observed its latest spec."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and observed is not None and _int(observed) < _int(generation):
        return Assessment(
            Health.PROGRESSING, f"generation {generation} not yet observed (at {observed})", _int(observed)
        )
    return None


def _conditions(obj: Obj) -> dict[str, Mapping[str, Any]]:
    return {
        str(c.get("type")): c
        for c in (obj.get("status") or {}).get("conditions") or []
        if isinstance(c, Mapping)
    }


def _observed(obj: Obj) -> int | None:
    value = (obj.get("status") or {}).get("observedGeneration")
    return _int(value) if value is not None else None


def deployment(obj: Obj) -> Assessment:
    if lag := _generation_lag(obj):
        return lag
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = _int(spec.get("replicas", 1))
    conds = _conditions(obj)
    progressing = conds.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Assessment(
            Health.DEGRADED,
            f"rollout stuck: {progressing.get('message', 'deadline exceeded')}",
            _observed(obj),
        )
    if not status and want > 0:
        return Assessment(Health.PROGRESSING, "no status reported yet", None)
    updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    if updated < want:
        return Assessment(Health.PROGRESSING, f"{updated}/{want} replicas updated", _observed(obj))
    if total > updated:
        return Assessment(
            Health.PROGRESSING, f"{total - updated} old replicas pending termination", _observed(obj)
        )
    if available < want:
        avail = conds.get("Available") or {}
        if avail.get("status") == "False" and want > 0 and available == 0:
            return Assessment(
                Health.DEGRADED,
                f"0/{want} replicas available: {avail.get('message', '')}".rstrip(": "),
                _observed(obj),
            )
        return Assessment(Health.PROGRESSING, f"{available}/{want} replicas available", _observed(obj))
    return Assessment(Health.HEALTHY, f"{available}/{want} replicas available", _observed(obj))


def statefulset(obj: Obj) -> Assessment:
    if lag := _generation_lag(obj):
        return lag
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = _int(spec.get("replicas", 1))
    ready, updated = _int(status.get("readyReplicas")), _int(status.get("updatedReplicas"))
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if (
        strategy == "RollingUpdate"
        and status.get("updateRevision")
        and status.get("currentRevision") != status.get("updateRevision")
    ):
        return Assessment(
            Health.PROGRESSING, f"{updated}/{want} replicas on the new revision", _observed(obj)
        )
    if ready < want:
        return Assessment(Health.PROGRESSING, f"{ready}/{want} replicas ready", _observed(obj))
    return Assessment(Health.HEALTHY, f"{ready}/{want} replicas ready", _observed(obj))


def daemonset(obj: Obj) -> Assessment:
    if lag := _generation_lag(obj):
        return lag
    status = obj.get("status") or {}
    want = _int(status.get("desiredNumberScheduled"))
    ready, updated = _int(status.get("numberReady")), _int(status.get("updatedNumberScheduled"))
    if updated < want:
        return Assessment(Health.PROGRESSING, f"{updated}/{want} pods updated", _observed(obj))
    if ready < want:
        return Assessment(Health.PROGRESSING, f"{ready}/{want} pods ready", _observed(obj))
    return Assessment(Health.HEALTHY, f"{ready}/{want} pods ready", _observed(obj))


def replicaset(obj: Obj) -> Assessment:
    if lag := _generation_lag(obj):
        return lag
    want = _int((obj.get("spec") or {}).get("replicas", 1))
    ready = _int((obj.get("status") or {}).get("readyReplicas"))
    if ready < want:
        return Assessment(Health.PROGRESSING, f"{ready}/{want} replicas ready", _observed(obj))
    return Assessment(Health.HEALTHY, f"{ready}/{want} replicas ready", _observed(obj))


def job(obj: Obj) -> Assessment:
    conds = _conditions(obj)
    if (conds.get("Failed") or {}).get("status") == "True":
        return Assessment(Health.DEGRADED, f"failed: {conds['Failed'].get('reason', '')}".rstrip(": "))
    if (conds.get("Complete") or {}).get("status") == "True":
        return Assessment(Health.HEALTHY, "completed")
    status = obj.get("status") or {}
    return Assessment(
        Health.PROGRESSING, f"{_int(status.get('active'))} active, {_int(status.get('succeeded'))} succeeded"
    )


def service(obj: Obj) -> Assessment:
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return Assessment(Health.HEALTHY, "service exists")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        return Assessment(Health.HEALTHY, f"load balancer ready ({len(ingress)} ingress points)")
    return Assessment(Health.PROGRESSING, "waiting for a load balancer address")


def pvc(obj: Obj) -> Assessment:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return Assessment(Health.HEALTHY, "bound")
    if phase == "Lost":
        return Assessment(Health.DEGRADED, "claim lost its volume")
    return Assessment(Health.PROGRESSING, f"phase {phase or 'Pending'}")


def generic(obj: Obj) -> Assessment:
    """Any other kind: no status means nothing to wait for; otherwise Ready/Available conditions."""
    status = obj.get("status")
    if not status:
        return Assessment(Health.HEALTHY, "applied (the kind reports no status)")
    if lag := _generation_lag(obj):
        return lag
    conds = _conditions(obj)
    for kind in ("Ready", "Available"):
        cond = conds.get(kind)
        if cond is None:
            continue
        state = cond.get("status")
        message = str(cond.get("message") or cond.get("reason") or "")
        if state == "True":
            return Assessment(Health.HEALTHY, f"{kind}", _observed(obj))
        if state == "False":
            return Assessment(Health.DEGRADED, f"not {kind}: {message}".rstrip(": "), _observed(obj))
        return Assessment(Health.PROGRESSING, f"{kind} unknown: {message}".rstrip(": "), _observed(obj))
    return Assessment(Health.UNKNOWN, "status has no Ready or Available condition", _observed(obj))


INTERPRETERS: dict[tuple[str, str], Callable[[Obj], Assessment]] = {
    ("apps", "Deployment"): deployment,
    ("apps", "StatefulSet"): statefulset,
    ("apps", "DaemonSet"): daemonset,
    ("apps", "ReplicaSet"): replicaset,
    ("batch", "Job"): job,
    ("", "Service"): service,
    ("", "PersistentVolumeClaim"): pvc,
}


def assess(obj: Obj) -> Assessment:
    """The health of `obj`, by its kind's interpreter or the generic one.

    A member's admin shapes what this reads (a custom resource's status can be anything): a
    status, spec or metadata that is not an object counts as empty, and a shape the
    interpreter cannot read is Unknown, never an exception in the member's informer.
    """
    shaped = {
        k: v for k, v in obj.items() if k not in ("status", "spec", "metadata") or isinstance(v, Mapping)
    }
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    interpreter = INTERPRETERS.get((group, str(obj.get("kind", ""))), generic)
    try:
        return interpreter(shaped)
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        return Assessment(Health.UNKNOWN, f"the status cannot be read ({type(exc).__name__})")
