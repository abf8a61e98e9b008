"""An in-memory hub for the hub controller's parts: templates, policies, a fleet and a stand-in
for the store's save, wired through the real detector, binder, tracker and ledger.

The stand-in keeps what `save_placement` keeps that the parts read back (decision rows, one
desired work per cluster, resource and policy ids) and answers with the same `PlacementChange`;
a work unplaced is gone at once (as if its member were clean already). Keys are queued in a
`KeyBag`, which collapses adds like a `WorkQueue` and lets a test (or hypothesis) choose which
key runs next: any interleaving of events and reconciles can be played.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from federation.api import PolicyLike
from federation.hub.binder import Binder, BinderHooks
from federation.hub.dependencies import DependencyTracker, references
from federation.hub.detector import Detector
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.ledger import PolicyLedger
from federation.hub.pipeline import Fleet
from federation.hub.policies import PolicyCache
from federation.hub.rollouts import RolloutKeeper
from federation.informers import Priority
from federation.kube import GVK, Obj
from federation.placement import ClusterSnapshot
from federation.store import (
    ClusterDecision,
    DesiredWork,
    EventRow,
    Health,
    ObjectRef,
    PlacementChange,
    PolicyId,
    PolicyRow,
    ResourceId,
    ResourceRow,
    RolloutCopy,
    RolloutRow,
    WorkState,
    WorkStatus,
)
from federation.translate.protected import Protection

NS = "shop"


class FakeStore:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.resources: dict[ObjectRef, ResourceId] = {}
        self.deleted: set[ObjectRef] = set()
        self.policies: dict[tuple[str, str, str], PolicyId] = {}
        self.decisions: dict[ResourceId, list[ClusterDecision]] = {}
        self.works: dict[ResourceId, dict[str, DesiredWork]] = {}
        self.events: list[EventRow] = []
        self.saves = 0
        self.rollouts: dict[ResourceId, RolloutRow] = {}
        #: What the members report per (resource, cluster): the hash applied, its health and
        #: since when it is Healthy (see `settle`).
        self.member: dict[tuple[ResourceId, str], tuple[str, Health, datetime | None]] = {}

    async def register_resource(self, row: ResourceRow) -> tuple[ResourceId, bool]:
        ref = ObjectRef(row.api_group, row.kind, row.namespace, row.name)
        self.deleted.discard(ref)
        if ref in self.resources:
            return self.resources[ref], False
        rid = ResourceId(next(self._ids))
        self.resources[ref] = rid
        return rid, True

    async def resource_id_of(self, ref: ObjectRef) -> ResourceId | None:
        return self.resources.get(ref)

    async def mark_resource_deleted(self, ref: ObjectRef) -> ResourceId | None:
        self.deleted.add(ref)
        return self.resources.get(ref)

    async def upsert_policy(self, row: PolicyRow) -> PolicyId:
        key = (str(row.kind), row.namespace, row.name)
        return self.policies.setdefault(key, PolicyId(next(self._ids)))

    async def placement_of(self, resource_id: ResourceId) -> list[ClusterDecision]:
        return list(self.decisions.get(resource_id, []))

    async def works_of_resource(self, resource_id: ResourceId) -> list[WorkStatus]:
        return []  # unplaced works are gone at once

    async def append_events(self, rows: Sequence[EventRow]) -> int:
        self.events.extend(rows)
        return len(rows)

    async def save_placement(
        self,
        resource_id: ResourceId,
        *,
        policy_id: PolicyId | None,
        decisions: Sequence[ClusterDecision],
        desired_works: Sequence[DesiredWork],
        unschedulable: str | None = None,
        orphan: bool = False,
    ) -> PlacementChange:
        self.saves += 1
        before = self.works.get(resource_id, {})
        after = {w.cluster: w for w in desired_works}
        created = tuple(sorted(after.keys() - before.keys()))
        updated = tuple(sorted(c for c in after.keys() & before.keys() if after[c] != before[c]))
        unplaced = tuple(sorted(before.keys() - after.keys()))
        changed_rows = self.decisions.get(resource_id, []) != list(decisions)
        self.decisions[resource_id] = list(decisions)
        if after:
            self.works[resource_id] = after
        else:
            self.works.pop(resource_id, None)
        return PlacementChange(1, changed_rows, created, updated, unplaced)

    async def rollout_of(self, resource_id: ResourceId) -> RolloutRow | None:
        return self.rollouts.get(resource_id)

    async def save_rollout(self, row: RolloutRow) -> bool:
        before = self.rollouts.get(row.resource_id)
        if before is not None:
            same_target = before.target_fp == row.target_fp
            row = replace(
                row,
                approved=before.approved if same_target else (),
                undo_requested=before.undo_requested and same_target,
            )
        self.rollouts[row.resource_id] = row
        return before != row

    async def delete_rollout(self, resource_id: ResourceId) -> bool:
        return self.rollouts.pop(resource_id, None) is not None

    async def rollout_copies(self, resource_id: ResourceId) -> list[RolloutCopy]:
        out = []
        for cluster, work in self.works.get(resource_id, {}).items():
            applied, health, since = self.member.get((resource_id, cluster), ("", Health.UNKNOWN, None))
            on = applied == work.desired_hash
            out.append(
                RolloutCopy(
                    cluster=cluster,
                    state=WorkState.APPLIED if on else WorkState.PENDING,
                    desired_hash=work.desired_hash,
                    applied_hash=applied or None,
                    last_error=None,
                    retrying=False,
                    work_resource_version="7" if on else None,
                    applied_at=since,
                    health=health if on else Health.UNKNOWN,
                    health_reason="pods not Ready" if health is Health.DEGRADED else None,
                    healthy_since=since if on and health is Health.HEALTHY else None,
                    status_resource_version="7" if on else None,
                )
            )
        return out

    # -- what tests do for the members ---------------------------------------------------

    def settle(self, key: ResourceKey, cluster: str, at: float, health: Health = Health.HEALTHY) -> None:
        """The member applied the copy it is to hold now, and reports `health` since `at`."""
        rid = self.resources[ObjectRef(key.group, key.kind, key.namespace, key.name)]
        work = self.works[rid][cluster]
        self.member[(rid, cluster)] = (work.desired_hash, health, datetime.fromtimestamp(at, UTC))

    def rollout(self, key: ResourceKey) -> RolloutRow | None:
        return self.rollouts.get(self.resources[ObjectRef(key.group, key.kind, key.namespace, key.name)])

    # -- what tests read -------------------------------------------------------------------

    def copies(self) -> dict[str, dict[ResourceKey, Mapping[str, Any]]]:
        """Per cluster, the copies the members are to hold (refused works excluded)."""
        by_id = {rid: ref for ref, rid in self.resources.items()}
        out: dict[str, dict[ResourceKey, Mapping[str, Any]]] = {}
        for rid, works in self.works.items():
            ref = by_id[rid]
            key = ResourceKey(ref.api_group, ref.kind, ref.namespace, ref.name)
            for cluster, work in works.items():
                if work.error is None:
                    out.setdefault(cluster, {})[key] = work.desired
        return out

    def rows(self, key: ResourceKey) -> dict[str, str]:
        rid = self.resources.get(ObjectRef(key.group, key.kind, key.namespace, key.name))
        return (
            {r.cluster: ("chosen: " if r.chosen else "") + r.reason for r in self.decisions.get(rid, [])}
            if rid
            else {}
        )


class KeyBag:
    """Queued keys, collapsed; the caller picks which runs next (or `drain` runs them all)."""

    def __init__(self) -> None:
        self.keys: dict[ResourceKey, None] = {}
        #: The priority of each key's last add (the detector's choice, for its tests).
        self.priorities: dict[ResourceKey, Priority] = {}

    def add(self, key: ResourceKey, priority: Priority = Priority.NORMAL) -> None:
        self.keys[key] = None
        self.priorities[key] = priority

    def add_after(self, key: ResourceKey, delay: float, priority: Priority | None = None) -> None:
        self.add(key, Priority.NORMAL if priority is None else priority)

    def take(self, index: int = 0) -> ResourceKey:
        key = list(self.keys)[index % len(self.keys)]
        del self.keys[key]
        return key


class NoFinalizer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def set(self, template: Obj, present: bool) -> None:
        self.calls.append((str((template.get("metadata") or {}).get("name")), present))


@dataclass
class FakeHub:
    """The hub's state (templates, policies, fleet) and the parts wired around it."""

    clusters: list[ClusterSnapshot]
    templates: dict[ResourceKey, Obj] = field(default_factory=dict)
    store: FakeStore = field(default_factory=FakeStore)
    bag: KeyBag = field(default_factory=KeyBag)
    policies: PolicyCache = field(default_factory=PolicyCache)
    marked_policies: set[PolicyKey] = field(default_factory=set)
    works_changed: set[str] = field(default_factory=set)
    now: float = 1_000_000.0
    """The rollouts' clock (seconds)."""

    def __post_init__(self) -> None:
        self._wire()
        self.tracker.seal()

    def restart(self) -> None:
        """A new controller process on the same hub and store: empty memory, every key queued
        in the order the informers list them."""
        self.bag.keys.clear()
        raws = [raw for k, _ in self.policies.all() if (raw := self.policies.raw(k)) is not None]
        self.policies = PolicyCache()
        self._wire()
        for raw in raws:
            self.policies.upsert(raw)
        self.bag.keys.clear()
        for template in list(self.templates.values()):
            self.detector.template_event(ResourceKey.of(template), Priority.LOW)  # an initial list
        self.tracker.seal()
        # A template deleted while no controller ran is found by the level-based sweep of what
        # Postgres holds (issue 11, another part's job): modelled here by queueing its key.
        for ref in sorted(self.store.resources.keys() - self.store.deleted, key=str):
            self.bag.add(ResourceKey(ref.api_group, ref.kind, ref.namespace, ref.name), Priority.LOW)

    def _wire(self) -> None:
        self.tracker = DependencyTracker()
        self.ledger = PolicyLedger()
        self.finalizer = NoFinalizer()
        self._fleet: Fleet | None = None
        self.binder = Binder(
            templates=self.templates.get,
            policies=self.policies,
            store=self.store,
            fleet=self.fleet,
            protection=Protection,
            finalizer=self.finalizer,
            hub_id="hub",
            tracker=self.tracker,
            ledger=self.ledger,
            hooks=BinderHooks(
                works_changed=self.works_changed.update,
                requeue=self.bag.add,
                policies=self.marked_policies.update,
            ),
            rollouts=RolloutKeeper(self.store, now=lambda: self.now),
        )
        self.detector = Detector(
            queue=self.bag,
            template=self.templates.get,
            keys_of=lambda gvks: [k for k in self.templates if any(g.kind == k.kind for g in gvks)],
            all_keys=lambda: list(self.templates),
            placed=lambda: list(self.binder.placed),
            tracker=self.tracker,
            policy_changed=self.binder.policy_changed,
            fleet_changed=self._forget_fleet,
        )
        self.policies.subscribe(self.detector.policy_event)

    def fleet(self) -> Fleet:
        if self._fleet is None:
            self._fleet = Fleet.of(self.clusters)
        return self._fleet

    def _forget_fleet(self) -> None:
        self._fleet = None

    # -- hub events ------------------------------------------------------------------------

    def apply(self, obj: Obj) -> ResourceKey:
        key = ResourceKey.of(obj)
        self.templates[key] = obj
        self.detector.template_event(key)
        return key

    def delete(self, key: ResourceKey) -> None:
        self.templates.pop(key, None)
        self.detector.template_event(key)

    def apply_policy(self, obj: Obj) -> None:
        self.policies.upsert(obj)

    def delete_policy(self, obj: Obj) -> None:
        self.policies.remove(obj)

    def set_clusters(self, clusters: list[ClusterSnapshot]) -> None:
        from federation.clusters.changes import FleetChange, FleetChangeKind

        self.clusters[:] = clusters
        self.detector.fleet_event(FleetChange(cluster="*", kind=FleetChangeKind.LABELS))

    # -- running ---------------------------------------------------------------------------

    async def step(self, index: int = 0) -> ResourceKey:
        key = self.bag.take(index)
        await self.binder.reconcile(key)
        return key

    async def drain(self, limit: int = 1000) -> None:
        for _ in range(limit):
            if not self.bag.keys:
                return
            await self.step()
        raise AssertionError(f"the queue never drained: {list(self.bag.keys)}")


