"""The binder: one template's reconcile — read the inputs, run the pipeline, save the result.

The reconcile contract (client-go's, and every loop's here: `federation.runtime`): a key is
queued whenever anything about it may have changed; `reconcile(key)` reads the *current*
state — the template and the policies from the hub caches, the fleet from the registry, the
previous decision from Postgres, the workloads a dependency follows from the
`DependencyTracker` — and moves one step toward it. It is never told what happened.

What is decided is the pure pipeline's (`federation.hub.pipeline`); what happens here is the
I/O around it:
1. register the template and its policy in Postgres (only when what they say changed);
2. save the decision and the works in one transaction, which writes nothing when nothing
   changed, so a controller restart costs no member write;
3. tell the propagators of the clusters whose works changed, the status writer where the
   template is placed, policy status which policies' reports changed, and the dependency
   tracker what is placed (which re-queues the dependencies whose followers changed).
Deletion: a template gone from the hub (its delete event, or the sweep finding its works
outliving it — after a restart too) moves every work to deleting or orphaning per the policy's
deletionPolicy; the propagators then clean the members. Templates carry no finalizer of ours:
Postgres records every copy, which is what a level-based cleanup needs, and a finalizer cost
each template a hub write (and a watch event back) that the members never needed. A template
whose deletion someone else's finalizer holds is unplaced the same way; one still carrying our
finalizer from an older version has it released once its members are clean.

(Past 400 lines because every store call of a template's reconcile is here, in the order it
happens — registering, reading the previous decision, saving, unplacing, deleting — so the one
place that writes a template's works reads top to bottom.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from federation.api.propagation import DeletionPolicy, PolicyLike
from federation.hub.dependencies import DependencyTracker, Placed, dependency_key
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.ledger import PolicyLedger, policy_key
from federation.hub.pipeline import (
    Fleet,
    Follower,
    Matched,
    Outcome,
    TemplatePlan,
    match_template,
    place_template,
    with_revision,
)
from federation.hub.policies import PolicyCache
from federation.hub.rollouts import RolloutKeeper, RolloutStore
from federation.hub.templates import fingerprint
from federation.informers.transform import last_writer
from federation.kube import Obj
from federation.placement import Decision, Target, as_reason
from federation.runtime import Result
from federation.sealing import KEY_FLAG, Sealer
from federation.store import (
    ClusterDecision,
    DesiredWork,
    EventRow,
    EventType,
    ObjectRef,
    PlacementChange,
    PolicyId,
    PolicyKind,
    PolicyRow,
    ResourceId,
    ResourceRow,
    WorkStatus,
)
from federation.translate.protected import Protection

log = logging.getLogger(__name__)

UNSEALABLE = (
    f"not propagated: it holds sensitive values and the controller has no encryption key ({KEY_FLAG})"
)


class BinderStore(RolloutStore, Protocol):
    """What the binder asks of the state store (`federation.store.Store`; a dict in tests)."""

    async def register_resource(self, row: ResourceRow) -> tuple[ResourceId, bool]: ...
    async def resource_id_of(self, ref: ObjectRef) -> ResourceId | None: ...
    async def mark_resource_deleted(self, ref: ObjectRef) -> ResourceId | None: ...
    async def upsert_policy(self, row: PolicyRow) -> PolicyId: ...
    async def placement_of(self, resource_id: ResourceId) -> list[ClusterDecision]: ...
    async def works_of_resource(self, resource_id: ResourceId) -> list[WorkStatus]: ...
    async def append_events(self, rows: Sequence[EventRow]) -> int: ...
    async def save_placement(
        self,
        resource_id: ResourceId,
        *,
        policy_id: PolicyId | None,
        decisions: Sequence[ClusterDecision],
        desired_works: Sequence[DesiredWork],
        unschedulable: str | None = None,
        orphan: bool = False,
    ) -> PlacementChange: ...


class TemplateFinalizer(Protocol):
    async def set(self, template: Obj, present: bool) -> None: ...


@dataclass
class BinderHooks:
    """Who hears about what a reconcile did (all synchronous: they queue keys)."""

    works_changed: Callable[[Iterable[str]], None] = lambda _clusters: None
    """Clusters whose works changed: their propagators should claim now."""
    placed: Callable[[ResourceKey], None] = lambda _key: None
    """Where the template is placed changed (the aggregated status depends on it)."""
    requeue: Callable[[ResourceKey], None] = lambda _key: None
    """A template (a dependency) to reconcile again."""
    policies: Callable[[Iterable[PolicyKey]], None] = lambda _keys: None
    """Policies whose status may have changed."""


def ref(key: ResourceKey) -> ObjectRef:
    return ObjectRef(api_group=key.group, kind=key.kind, namespace=key.namespace, name=key.name)


def fields(key: ResourceKey) -> dict[str, str]:
    """The structured-log fields of a template key."""
    return {"namespace": key.namespace, "object_name": key.name, "kind": key.kind}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class Binder:
    def __init__(
        self,
        *,
        templates: Callable[[ResourceKey], Obj | None],
        policies: PolicyCache,
        store: BinderStore,
        fleet: Callable[[], Fleet],
        protection: Callable[[], Protection],
        finalizer: TemplateFinalizer,
        hub_id: str,
        tracker: DependencyTracker | None = None,
        ledger: PolicyLedger | None = None,
        hooks: BinderHooks | None = None,
        sealer: Sealer | None = None,
        deletion_recheck: float = 1.0,
        rollouts: RolloutKeeper | None = None,
    ) -> None:
        self.templates = templates
        self.policies = policies
        self.store = store
        self.fleet = fleet
        self.protection = protection
        self.finalizer = finalizer
        self.hub_id = hub_id
        self.tracker = tracker or DependencyTracker()
        self.ledger = ledger or PolicyLedger()
        self.hooks = hooks or BinderHooks()
        self.sealer = sealer
        self.deletion_recheck = deletion_recheck
        self.rollouts = rollouts or RolloutKeeper(store)
        #: Where each template is placed (as saved): the status writer reads it.
        self.placed: dict[ResourceKey, list[str]] = {}
        #: Policy rows' ids, for policy status.
        self.policy_ids: dict[PolicyKey, PolicyId] = {}
        self._decisions: dict[ResourceKey, Decision | None] = {}
        self._resource_ids: dict[ResourceKey, ResourceId] = {}
        self._resource_fps: dict[ResourceKey, str] = {}
        self._policies_dirty: set[PolicyKey] = set()
        self._unsealable_reported: set[ResourceKey] = set()
        self._events: list[EventRow] = []

    def policy_changed(self, pkey: PolicyKey) -> None:
        """Its row is rewritten on the next save under it."""
        self._policies_dirty.add(pkey)

    # -- the reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: ResourceKey) -> Result | None:
        template = self.templates(key)
        if template is None:
            await self._unplace(key, orphan=self._orphans(key), gone=True)
            self._requeue(self.tracker.forget(key))
            return None
        followers, waiting = self._followers(key)
        matched = match_template(
            template,
            policies=self.policies.propagation(),
            followers=followers,
            protection=self.protection(),
            sealer=self.sealer,
        )
        self.hooks.policies(self.ledger.note_losers(key, matched.losers))
        if _meta(template).get("deletionTimestamp"):
            return await self._delete(key, template)
        if matched.winner is None and waiting:
            # A workload that references it has not been reconciled since the start, or its
            # policy is gone and it has not been reconciled since: until it is (it re-queues
            # this key), nobody knows where this dependency must stay.
            log.debug("%s waits for %s", key, ", ".join(map(str, waiting)), extra=fields(key))
            return None
        governing = matched.governing
        pkey = policy_key(governing) if governing is not None else None
        why = matched.refusal if matched.outcome is Outcome.PROTECTED else None
        why = UNSEALABLE if matched.outcome is Outcome.UNSEALABLE else why
        self.hooks.policies(self.ledger.note_skipped(key, pkey, why))
        if governing is None or matched.outcome is Outcome.PROTECTED:
            # Not (or never) ours to propagate: what was placed goes. A protected template's
            # copies are deleted even under deletionPolicy Orphan: a credential left in a
            # member is a leak.
            orphan = matched.outcome is Outcome.UNGOVERNED and self._orphans(key)
            await self._unplace(key, orphan=orphan, gone=False)
            self.hooks.policies(self.ledger.govern(key, None))
            self._requeue(self.tracker.record(key, None))
            await self.finalizer.set(template, False)
            if matched.refusal is not None:
                log.info("%s: %s", key, matched.refusal, extra=fields(key))
            return None
        self.hooks.policies(self.ledger.govern(key, pkey))
        return await self._place(key, template, matched)

    async def _place(self, key: ResourceKey, template: Obj, matched: Matched) -> Result | None:
        policy = matched.governing
        assert policy is not None
        if matched.outcome is Outcome.UNSEALABLE:
            self._report_unsealable(key)
            await self._flush_events()
            await self._record_held(key, matched, template, None)
            return None
        resource_id = await self._resource_id(key, template)
        policy_id = await self._policy_id(policy)
        if matched.suspended:
            # A suspended policy keeps its decisions; nothing moves.
            if policy.spec.rollout is not None:
                await self.rollouts.hold(resource_id)
            await self._record_held(key, matched, template, resource_id)
            return None
        previous = None if matched.inherited else await self._previous(key, resource_id)
        fleet = self.fleet()
        plan = place_template(
            template,
            matched,
            name=str(key),
            fleet=fleet,
            overrides=self.policies.overrides(),
            previous=previous,
            hub=self.hub_id,
            protection=self.protection(),
            sealer=self.sealer,
        )
        plan, requeue = await self._staged(key, resource_id, policy_id, template, plan, fleet)
        await self._save(key, resource_id, policy_id, plan)
        return Result(requeue_after=requeue) if requeue is not None else None

    async def _staged(
        self,
        key: ResourceKey,
        resource_id: ResourceId,
        policy_id: PolicyId,
        template: Obj,
        plan: TemplatePlan,
        fleet: Fleet,
    ) -> tuple[TemplatePlan, float | None]:
        """Under a policy with a rollout: the plan with the clusters not reached yet kept on
        the previous revision (`federation.hub.rollouts`), and when to look again."""
        policy = plan.matched.governing
        assert policy is not None
        strategy = policy.spec.rollout
        if strategy is None:
            await self.rollouts.drop(resource_id)
            self.hooks.policies(self.ledger.note_rollout(key, None, None))
            return plan, None
        chosen = [c for c in plan.decision.cluster_names if c in fleet.clusters]
        staging = await self.rollouts.stage(
            key,
            resource_id=resource_id,
            policy_id=policy_id,
            strategy=strategy,
            template=template,
            # `_resource_id` hashed this template moments ago (one key is reconciled at a time).
            fingerprint=self._resource_fps.get(key) or fingerprint(template),
            targets={w.cluster: w.desired_hash for w in plan.works},
            labels={c: fleet.clusters[c].labels for c in chosen},
        )
        self._events.extend(staging.events)
        note = (staging.phase.value, staging.reason) if staging.phase is not None else None
        self.hooks.policies(self.ledger.note_rollout(key, policy_key(policy), note))
        if staging.keep and staging.previous is not None:
            plan = with_revision(
                plan,
                staging.previous,
                staging.keep,
                name=str(key),
                fleet=fleet,
                overrides=self.policies.overrides(),
                hub=self.hub_id,
                protection=self.protection(),
                sealer=self.sealer,
            )
        return plan, staging.requeue_after

    async def _save(
        self, key: ResourceKey, resource_id: ResourceId, policy_id: PolicyId, plan: TemplatePlan
    ) -> None:
        matched, decision = plan.matched, plan.decision
        assert matched.governing is not None
        pkey = policy_key(matched.governing)
        placed = Placed(pkey, decision.cluster_names, _dependencies(matched))
        if plan.failover is not None:
            moved, gained = plan.failover.moved, plan.failover.gained
            off = ", ".join(f"{c} ({why})" for c, why in zip(moved, plan.failover.why, strict=False))
            self._events.append(
                EventRow(
                    type=EventType.FAILOVER,
                    message=f"{key}: moved off {off or ', '.join(moved)}"
                    + (f" to {', '.join(gained)}" if gained else ""),
                    ref=ref(key),
                    details={"from": list(moved), "to": list(gained)},
                )
            )
        for c in plan.copies:
            if c.unsealable:
                self._report_unsealable(key, cluster=c.cluster)
        self.tracker.widen(key, placed)
        change = await self.store.save_placement(
            resource_id,
            policy_id=policy_id,
            decisions=plan.rows,
            desired_works=plan.works,
            unschedulable=str(decision.unschedulable) if decision.unschedulable is not None else None,
            orphan=plan.orphan,
        )
        refused = plan.refused
        for cluster in {*change.works_created, *change.works_updated} & refused.keys():
            # Once per refusal (the work changed now), not on every reconcile.
            log.warning("%s", refused[cluster], extra={**fields(key), "cluster": cluster})
            self._events.append(
                EventRow(type=EventType.APPLY_FAILED, message=refused[cluster], cluster=cluster, ref=ref(key))
            )
        self._decisions[key] = decision
        clusters = sorted(decision.cluster_names)
        if self.placed.get(key) != clusters:
            self.placed[key] = clusters
            self.hooks.placed(key)
        if change.changed:
            log.debug(
                "saved %s: created %s, updated %s, unplaced %s",
                key,
                change.works_created,
                change.works_updated,
                change.works_unplaced,
                extra=fields(key),
            )
            self.hooks.works_changed({*change.works_created, *change.works_updated, *change.works_unplaced})
            self.hooks.policies({pkey})
        self._requeue(self.tracker.record(key, placed))
        await self._flush_events()

    async def _record_held(
        self, key: ResourceKey, matched: Matched, template: Obj, resource_id: ResourceId | None
    ) -> None:
        """Nothing moves (suspended, unsealable): the tracker learns what the members hold."""
        assert matched.governing is not None
        if resource_id is None:
            resource_id = self._resource_ids.get(key) or await self.store.resource_id_of(ref(key))
        previous = await self._previous(key, resource_id) if resource_id is not None else None
        clusters = previous.cluster_names if previous is not None else frozenset()
        placed = Placed(policy_key(matched.governing), clusters, _dependencies(matched))
        self._requeue(self.tracker.record(key, placed))

    # -- the inputs ----------------------------------------------------------------------------

    def _followers(self, key: ResourceKey) -> tuple[list[Follower], list[ResourceKey]]:
        """The workloads placed somewhere whose copies reference `key`, by key; and the
        workloads it must wait for (see `reconcile`)."""
        out = []
        waiting = self.tracker.pending(key)
        for workload, placed in self.tracker.followers(key):
            policy = self.policies.get(placed.policy)
            if isinstance(policy, PolicyLike):
                out.append(Follower(str(workload), policy, placed.clusters))
            else:
                waiting.append(workload)
        return out, waiting

    def _orphans(self, key: ResourceKey) -> bool:
        """The deletionPolicy of the policy that governed `key` (the ledger keeps it until the
        template is unplaced; after a restart, the sweep hands it over with the key)."""
        pkey = self.ledger.governing.get(key)
        policy = self.policies.get(pkey) if pkey is not None else None
        return isinstance(policy, PolicyLike) and policy.spec.deletion_policy == DeletionPolicy.ORPHAN

    async def _resource_id(self, key: ResourceKey, template: Obj) -> ResourceId:
        """The template's row, upserted only when what translation reads changed."""
        fp = fingerprint(template)
        known = self._resource_ids.get(key)
        if known is not None and self._resource_fps.get(key) == fp:
            return known
        meta = _meta(template)
        row = ResourceRow(
            api_group=key.group,
            api_version=str(template.get("apiVersion", "")),
            kind=key.kind,
            namespace=key.namespace,
            name=key.name,
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            template=template,
            last_writer=last_writer(template),
        )
        rid, new = await self.store.register_resource(row)
        if new:
            self._decisions.setdefault(key, None)  # known: nothing placed yet (no read needed)
        self._resource_ids[key] = rid
        self._resource_fps[key] = fp
        return rid

    async def _policy_id(self, policy: PolicyLike) -> PolicyId:
        pkey = policy_key(policy)
        known = self.policy_ids.get(pkey)
        if known is not None and pkey not in self._policies_dirty:
            return known
        raw = self.policies.raw(pkey) or {}
        pid = await self.store.upsert_policy(
            PolicyRow(
                kind=PolicyKind(policy.kind),
                namespace=pkey.namespace,
                name=pkey.name,
                uid=policy.metadata.uid or "",
                generation=policy.metadata.generation or 0,
                priority=policy.spec.priority,
                spec=raw.get("spec") or {},
                created_at=_parse_time(policy.metadata.creation_timestamp),
            )
        )
        self.policy_ids[pkey] = pid
        self._policies_dirty.discard(pkey)
        return pid

    async def _previous(self, key: ResourceKey, resource_id: ResourceId) -> Decision | None:
        if key in self._decisions:
            return self._decisions[key]
        rows = await self.store.placement_of(resource_id)
        if not rows:
            return None
        return Decision(
            targets=tuple(Target(r.cluster, r.replicas) for r in rows if r.chosen),
            excluded={r.cluster: as_reason(r.reason) for r in rows if not r.chosen},
        )

    # -- unplacing and deleting ----------------------------------------------------------------

    async def _unplace(self, key: ResourceKey, *, orphan: bool, gone: bool) -> None:
        """Nothing of `key` is to be in any member any more (its works go to deleting or
        orphaning), and its row is marked deleted: the store keeps no template it has no use
        for, and housekeeping purges the row once its works are done. Governed again, the
        template is registered anew."""
        resource_id = self._resource_ids.pop(key, None)
        self._resource_fps.pop(key, None)
        if resource_id is None:
            resource_id = await self.store.resource_id_of(ref(key))
        if resource_id is None:
            return
        change = await self.store.save_placement(
            resource_id, policy_id=None, decisions=[], desired_works=[], orphan=orphan
        )
        if change.works_unplaced:
            self.hooks.works_changed(change.works_unplaced)
        self.placed.pop(key, None)
        self._decisions.pop(key, None)
        self.rollouts.forget(resource_id)
        self.hooks.policies(self.ledger.note_rollout(key, None, None))
        await self.store.mark_resource_deleted(ref(key))
        if gone:
            self.hooks.policies(self.ledger.govern(key, None))

    async def _delete(self, key: ResourceKey, template: Obj) -> Result | None:
        """The template is being deleted: clean the members, then let it go."""
        await self._unplace(key, orphan=self._orphans(key), gone=False)
        self._requeue(self.tracker.record(key, None))
        resource_id = self._resource_ids.get(key) or await self.store.resource_id_of(ref(key))
        if resource_id is not None:
            remaining = [
                w for w in await self.store.works_of_resource(resource_id) if w.state.value != "orphaned"
            ]
            if remaining:
                return Result(requeue_after=self.deletion_recheck)
        await self.finalizer.set(template, False)
        if resource_id is not None:
            await self.store.mark_resource_deleted(ref(key))
        return None

    # -- events --------------------------------------------------------------------------------

    def _report_unsealable(self, key: ResourceKey, *, cluster: str | None = None) -> None:
        """A template (or an override's copy) holds a sensitive value and there is no key: said
        once per template, a log line and an ApplyFailed event."""
        if key in self._unsealable_reported:
            return
        self._unsealable_reported.add(key)
        where = f" (its copy for {cluster})" if cluster else ""
        message = (
            f"{key}{where}: not propagated: it holds sensitive values (a Secret's data or a field "
            f"marked sensitive) and the controller has no encryption key to store them with "
            f"(give it one: {KEY_FLAG})"
        )
        log.warning("%s", message, extra=fields(key))
        self._events.append(
            EventRow(type=EventType.APPLY_FAILED, message=message, cluster=cluster, ref=ref(key))
        )

    async def _flush_events(self) -> None:
        events, self._events = self._events, []
        if events:
            await self.store.append_events(events)

    def _requeue(self, keys: Iterable[ResourceKey]) -> None:
        for k in sorted(keys):
            self.hooks.requeue(k)


def _dependencies(matched: Matched) -> frozenset[ResourceKey]:
    return frozenset(map(dependency_key, matched.dependencies or ()))


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
