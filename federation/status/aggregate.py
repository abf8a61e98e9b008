"""Aggregate the members' statuses of one resource into the hub object's status.

Only kinds whose status a fleet admin reads with kubectl, and whose status the apiserver lets
us write safely, get a hub status: sums of the replica counters (which keep every invariant the
apiserver validates, such as ready <= replicas, when each member's status keeps it) and
conditions that say which clusters hold the rollout back. Everything else is reported through
Postgres, the HTTP API and the policy's conditions instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.status.bounds import INT32_MAX, LIST_LIMIT, clamp_int32, cut
from federation.status.health import Health, assess

Obj = Mapping[str, Any]

_COUNTERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): (
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ),
    ("apps", "StatefulSet"): (
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ),
    ("apps", "ReplicaSet"): ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"),
    ("apps", "DaemonSet"): (
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberUnavailable",
    ),
}


def _gk(obj: Obj) -> tuple[str, str]:
    return str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", ""))


def supports_hub_status(template: Obj) -> bool:
    """Whether we write an aggregated status into this kind of hub object."""
    return _gk(template) in _COUNTERS or _gk(template) == ("", "Service")


def aggregate_status(
    template: Obj, members: Mapping[str, Obj], *, placed: list[str], now: str
) -> dict[str, Any] | None:
    """The hub status for `template` from its member copies (cluster → live object).

    `placed` lists every cluster the resource is placed on, including those whose copy is not
    there (yet): they count as not available. Returns None for kinds we do not aggregate.
    """
    gk = _gk(template)
    if gk == ("", "Service"):
        return _service(members)
    counters = _COUNTERS.get(gk)
    if counters is None:
        return None
    status: dict[str, Any] = {c: 0 for c in counters}
    for obj in members.values():
        member_status = obj.get("status")
        member_status = member_status if isinstance(member_status, Mapping) else {}
        for c in counters:
            # Each member's value and the sum both fit the hub's int32 field (bounds.py).
            status[c] = min(INT32_MAX, status[c] + clamp_int32(member_status.get(c)))
    generation = (template.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = _conditions(members, placed=placed, now=now)
    return status


def _conditions(members: Mapping[str, Obj], *, placed: list[str], now: str) -> list[dict[str, Any]]:
    """Available: every placed cluster healthy. Progressing: why not, cluster by cluster."""
    lagging: list[str] = []
    degraded: list[str] = []
    for cluster in sorted(placed):
        obj = members.get(cluster)
        if obj is None:
            lagging.append(f"{cluster}: not applied yet")
            continue
        a = assess(obj)
        if a.health == Health.DEGRADED:
            degraded.append(f"{cluster}: {cut(a.reason)}")
        elif a.health != Health.HEALTHY:
            lagging.append(f"{cluster}: {cut(a.reason)}")
    healthy = len(placed) - len(lagging) - len(degraded)
    available = {
        "type": "Available",
        "status": "True" if healthy == len(placed) and placed else "False",
        "reason": "AllClustersAvailable" if healthy == len(placed) and placed else "ClustersNotAvailable",
        "message": f"{healthy}/{len(placed)} clusters available" + _detail(degraded + lagging),
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    progressing = {
        "type": "Progressing",
        "status": "False" if degraded else "True",
        "reason": "ClustersDegraded"
        if degraded
        else ("ClustersProgressing" if lagging else "RolloutComplete"),
        "message": _detail(degraded) or _detail(lagging) or "every placed cluster is up to date",
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    return [available, progressing]


def _detail(items: list[str]) -> str:
    if not items:
        return ""
    shown = items[:5]
    more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
    return ": " + "; ".join(shown) + more


def _service(members: Mapping[str, Obj]) -> dict[str, Any]:
    """The union of the members' load-balancer addresses (what a global DNS would point at)."""
    ingress: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cluster in sorted(members):
        for entry in ((members[cluster].get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if not isinstance(entry, Mapping) or len(ingress) >= LIST_LIMIT:
                continue
            key = str(entry.get("ip") or entry.get("hostname"))
            if key not in seen:
                seen.add(key)
                ingress.append(
                    {k: cut(str(v), 253) for k, v in entry.items() if k in ("ip", "hostname", "ipMode")}
                )
    return {"loadBalancer": {"ingress": ingress} if ingress else {}}


def merge_conditions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kubernetes condition semantics, and no write when nothing changed.

    A condition whose status, reason and message are unchanged is kept as it was (both
    timestamps), so an unchanged aggregate compares equal and costs no hub write; one whose
    status is unchanged keeps its `lastTransitionTime`.
    """
    previous = {c.get("type"): c for c in old or []}
    merged = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and all(before.get(k) == cond.get(k) for k in ("status", "reason", "message")):
            cond = dict(before)
        elif (
            before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime")
        ):
            cond = {**cond, "lastTransitionTime": before["lastTransitionTime"]}
        merged.append(cond)
    return merged