# -- objects -----------------------------------------------------------------------------------


def deployment(name: str, *, refs: Sequence[str] = (), labels: Mapping[str, str] | None = None) -> Obj:
    env = [
        {"name": f"E{i}", "valueFrom": {"configMapKeyRef": {"name": r, "key": "k"}}}
        for i, r in enumerate(refs)
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": dict(labels or {})},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx", "env": env}]},
            },
        },
    }


def configmap(name: str, *, labels: Mapping[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": dict(labels or {})},
        "data": {"k": name},
    }


def propagation_policy(
    name: str,
    *,
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    placement: Mapping[str, Any] | None = None,
    dependencies: bool = True,
    created: str = "2026-01-01T00:00:00Z",
) -> Obj:
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": created},
        "spec": {
            "resourceSelectors": [{"apiVersion": api_version, "kind": kind}],
            "placement": dict(placement or {}),
            "propagateDependencies": dependencies,
        },
    }


def key_of(obj: Obj) -> ResourceKey:
    return ResourceKey.of(obj)


def cm_key(name: str) -> ResourceKey:
    return ResourceKey("", "ConfigMap", NS, name)


def references_in(manifest: Mapping[str, Any]) -> frozenset[ResourceKey]:
    return references(manifest)


__all__ = ["GVK", "PolicyLike"]
