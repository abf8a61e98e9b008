"""Rows for store tests: small, explicit, and easy to vary."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from federation.store import (
    ApplyResult,
    ClusterDecision,
    ClusterRow,
    DesiredWork,
    EventRow,
    EventType,
    Health,
    MemberStatusRow,
    ObjectRef,
    ResourceId,
    ResourceRow,
    Store,
    WorkState,
)


def deployment(
    name: str, *, namespace: str = "default", replicas: int = 2, image: str = "nginx:1"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }


def content_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def resource_row(
    name: str, *, namespace: str = "default", resource_version: str = "1", **kw: Any
) -> ResourceRow:
    return ResourceRow(
        api_group="apps",
        api_version="apps/v1",
        kind="Deployment",
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        generation=1,
        resource_version=resource_version,
        template=deployment(name, namespace=namespace, **kw),
    )


def desired(cluster: str, manifest: dict[str, Any]) -> DesiredWork:
    return DesiredWork(cluster=cluster, desired=manifest, desired_hash=content_hash(manifest))


async def placed_resource(
    store: Store, name: str, clusters: list[str], *, replicas: int = 2, image: str = "nginx:1"
) -> ResourceId:
    """A resource placed on `clusters` (all chosen), with one pending work per cluster."""
    (rid,) = await store.upsert_resources([resource_row(name)])
    manifest = deployment(name, replicas=replicas, image=image)
    await store.save_placement(
        rid,
        policy_id=None,
        decisions=[ClusterDecision(cluster=c, chosen=True, replicas=replicas) for c in clusters],
        desired_works=[desired(c, manifest) for c in clusters],
    )
    return rid


# -- a hand-built fleet, for the views and the dashboard ------------------------------------

M1, M2, M3 = "member-1", "member-2", "member-3"
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}, "data": {"k": "v"}}


async def build_fleet(store: Store) -> tuple[ResourceId, ResourceId, ResourceId]:
    """
    web (Deployment, 3 replicas) on M1, M2, M3:
        applied + Healthy | applied + Progressing | conflict, no status
    config (ConfigMap) on M1, M2, M3:
        applied + Healthy | failed (due) + Degraded | unplaced -> deleting
    lonely (Deployment): never placed
    """
    await store.upsert_clusters(
        [
            ClusterRow(name=M1, ready=True, kubernetes_version="v1.36.3"),
            ClusterRow(name=M2, ready=False, ready_reason="probe timed out"),
            ClusterRow(name=M3, ready=True),
        ]
    )
    assert await store.acquire_cluster_lease(M3, holder="replica-a", ttl_seconds=600)
    web, config, lonely = await store.upsert_resources(
        [
            resource_row("web", replicas=3),
            ResourceRow(
                api_group="",
                api_version="v1",
                kind="ConfigMap",
                namespace="default",
                name="config",
                uid="uid-config",
                generation=1,
                resource_version="5",
                template=CONFIG,
            ),
            resource_row("lonely"),
        ]
    )
    everywhere = [ClusterDecision(cluster=c, chosen=True) for c in (M1, M2, M3)]
    await store.save_placement(
        web,
        policy_id=None,
        decisions=[ClusterDecision(cluster=c, chosen=True, replicas=3) for c in (M1, M2, M3)],
        desired_works=[desired(c, deployment("web", replicas=3)) for c in (M1, M2, M3)],
    )
    await store.save_placement(
        config, policy_id=None, decisions=everywhere, desired_works=[desired(c, CONFIG) for c in (M1, M2, M3)]
    )

    outcome = {
        (web, M1): WorkState.APPLIED,
        (web, M2): WorkState.APPLIED,
        (web, M3): WorkState.CONFLICT,
        (config, M1): WorkState.APPLIED,
        (config, M2): WorkState.FAILED,
        (config, M3): WorkState.APPLIED,
    }
    for cluster in (M1, M2, M3):
        results = []
        for work in await store.claim_due_works(cluster, holder="w", limit=10, lease_seconds=60):
            state = outcome[(work.resource_id, cluster)]
            failed = state is WorkState.FAILED
            results.append(
                ApplyResult(
                    work.id,
                    work.version,
                    state,
                    error="500 from apiserver" if failed else None,
                    next_attempt_at=datetime.now(UTC) - timedelta(minutes=1) if failed else None,
                )
            )
        # One batch a cluster, as its propagator writes them.
        recorded = await store.record_apply_results(results)
        assert None not in recorded.values() and len(recorded) == 2
    # config is taken away from M3.
    await store.save_placement(
        config,
        policy_id=None,
        decisions=[*everywhere[:2], ClusterDecision(cluster=M3, chosen=False, reason="label mismatch")],
        desired_works=[desired(c, CONFIG) for c in (M1, M2)],
    )
    await store.upsert_member_statuses(
        [
            MemberStatusRow(
                web,
                M1,
                {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3},
                Health.HEALTHY,
                1,
            ),
            # Kubernetes omits zero counts: availableReplicas is absent here, so it is 0.
            MemberStatusRow(
                web, M2, {"replicas": 3, "readyReplicas": 1, "updatedReplicas": 3}, Health.PROGRESSING, 1
            ),
            MemberStatusRow(config, M1, {}, Health.HEALTHY),
            MemberStatusRow(config, M2, {}, Health.DEGRADED),
        ]
    )
    ref = ObjectRef("apps", "Deployment", "default", "web")
    now = datetime.now(UTC)
    await store.append_events(
        [
            EventRow(
                EventType.DRIFT_CORRECTED,
                "replicas 5 -> 3",
                cluster=M1,
                ref=ref,
                time=now - timedelta(minutes=5),
            ),
            EventRow(
                EventType.DRIFT_CORRECTED,
                "image restored",
                cluster=M1,
                ref=ref,
                time=now - timedelta(minutes=50),
            ),
            EventRow(
                EventType.DRIFT_CORRECTED, "too old", cluster=M1, ref=ref, time=now - timedelta(hours=2)
            ),
            EventRow(EventType.APPLY_FAILED, "not a drift", cluster=M1, ref=ref, time=now),
            EventRow(
                EventType.DRIFT_CORRECTED, "other cluster", cluster=M2, ref=ref, time=now - timedelta(hours=3)
            ),
        ]
    )
    return web, config, lonely
