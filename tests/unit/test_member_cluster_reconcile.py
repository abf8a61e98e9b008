"""MemberClusters are reconciled by name from the informer's cache, level-based: whatever
happened in between, the registry ends up where the cached object (or its absence) says, and
the fleet's listeners are told what changed — join, labels, credentials, leaving, left."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from federation.clusters import ClusterRegistry, RegistrySettings
from federation.clusters.changes import FleetChange, FleetChangeKind
from federation.clusters.drain import DRAIN_FINALIZER, FORCE_ANNOTATION
from federation.informers.clock import FakeClock

K = FleetChangeKind


def member_cluster(
    name: str = "eu",
    *,
    uid: str = "uid-1",
    labels: dict[str, str] | None = None,
    secret_namespace: str = "tenant-a",
    finalizers: tuple[str, ...] = (),
    deleting: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid, "labels": labels or {}, "finalizers": list(finalizers)}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T15:00:00Z"
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "MemberCluster",
        "metadata": meta,
        "spec": {"kubeconfigSecretRef": {"namespace": secret_namespace, "name": "kc"}},
    }


class Drain:
    def __init__(self) -> None:
        self.abandoned: list[str] = []

    async def works_to_drain(self, cluster: str) -> int:
        return 0

    async def abandon_cluster(self, cluster: str, reason: str) -> int:
        self.abandoned.append(cluster)
        return 0


def registry(drain: Drain | None = None) -> tuple[ClusterRegistry, dict[str, Any], list[tuple[str, K]]]:
    """A registry whose MemberCluster cache is the returned dict; the hub is never reached
    (the credentials live outside the credentials namespaces, so they are refused unread)."""
    reg = ClusterRegistry(
        settings=RegistrySettings(credentials_namespaces=frozenset({"fleet-system"})),
        clock=FakeClock(),
        drain=drain,
    )
    cache: dict[str, Any] = {}
    reg._member_clusters = SimpleNamespace(store=cache)  # type: ignore[assignment]
    changes: list[tuple[str, K]] = []

    def listen(change: FleetChange) -> None:
        changes.append((change.cluster, change.kind))

    reg.subscribe(listen)
    return reg, cache, changes


async def test_join_labels_credentials_and_leave_follow_the_cached_object() -> None:
    reg, cache, changes = registry()
    cache["eu"] = member_cluster(labels={"tier": "gold"})
    await reg.reconcile_member_cluster("eu")
    eu = reg.get("eu")
    assert eu is not None and eu.labels == {"tier": "gold"} and not eu.connected
    assert eu.connect_error is not None and "is not a credentials namespace" in eu.connect_error
    assert reg.credential_refs() == {("tenant-a", "kc")}  # refused, still never propagated
    assert changes == [("eu", K.JOINED)]

    await reg.reconcile_member_cluster("eu")  # nothing changed: nothing said
    assert changes == [("eu", K.JOINED)]

    # Two updates before the reconcile: one reconcile sees the latest only.
    cache["eu"] = member_cluster(labels={"tier": "silver"})
    cache["eu"] = member_cluster(labels={"tier": "bronze"})
    await reg.reconcile_member_cluster("eu")
    assert reg.get("eu").labels == {"tier": "bronze"}  # type: ignore[union-attr]
    assert changes[-1] == ("eu", K.LABELS)

    cache["eu"] = member_cluster(labels={"tier": "bronze"}, secret_namespace="tenant-b")
    await reg.reconcile_member_cluster("eu")
    assert changes[-1] == ("eu", K.CREDENTIALS)
    assert reg.credential_refs() == {("tenant-b", "kc")}

    del cache["eu"]  # absent from the cache: deleted
    await reg.reconcile_member_cluster("eu")
    assert reg.get("eu") is None and reg.credential_refs() == frozenset()
    assert changes[-1] == ("eu", K.LEFT)


async def test_draining_then_forced_unjoin() -> None:
    drain = Drain()
    reg, cache, changes = registry(drain)
    cache["eu"] = member_cluster(finalizers=(DRAIN_FINALIZER,))
    await reg.reconcile_member_cluster("eu")
    cache["eu"] = member_cluster(finalizers=(DRAIN_FINALIZER,), deleting=True)
    await reg.reconcile_member_cluster("eu")
    assert reg.get("eu").draining  # type: ignore[union-attr]
    assert [s.name for s in reg.snapshots()] == []  # nothing new is placed there
    assert changes == [("eu", K.JOINED), ("eu", K.LEAVING)]
    await reg.reconcile_member_cluster("eu")
    assert changes == [("eu", K.JOINED), ("eu", K.LEAVING)]  # said once

    # `clusters unjoin --force`: the mark, our finalizer gone; the object goes at once.
    cache["eu"] = member_cluster(deleting=True, annotations={FORCE_ANNOTATION: "force"})
    await reg.reconcile_member_cluster("eu")
    assert reg.get("eu") is None and drain.abandoned == ["eu"]
    assert changes[-1] == ("eu", K.LEFT)


async def test_a_member_cluster_deleted_and_created_again_leaves_then_joins() -> None:
    drain = Drain()
    reg, cache, changes = registry(drain)
    cache["eu"] = member_cluster(finalizers=(DRAIN_FINALIZER,), deleting=True, uid="old")
    await reg.reconcile_member_cluster("eu")
    assert reg.get("eu").draining  # type: ignore[union-attr]
    # Drained, released, deleted and created again before the reconcile ran: a new object.
    cache["eu"] = member_cluster(finalizers=(DRAIN_FINALIZER,), uid="new")
    await reg.reconcile_member_cluster("eu")
    eu = reg.get("eu")
    assert eu is not None and not eu.draining
    assert drain.abandoned == ["eu"]  # what the old one left behind is recorded
    # First seen while leaving (after a restart): it never joined this process's fleet.
    assert changes == [("eu", K.LEAVING), ("eu", K.LEFT), ("eu", K.JOINED)]
