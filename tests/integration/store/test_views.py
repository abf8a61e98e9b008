"""The dashboard views aggregate a hand-built fleet correctly (checked value by value)."""

from __future__ import annotations

from typing import Any

from federation.store import (
    Health,
    ObjectRef,
    Store,
    WorkState,
)
from tests.integration.store.factories import M1, M2, M3, build_fleet
from tests.storehelpers import query

RESOURCE_COLUMNS = [
    "clusters_desired",
    "clusters_applied",
    "clusters_healthy",
    "clusters_conflicted",
    "clusters_failed",
    "clusters_removing",
    "replicas_desired",
    "replicas_ready",
    "replicas_available",
    "replicas_updated",
    "worst_health",
    "placement_revision",
]


def pick(row: Any, columns: list[str]) -> dict[str, Any]:
    return {c: row[c] for c in columns}


async def test_fleet_resource_status(store: Store, database_url: str) -> None:
    web, _config, _lonely = await build_fleet(store)
    rows = {r["name"]: r for r in await query(database_url, "SELECT * FROM fleet_resource_status")}
    assert set(rows) == {"web", "config", "lonely"}
    assert pick(rows["web"], RESOURCE_COLUMNS) == {
        "clusters_desired": 3,
        "clusters_applied": 2,
        "clusters_healthy": 1,
        "clusters_conflicted": 1,
        "clusters_failed": 0,
        "clusters_removing": 0,
        "replicas_desired": 9,
        "replicas_ready": 4,  # 3 + 1 + (conflict, no status: 0)
        "replicas_available": 3,
        "replicas_updated": 6,
        "worst_health": "Unknown",  # M3 has no status yet
        "placement_revision": 1,
    }
    assert pick(rows["config"], RESOURCE_COLUMNS) == {
        "clusters_desired": 2,
        "clusters_applied": 1,
        "clusters_healthy": 1,
        "clusters_conflicted": 0,
        "clusters_failed": 1,
        "clusters_removing": 1,
        "replicas_desired": None,  # not a workload
        "replicas_ready": None,
        "replicas_available": None,
        "replicas_updated": None,
        "worst_health": "Degraded",
        "placement_revision": 2,
    }
    assert pick(rows["lonely"], RESOURCE_COLUMNS) == {
        **dict.fromkeys(RESOURCE_COLUMNS[:6], 0),
        **dict.fromkeys(RESOURCE_COLUMNS[6:], None),
    }
    assert rows["web"]["api_group"] == "apps" and rows["config"]["api_group"] == ""
    assert rows["web"]["deleted_at"] is None and rows["web"]["last_change"] is not None

    # The store's typed read is the same row.
    status = await store.resource_status(web)
    assert status is not None
    assert status.ref == ObjectRef("apps", "Deployment", "default", "web")
    assert (status.clusters_applied, status.replicas_ready, status.worst_health) == (2, 4, Health.UNKNOWN)
    assert status.last_change == rows["web"]["last_change"]


async def test_fleet_cluster_status(store: Store, database_url: str) -> None:
    await build_fleet(store)
    rows = {r["cluster"]: r for r in await query(database_url, "SELECT * FROM fleet_cluster_status")}
    columns = [
        "ready",
        "ready_reason",
        "lease_holder",
        "works_total",
        "works_pending",
        "works_applied",
        "works_conflict",
        "works_failed",
        "works_deleting",
        "works_due",
        "drift_events_last_hour",
    ]
    assert pick(rows[M1], columns) == {
        "ready": True,
        "ready_reason": "",
        "lease_holder": None,
        "works_total": 2,
        "works_pending": 0,
        "works_applied": 2,
        "works_conflict": 0,
        "works_failed": 0,
        "works_deleting": 0,
        "works_due": 0,
        "drift_events_last_hour": 2,  # not the one 2 h ago, not the ApplyFailed
    }
    assert pick(rows[M2], columns) == {
        "ready": False,
        "ready_reason": "probe timed out",
        "lease_holder": None,
        "works_total": 2,
        "works_pending": 0,
        "works_applied": 1,
        "works_conflict": 0,
        "works_failed": 1,
        "works_deleting": 0,
        "works_due": 1,  # the failed work's retry time has come
        "drift_events_last_hour": 0,
    }
    assert pick(rows[M3], columns) == {
        "ready": True,
        "ready_reason": "",
        "lease_holder": "replica-a",
        "works_total": 2,
        "works_pending": 0,
        "works_applied": 0,
        "works_conflict": 1,
        "works_failed": 0,
        "works_deleting": 1,
        "works_due": 1,
        "drift_events_last_hour": 0,
    }
    typed = await store.cluster_status(M3)
    assert typed is not None and typed.works_deleting == 1 and typed.lease_holder == "replica-a"
    assert [c.cluster for c in await store.cluster_statuses()] == [M1, M2, M3]


async def test_fleet_work_status(store: Store, database_url: str) -> None:
    web, config, _ = await build_fleet(store)
    rows = {
        (r["name"], r["cluster"]): r
        for r in await query(database_url, "SELECT * FROM fleet_work_status ORDER BY work_id")
    }
    assert len(rows) == 6
    web1, web3, cfg2, cfg3 = rows[("web", M1)], rows[("web", M3)], rows[("config", M2)], rows[("config", M3)]
    assert (web1["state"], web1["health"], web1["in_sync"], web1["replicas_ready"]) == (
        "applied",
        "Healthy",
        True,
        3,
    )
    assert (web3["state"], web3["health"], web3["in_sync"], web3["replicas_ready"]) == (
        "conflict",
        "Unknown",
        False,
        0,
    )
    assert (cfg2["state"], cfg2["health"], cfg2["attempts"], cfg2["last_error"]) == (
        "failed",
        "Degraded",
        1,
        "500 from apiserver",
    )
    assert cfg2["replicas_desired"] is None and cfg2["replicas_ready"] is None
    assert (cfg3["state"], cfg3["desired_here"]) == ("deleting", False)
    assert web1["kind"] == "Deployment" and web1["api_version"] == "apps/v1"

    works = await store.works_of_resource(config)
    assert [(w.cluster, w.state) for w in works] == [
        (M1, WorkState.APPLIED),
        (M2, WorkState.FAILED),
        (M3, WorkState.DELETING),
    ]
    assert [w.cluster for w in await store.works_of_resource(web)] == [M1, M2, M3]


async def test_views_on_an_empty_store(database_url: str) -> None:
    for view in ("fleet_resource_status", "fleet_cluster_status", "fleet_work_status"):
        assert await query(database_url, f"SELECT * FROM {view}") == [], view
