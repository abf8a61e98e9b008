"""The hub controller: templates and policies in, placements and works (in Postgres) out.

The reconcile contract (as client-go's, and for every work queue of this package): a key is
added whenever anything about it may have changed; `reconcile(key)` reads the *current* state
(the template and policies from the hub informers, the fleet from the registry, the previous
decision from Postgres) and moves one step toward it. An exception requeues the key with
per-key backoff; a result that needs time (a deletion waiting for its members) re-adds the key
after a delay. Reconciles are never told "what happened".

One reconcile of a template:
1. match it against the propagation policies (rule 4: priority, then age, then name);
2. place it with the winner (stable: the previous decision is an input);
3. translate it for every chosen cluster (overrides, ownership stamp, content hash);
4. save the decision and the works in one transaction — which writes nothing when nothing
   changed, so a controller restart costs no member write;
5. hint the propagators of the clusters whose works changed.
Deletion (a finalizer on templates and policies) moves every work to deleting or orphaning per
the policy's deletionPolicy, and releases the finalizer once the members are clean.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from federation.api import ConflictResolution
from federation.api.propagation import DeletionPolicy, PolicyLike
from federation.clusters import UNREACHABLE_TAINT_KEY, ClusterRegistry
from federation.clusters.changes import FleetChange
from federation.errors import ApiError, ConflictError, FederationError, KubeError, NotFoundError, StoreError
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.kinds import KindsTrigger
from federation.hub.policies import (
    OVERRIDE_KINDS,
    POLICY_GVKS,
    PROPAGATION_KINDS,
    AnyPolicy,
    PolicyCache,
    deleting,
    selector_gvks,
)
from federation.hub.sweep import Sweep
from federation.hub.sweep_adapters import HubLookup, member_copies, policy_orphans
from federation.hub.templates import FINALIZER, TemplateWatcher, fingerprint
from federation.informers import Handlers, InformerFactory, QueueShutDown, WorkQueue
from federation.kube import GVK, Discovery, KubeClient, Obj
from federation.logs import RECONCILE_ID
from federation.metrics import RECONCILE_DURATION, RECONCILE_ERRORS, RECONCILES
from federation.placement import OVERRIDDEN_CONDITION, ClusterSnapshot, Placer, Target, match_policies
from federation.placement import Decision as Placement
from federation.runtime import supervise
from federation.sealing import KEY_FLAG, Sealer
from federation.store import (
    ClusterDecision,
    DesiredWork,
    EventRow,
    EventType,
    ObjectRef,
    PolicyId,
    PolicyKind,
    PolicyRow,
    ResourceId,
    ResourceRow,
    Store,
)
from federation.tracing import span
from federation.translate import (
    Ownership,
    dependencies_of,
    format_policy,
    hub_id,
    resolve_overrides,
    translate,
)
from federation.translate.protected import Protection

log = logging.getLogger(__name__)

DEPENDENCY_GVKS = (
    GVK("", "v1", "ConfigMap"),
    GVK("", "v1", "Secret"),
    GVK("", "v1", "ServiceAccount"),
    GVK("", "v1", "PersistentVolumeClaim"),
)

#: The condition a propagation policy reports when templates it selects are never propagated.
SKIPPED_CONDITION = "Skipped"
#: The condition saying whether every cluster a policy names is a member of the fleet.
CLUSTERS_CONDITION = "ClustersResolved"
_SHOWN = 5

#: Told which clusters have works that changed (their propagators should claim now).
WorksListener = Callable[[Iterable[str]], None]


@dataclass
class ControllerSettings:
    workers: int = 32
    #: Re-placements per second when clusters fail over (a token bucket): a dying cluster must
    #: not turn into a stampede of thousands of re-placements at once.
    failover_rate: float = 50.0
    deletion_recheck: float = 1.0
    policy_status_interval: float = 3.0
    #: Seconds between level-based sweeps of works and member copies (`federation.hub.sweep`).
    sweep_interval: float = 60.0
    #: The safety-net poll of kinds the hub does not serve yet (CRD and APIService watches
    #: re-sync them as soon as they change).
    kinds_poll_interval: float = 10.0


@dataclass
class _Inherited:
    """A dependency (ConfigMap, Secret, ...) follows the workloads that reference it."""

    workloads: set[ResourceKey] = field(default_factory=set)


def _ref(key: ResourceKey) -> ObjectRef:
    return ObjectRef(api_group=key.group, kind=key.kind, namespace=key.namespace, name=key.name)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _policy_ref(policy: AnyPolicy) -> str:
    return format_policy(policy.kind, policy.metadata.namespace, policy.metadata.name)


class HubController:
    def __init__(
        self,
        *,
        hub: KubeClient,
        discovery: Discovery,
        factory: InformerFactory,
        store: Store,
        registry: ClusterRegistry,
        hub_id: str,
        on_works_changed: WorksListener,
        on_placed: Callable[[ResourceKey], None] = lambda _key: None,
        settings: ControllerSettings | None = None,
        protection: Protection | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        """`protection`: what is never propagated (`federation.translate.protected`); the Secrets
        MemberClusters reference are added from the registry as they come and go. ``sealer``
        (the store's) says which values are sensitive and keys their hashes; when it has no key,
        templates holding a sensitive value are not propagated (`_unsealable`)."""
        self.hub = hub
        self.discovery = discovery
        self.factory = factory
        self.store = store
        self.registry = registry
        self.hub_id = hub_id
        self.on_works_changed = on_works_changed
        self.on_placed = on_placed
        self.settings = settings or ControllerSettings()
        self.sealer = sealer
        self._unsealable_reported: set[ResourceKey] = set()
        self.policies = PolicyCache()
        self.templates = TemplateWatcher(factory=factory, discovery=discovery, on_change=self.enqueue)
        self.queue: WorkQueue[ResourceKey] = WorkQueue("hub-resources")
        self.placed: dict[ResourceKey, list[str]] = {}
        self.governing: dict[ResourceKey, PolicyKey] = {}
        self._decisions: dict[ResourceKey, Placement | None] = {}
        self._resource_ids: dict[ResourceKey, ResourceId] = {}
        self._resource_fps: dict[ResourceKey, str] = {}
        self._no_strategic_merge: set[GVK] = set()
        self._finalized: set[str] = set()
        self._policy_ids: dict[PolicyKey, PolicyId] = {}
        self._inherited: dict[ResourceKey, _Inherited] = defaultdict(_Inherited)
        self._placer: Placer | None = None
        self.kinds_trigger = KindsTrigger(
            factory=factory, discovery=discovery, poll_interval=self.settings.kinds_poll_interval
        )
        self._policies_dirty: set[PolicyKey] = set()
        self._failover_tokens = self.settings.failover_rate
        self._failover_at = time.monotonic()
        self._fleet_generation = 0
        self._pending_events: list[EventRow] = []
        self._losers: dict[PolicyKey, dict[ResourceKey, str]] = defaultdict(dict)
        self._lost_to: dict[ResourceKey, set[PolicyKey]] = {}
        self._protection = protection or Protection()
        self._skipped: dict[PolicyKey, dict[ResourceKey, str]] = defaultdict(dict)
        self._skipped_by: dict[ResourceKey, PolicyKey] = {}
        self.synced = anyio.Event()
        self.policies.subscribe(self._policy_changed)
        registry.subscribe(self._fleet_changed)

    # -- triggers -------------------------------------------------------------------------

    def enqueue(self, key: ResourceKey) -> None:
        self.queue.add(key)

    def _policy_changed(self, old: AnyPolicy | None, new: AnyPolicy | None) -> None:
        """Re-evaluate every template either version selects; watch newly selected kinds."""
        gvks: set[GVK] = set()
        for p in (old, new):
            if p is not None:
                gvks |= selector_gvks(p)
                self._policies_dirty.add(PolicyKey(p.kind, p.metadata.namespace or "", p.metadata.name))
        for key in self.templates.keys_of(gvks):
            self.enqueue(key)
        self.kinds_trigger.policy_changed()

    def _fleet_changed(self, change: FleetChange) -> None:
        """The fleet changed: every placement may change. A failover is rate limited."""
        self._placer = None
        self._fleet_generation += 1
        failover = change.failover
        keys = list(self.placed) if failover else self.templates.all_keys()
        if not failover:
            for key in keys:
                self.enqueue(key)
            return
        # Spread the re-placements out at `failover_rate` per second.
        for i, key in enumerate(sorted(keys)):
            self.queue.add_after(key, i / self.settings.failover_rate)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self._watch_policies()
        await self.kinds_trigger.watch_apis()
        await self._sync_kinds()
        await self.templates.wait_for_sync()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._kinds_loop)
            tg.start_soon(self._policy_status_loop)
            for _ in range(self.settings.workers):
                tg.start_soon(self._worker)
            tg.start_soon(supervise, "sweep", self._sweep)
            self.synced.set()

    async def _sweep(self) -> None:
        """Level-based convergence, at start and every `sweep_interval` (`federation.hub.sweep`)."""
        await Sweep(
            store=self.store,
            hub=HubLookup(templates=self.templates, hub=self.hub, discovery=self.discovery),
            members=lambda: member_copies(self.registry, self.hub_id),
            enqueue=self.accept_stale,
            orphans=policy_orphans(self.policies),
            hub_id=self.hub_id,
        ).run(interval=self.settings.sweep_interval)

    def accept_stale(self, key: ResourceKey, policy: PolicyKey | None) -> None:
        """A key the sweep found stale: reconcile it, with the policy that placed it (its
        deletionPolicy, should the template be gone, when this process never saw it governed)."""
        if policy is not None:
            self.governing.setdefault(key, policy)
        self.enqueue(key)

    async def _watch_policies(self) -> None:
        informers = []
        for gvk in POLICY_GVKS:
            try:
                res = await self.discovery.resource_for(gvk)
            except NotFoundError as exc:
                raise FederationError(
                    f"the hub does not serve {gvk.api_version} {gvk.kind}",
                    hint="kubectl apply -f deploy/crds/",
                ) from exc
            informer = self.factory.informer(res)
            informer.add_handler(
                Handlers(
                    on_add=self.policies.upsert,
                    on_update=lambda _o, n: self.policies.upsert(n),
                    on_delete=self.policies.remove,
                ),
                resync=False,
            )
            informers.append(informer)
        for informer in informers:
            await informer.wait_for_sync()

    def _wanted_kinds(self) -> set[GVK]:
        wanted = self.policies.selected_gvks()
        if any(p.spec.propagate_dependencies for p in self.policies.propagation()):
            wanted |= set(DEPENDENCY_GVKS)
        return wanted

    async def _sync_kinds(self) -> None:
        started = await self.templates.sync_kinds(self._wanted_kinds())
        if started:
            await self.templates.wait_for_sync()
            for key in self.templates.keys_of(started):
                self.enqueue(key)

    async def _kinds_loop(self) -> None:
        await self.kinds_trigger.run(self._sync_kinds, missing=lambda: bool(self.templates.missing))

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            started = time.perf_counter()
            RECONCILE_ID.set(uuid.uuid4().hex[:12])
            try:
                with span("reconcile", kind=key.kind, namespace=key.namespace, name=key.name):
                    requeue_after = await self.reconcile(key)
                self.queue.forget(key)
                if requeue_after is not None:
                    self.queue.add_after(key, requeue_after)
                RECONCILES.labels("resources", "ok").inc()
            except (KubeError, StoreError, FederationError) as exc:
                log.warning("reconcile %s failed: %s", key, exc, extra=_extra(key))
                RECONCILES.labels("resources", "error").inc()
                RECONCILE_ERRORS.labels("resources").inc()
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("reconcile %s crashed", key, extra=_extra(key))
                RECONCILE_ERRORS.labels("resources").inc()
                self.queue.add_rate_limited(key)
            finally:
                RECONCILE_DURATION.labels("resources").observe(time.perf_counter() - started)
                self.queue.done(key)

    # -- the reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: ResourceKey) -> float | None:
        template = self.templates.get(key)
        if template is None:
            await self._unplace(key, orphan=self._orphans(key), gone=True)
            return None
        match = match_policies(template, self.policies.propagation())
        self._note_losers(key, match.losers)
        policy = match.winner
        inherited = None if policy is not None else self._inherited_policy(key)
        governing = policy or inherited
        if _meta(template).get("deletionTimestamp"):
            return await self._delete(key, template)
        refusal = self.protection().refusal(template) if governing is not None else None
        self._note_skipped(key, governing, refusal.describe() if refusal is not None else None)
        if governing is None or refusal is not None:
            # Not (or never) ours to propagate: what was placed goes. A protected template's
            # copies are deleted even under deletionPolicy Orphan: a credential left in a
            # member is a leak.
            orphan = refusal is None and self._orphans(key)
            await self._unplace(key, orphan=orphan, gone=False)
            self.governing.pop(key, None)
            await self._set_finalizer(template, False)
            if refusal is not None:
                log.info("%s: %s", key, refusal.describe(), extra=_extra(key))
            return None
        self.governing[key] = PolicyKey(
            governing.kind, governing.metadata.namespace or "", governing.metadata.name
        )
        try:
            async with anyio.create_task_group() as tg:
                # The finalizer (a hub write) and the placement (Postgres) are independent:
                # overlap the two round trips. A deletion in between still finds the works.
                tg.start_soon(self._set_finalizer, template, True)
                await self._place(
                    key, template, governing, inherited=policy is None and inherited is not None
                )
        except BaseExceptionGroup as group:
            raise _first(group) from None
        if governing.spec.propagate_dependencies and policy is not None:
            self._note_dependencies(key, template)
        return None

    async def _place(
        self, key: ResourceKey, template: Obj, governing: PolicyLike, *, inherited: bool
    ) -> None:
        if self._unsealable(key, template):
            self._note_skipped(key, governing, UNSEALABLE)
            await self._flush_events()
            return
        resource_id = await self._resource_id(key, template)
        policy_id = await self._policy_id(governing)
        if governing.spec.suspend:
            return  # a suspended policy keeps its decisions; nothing moves
        if inherited:
            decision = self._follow_workloads(key)
        else:
            decision = await self._decide(key, resource_id, template, governing)
        await self._save(key, resource_id, policy_id, template, governing, decision)

    def protection(self) -> Protection:
        """The rules of what never propagates, with the MemberClusters' Secrets of now."""
        refs = self.registry.credential_refs()
        if refs != self._protection.member_credentials:
            self._protection = self._protection.with_member_credentials(refs)
        return self._protection

    def _note_skipped(self, key: ResourceKey, governing: PolicyLike | None, why: str | None) -> None:
        """Remember which policy selected a template that is not propagated, and why, for its
        `Skipped` condition."""
        previous = self._skipped_by.pop(key, None)
        if previous is not None:
            self._skipped[previous].pop(key, None)
        if governing is None or why is None:
            return
        pkey = PolicyKey(governing.kind, governing.metadata.namespace or "", governing.metadata.name)
        self._skipped[pkey][key] = why
        self._skipped_by[key] = pkey

    def _orphans(self, key: ResourceKey) -> bool:
        """The deletionPolicy of the policy that governed `key` (kept until its finalizer goes)."""
        pkey = self.governing.get(key)
        policy = self.policies.get(pkey) if pkey is not None else None
        return isinstance(policy, PolicyLike) and policy.spec.deletion_policy == DeletionPolicy.ORPHAN

    def _note_losers(self, key: ResourceKey, losers: Iterable[tuple[PolicyLike, str]]) -> None:
        """Remember which policies lost `key` (rule 4), for their Overridden condition."""
        for pkey in self._lost_to.pop(key, set()):
            self._losers[pkey].pop(key, None)
        lost = set()
        for loser, reason in losers:
            pkey = PolicyKey(loser.kind, loser.metadata.namespace or "", loser.metadata.name)
            self._losers[pkey][key] = reason
            lost.add(pkey)
        if lost:
            self._lost_to[key] = lost

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
        )
        rid, new = await self.store.register_resource(row)
        if new:
            self._decisions.setdefault(key, None)  # known: nothing placed yet (no read needed)
        self._resource_ids[key] = rid
        self._resource_fps[key] = fp
        return rid

    async def _policy_id(self, policy: PolicyLike) -> PolicyId:
        pkey = PolicyKey(policy.kind, policy.metadata.namespace or "", policy.metadata.name)
        known = self._policy_ids.get(pkey)
        if known is not None and pkey not in self._policies_dirty:
            return known
        raw = self.policies.raw(pkey) or {}
        created = _parse_time(policy.metadata.creation_timestamp)
        pid = await self.store.upsert_policy(
            PolicyRow(
                kind=PolicyKind(policy.kind),
                namespace=pkey.namespace,
                name=pkey.name,
                uid=policy.metadata.uid or "",
                generation=policy.metadata.generation or 0,
                priority=policy.spec.priority,
                spec=raw.get("spec") or {},
                created_at=created,
            )
        )
        self._policy_ids[pkey] = pid
        self._policies_dirty.discard(pkey)
        return pid

    def _placer_now(self) -> tuple[Placer, dict[str, ClusterSnapshot]]:
        snapshots = self.registry.snapshots()
        if self._placer is None:
            self._placer = Placer(snapshots)
        return self._placer, {s.name: s for s in snapshots}

    async def _previous(self, key: ResourceKey, resource_id: ResourceId) -> Placement | None:
        if key in self._decisions:
            return self._decisions[key]
        rows = await self.store.placement_of(resource_id)
        if not rows:
            return None
        return Placement(
            targets=tuple(Target(r.cluster, r.replicas) for r in rows if r.chosen),
            excluded={r.cluster: r.reason for r in rows if not r.chosen},
        )

    async def _decide(
        self, key: ResourceKey, resource_id: ResourceId, template: Obj, policy: PolicyLike
    ) -> Placement:
        placer, _ = self._placer_now()
        previous = await self._previous(key, resource_id)
        replicas = (
            (template.get("spec") or {}).get("replicas") if isinstance(template.get("spec"), dict) else None
        )
        decision = placer.decide(
            placement=policy.spec.placement,
            replicas=replicas if isinstance(replicas, int) else None,
            previous=previous,
        )
        if decision.unschedulable and previous is not None:
            # Keep what is placed rather than uninstall on a transient lack of clusters, but
            # only on clusters still in the fleet: one that is leaving must drain.
            _, members = self._placer_now()
            decision = Placement(
                targets=tuple(t for t in previous.targets if t.cluster in members),
                excluded={c: r for c, r in decision.excluded.items() if c not in previous.cluster_names},
                unschedulable=decision.unschedulable,
            )
        if previous is not None:
            self._report_failover(key, previous, decision)
        return decision

    def _report_failover(self, key: ResourceKey, previous: Placement, decision: Placement) -> None:
        moved = [
            c
            for c in previous.cluster_names - decision.cluster_names
            if UNREACHABLE_TAINT_KEY in decision.excluded.get(c, "")
        ]
        if moved:
            gained = sorted(decision.cluster_names - previous.cluster_names)
            self._pending_events.append(
                EventRow(
                    type=EventType.FAILOVER,
                    message=f"{key}: moved off unreachable {', '.join(sorted(moved))}"
                    + (f" to {', '.join(gained)}" if gained else ""),
                    ref=_ref(key),
                    details={"from": sorted(moved), "to": gained},
                )
            )

    async def _save(
        self,
        key: ResourceKey,
        resource_id: ResourceId,
        policy_id: PolicyId,
        template: Obj,
        policy: PolicyLike,
        decision: Placement,
    ) -> None:
        _, snapshots = self._placer_now()
        overrides = self.policies.overrides()
        ownership = Ownership(hub=hub_id(self.hub_id), policy=_policy_ref(policy))
        overwrite = policy.spec.conflict_resolution == ConflictResolution.OVERWRITE
        protection = self.protection()
        works: list[DesiredWork] = []
        rows: list[ClusterDecision] = []
        refused: dict[str, str] = {}
        for target in decision.targets:
            reason = "selected" if not decision.unschedulable else f"kept: {decision.unschedulable}"
            rows.append(ClusterDecision(target.cluster, True, target.replicas, reason))
            snap = snapshots.get(target.cluster)
            if snap is None:
                continue  # left the fleet meanwhile; the next fleet change re-places
            try:
                translated = translate(
                    template,
                    cluster=snap,
                    replicas=target.replicas,
                    overrides=resolve_overrides(template, cluster=snap, policies=overrides),
                    ownership=ownership,
                    retain_fields=policy.spec.retain_fields,
                    secrecy=self.sealer.secrecy if self.sealer is not None else None,
                )
            except FederationError as exc:
                # A broken or forbidden override: the work fails with the reason, the member's
                # copy (if any) is left as it is.
                refused[target.cluster] = str(exc)
                works.append(_refused_work(target.cluster, template, str(exc)))
                continue
            refusal = protection.refusal(translated.manifest)
            if refusal is not None:  # e.g. an override turned a Secret into a token Secret
                message = f"{key} on cluster {target.cluster}: the copy is {refusal.describe()}"
                refused[target.cluster] = message
                works.append(_refused_work(target.cluster, template, message))
                continue
            if self._unsealable(key, translated.manifest, cluster=target.cluster):
                continue  # an override put a sensitive value in: that copy cannot be stored
            works.append(
                DesiredWork(target.cluster, translated.manifest, translated.hash, overwrite=overwrite)
            )
        for cluster, reason in decision.excluded.items():
            rows.append(ClusterDecision(cluster, False, None, reason))
        change = await self.store.save_placement(
            resource_id,
            policy_id=policy_id,
            decisions=rows,
            desired_works=works,
            unschedulable=decision.unschedulable,
            orphan=policy.spec.deletion_policy == DeletionPolicy.ORPHAN,
        )
        for cluster in {*change.works_created, *change.works_updated} & refused.keys():
            # Once per refusal (the work changed now), not on every reconcile.
            log.warning("%s", refused[cluster], extra={**_extra(key), "cluster": cluster})
            self._pending_events.append(
                EventRow(
                    type=EventType.APPLY_FAILED, message=refused[cluster], cluster=cluster, ref=_ref(key)
                )
            )
        self._decisions[key] = decision
        placed = sorted(decision.cluster_names)
        if self.placed.get(key) != placed:
            self.placed[key] = placed
            self.on_placed(key)  # the aggregated status depends on where it is placed
        if change.changed:
            log.debug(
                "saved %s: created %s, updated %s, unplaced %s",
                key,
                change.works_created,
                change.works_updated,
                change.works_unplaced,
                extra=_extra(key),
            )
            self.on_works_changed({*change.works_created, *change.works_updated, *change.works_unplaced})
        await self._flush_events()

    def _unsealable(self, key: ResourceKey, manifest: Obj, *, cluster: str | None = None) -> bool:
        """Whether ``manifest`` holds a sensitive value while no encryption key is configured:
        then it is not propagated (its row would hold the value in plaintext, which the store
        refuses). Said once per template: a log line and an ApplyFailed event."""
        if self.sealer is None or self.sealer.available or not self.sealer.sensitive(manifest):
            return False
        if key not in self._unsealable_reported:
            self._unsealable_reported.add(key)
            where = f" (its copy for {cluster})" if cluster else ""
            message = (
                f"{key}{where}: not propagated: it holds sensitive values (a Secret's data or a field "
                f"marked sensitive) and the controller has no encryption key to store them with "
                f"(give it one: {KEY_FLAG})"
            )
            log.warning("%s", message, extra=_extra(key))
            self._pending_events.append(
                EventRow(type=EventType.APPLY_FAILED, message=message, cluster=cluster, ref=_ref(key))
            )
        return True

    async def _unplace(self, key: ResourceKey, *, orphan: bool, gone: bool) -> None:
        """Nothing of `key` is to be in any member any more (its works go to deleting or
        orphaning), and its row is marked deleted: the store keeps no template it has no use
        for, and housekeeping purges the row once its works are done (`purge_deleted_resources`).
        Governed again, the template is registered anew."""
        resource_id = self._resource_ids.pop(key, None)
        self._resource_fps.pop(key, None)
        if resource_id is None:
            resource_id = await self.store.resource_id_of(_ref(key))
        if resource_id is None:
            return
        change = await self.store.save_placement(
            resource_id, policy_id=None, decisions=[], desired_works=[], orphan=orphan
        )
        if change.works_unplaced:
            self.on_works_changed(change.works_unplaced)
        self.placed.pop(key, None)
        self._decisions.pop(key, None)
        await self.store.mark_resource_deleted(_ref(key))
        if gone:
            self.governing.pop(key, None)

    async def _delete(self, key: ResourceKey, template: Obj) -> float | None:
        """The template is being deleted: clean the members, then let it go."""
        await self._unplace(key, orphan=self._orphans(key), gone=False)
        resource_id = self._resource_ids.get(key) or await self.store.resource_id_of(_ref(key))
        if resource_id is not None:
            remaining = [
                w for w in await self.store.works_of_resource(resource_id) if w.state.value != "orphaned"
            ]
            if remaining:
                return self.settings.deletion_recheck
        await self._set_finalizer(template, False)
        if resource_id is not None:
            await self.store.mark_resource_deleted(_ref(key))
        return None

    async def _set_finalizer(self, template: Obj, present: bool) -> None:
        """Add or remove our finalizer without clobbering anyone else's.

        Built-in kinds take a strategic merge patch, which merges into the finalizer list (no
        precondition, so no conflict with our own concurrent status writes); custom resources
        do not support it, and get a merge patch made conditional by the resourceVersion.
        """
        meta = _meta(template)
        finalizers = list(meta.get("finalizers") or [])
        uid = str(meta.get("uid", ""))
        # The cache may not show our own patch yet (the watch lags under load): remember it.
        if (FINALIZER in finalizers or uid in self._finalized) == present:
            return
        res = await self.discovery.resource_for(GVK.of(template))
        name, namespace = str(meta["name"]), meta.get("namespace") if res.namespaced else None
        try:
            if res.gvk not in self._no_strategic_merge:
                patch = (
                    {"metadata": {"finalizers": [FINALIZER]}}
                    if present
                    else {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}}
                )
                try:
                    await self.hub.patch(
                        res,
                        name,
                        patch,
                        namespace=namespace,
                        patch_type="application/strategic-merge-patch+json",
                    )
                    return
                except ApiError as exc:
                    if exc.status != 415:
                        raise
                    self._no_strategic_merge.add(res.gvk)  # a custom resource
            finalizers = [*finalizers, FINALIZER] if present else [f for f in finalizers if f != FINALIZER]
            await self.hub.patch(
                res,
                name,
                {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}},
                namespace=namespace,
            )
            self._note_finalized(uid, present)
        except NotFoundError:
            return
        except ConflictError:
            raise  # requeued with backoff; the next attempt reads the newer object

    def _note_finalized(self, uid: str, present: bool) -> None:
        if present:
            self._finalized.add(uid)
        else:
            self._finalized.discard(uid)

    # -- dependencies (propagateDependencies) ----------------------------------------------

    def _note_dependencies(self, key: ResourceKey, template: Obj) -> None:
        for dep in dependencies_of(template):
            dkey = ResourceKey(
                GVK.parse(dep.api_version, dep.kind).group, dep.kind, dep.namespace or "", dep.name
            )
            inherited = self._inherited[dkey]
            if key not in inherited.workloads:
                inherited.workloads.add(key)
            self.enqueue(dkey)

    def _inherited_policy(self, key: ResourceKey) -> PolicyLike | None:
        inherited = self._inherited.get(key)
        if inherited is None:
            return None
        for wkey in sorted(inherited.workloads):
            pkey = self.governing.get(wkey)
            policy = self.policies.get(pkey) if pkey is not None else None
            if isinstance(policy, PolicyLike) and policy.spec.propagate_dependencies:
                return policy
        return None

    def _follow_workloads(self, key: ResourceKey) -> Placement:
        clusters: set[str] = set()
        for wkey in self._inherited[key].workloads:
            clusters |= set(self.placed.get(wkey, ()))
        _, snapshots = self._placer_now()
        return Placement(
            targets=tuple(Target(c, None) for c in sorted(clusters)),
            excluded={c: "no workload referencing it is placed here" for c in snapshots if c not in clusters},
        )

    # -- events and policy status ------------------------------------------------------------

    async def _flush_events(self) -> None:
        events, self._pending_events = self._pending_events, []
        if events:
            await self.store.append_events(events)

    async def _policy_status_loop(self) -> None:
        while True:
            await anyio.sleep(self.settings.policy_status_interval)
            try:
                await self.ensure_policy_finalizers()
            except KubeError as exc:
                log.warning("policy finalizers: %s", exc)
            for pkey, policy in self.policies.all():
                try:
                    await self._write_policy_status(pkey, policy)
                except (KubeError, StoreError) as exc:
                    log.warning("status of %s not written: %s", pkey, exc)

    async def _write_policy_status(self, pkey: PolicyKey, policy: AnyPolicy) -> None:
        raw = self.policies.raw(pkey) or {}
        current = raw.get("status") or {}
        generation = policy.metadata.generation
        clusters = _clusters_resolved(
            _named_clusters(policy), {m.name for m in self.registry.members()}, generation
        )
        if policy.kind in OVERRIDE_KINDS:
            status: dict[str, Any] = {
                "observedGeneration": generation,
                "conditions": _keep_times(current.get("conditions") or [], [clusters]),
            }
        else:
            pid = self._policy_ids.get(pkey)
            summary = await self.store.policy_summary(pid) if pid is not None else None
            losing = self._losses(pkey)
            conditions = [_propagated(summary, generation)]
            conditions.append(
                {
                    "type": OVERRIDDEN_CONDITION,
                    "status": "True" if losing else "False",
                    "reason": "LowerPrecedence" if losing else "Governing",
                    "message": "; ".join(losing[:5]) if losing else "no other policy takes precedence",
                    "observedGeneration": generation,
                }
            )
            skipped = [f"{key}: {why}" for key, why in sorted(self._skipped.get(pkey, {}).items())]
            conditions.append(
                {
                    "type": SKIPPED_CONDITION,
                    "status": "True" if skipped else "False",
                    "reason": "ProtectedResources" if skipped else "NothingSkipped",
                    "message": _listed(skipped, f"{len(skipped)} selected template(s) are never propagated")
                    if skipped
                    else "every template this policy governs may be propagated",
                    "observedGeneration": generation,
                }
            )
            conditions.append(clusters)
            if deleting(policy):
                await self._release_policy(pkey, raw)
            status = {
                "observedGeneration": generation,
                "matchedResources": summary.matched if summary else 0,
                "conditions": _keep_times(current.get("conditions") or [], conditions),
            }
        if all(current.get(k) == v for k, v in status.items()):
            return
        res = await self.discovery.resource_for(GVK("federation.io", "v1alpha1", pkey.kind))
        await self.hub.patch(
            res, pkey.name, {"status": status}, namespace=pkey.namespace or None, subresource="status"
        )

    def _losses(self, pkey: PolicyKey) -> list[str]:
        """Templates this policy selects but another policy governs (rule 4's losers)."""
        return [f"{key}: {reason}" for key, reason in sorted(self._losers.get(pkey, {}).items())]

    async def _release_policy(self, pkey: PolicyKey, raw: Obj) -> None:
        """A deleted policy's finalizer goes once no template is governed through it any more."""
        if any(g == pkey for g in self.governing.values()):
            return
        finalizers = list(_meta(raw).get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        res = await self.discovery.resource_for(GVK("federation.io", "v1alpha1", pkey.kind))
        await self.hub.patch(
            res,
            pkey.name,
            {
                "metadata": {
                    "finalizers": [f for f in finalizers if f != FINALIZER],
                    "resourceVersion": _meta(raw).get("resourceVersion"),
                }
            },
            namespace=pkey.namespace or None,
        )

    async def ensure_policy_finalizers(self) -> None:
        """Every propagation policy carries our finalizer, so its deletion cleans up first."""
        for pkey, policy in self.policies.all():
            if policy.kind not in PROPAGATION_KINDS or deleting(policy):
                continue
            raw = self.policies.raw(pkey) or {}
            finalizers = list(_meta(raw).get("finalizers") or [])
            if FINALIZER in finalizers:
                continue
            res = await self.discovery.resource_for(GVK("federation.io", "v1alpha1", pkey.kind))
            try:
                await self.hub.patch(
                    res,
                    pkey.name,
                    {
                        "metadata": {
                            "finalizers": [*finalizers, FINALIZER],
                            "resourceVersion": _meta(raw).get("resourceVersion"),
                        }
                    },
                    namespace=pkey.namespace or None,
                )
            except (ConflictError, NotFoundError):
                continue  # the next policy event brings the newer object


UNSEALABLE = (
    f"not propagated: it holds sensitive values and the controller has no encryption key ({KEY_FLAG})"
)


def _listed(items: list[str], head: str) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"{head}: " + "; ".join(items[:_SHOWN]) + more


def _named_clusters(policy: AnyPolicy) -> dict[str, tuple[str, ...]]:
    """Every cluster a policy names, by the field that names it."""
    named: dict[str, tuple[str, ...]] = {}
    if isinstance(policy, PolicyLike):
        placement = policy.spec.placement
        named["spec.placement.clusterNames"] = placement.cluster_names or ()
        named["spec.placement.excludeClusters"] = placement.exclude_clusters
        for i, weight in enumerate(placement.scheduling.weights or ()):
            named[f"spec.placement.replicaScheduling.weights[{i}].clusterNames"] = weight.cluster_names or ()
    else:
        for i, rule in enumerate(policy.spec.rules):
            target = rule.target_clusters
            named[f"spec.rules[{i}].targetClusters.clusterNames"] = (
                (target.cluster_names or ()) if target else ()
            )
    return {field: names for field, names in named.items() if names}


def _clusters_resolved(
    named: dict[str, tuple[str, ...]], members: set[str], generation: int | None
) -> dict[str, Any]:
    """``ClustersResolved``: whether every cluster a policy names is a member of the fleet (a
    typo in clusterNames otherwise just places nothing there, silently)."""
    unknown = [f"{field}: {name}" for field, names in named.items() for name in names if name not in members]
    return {
        "type": CLUSTERS_CONDITION,
        "status": "False" if unknown else "True",
        "reason": "UnknownClusters" if unknown else "AllClustersKnown",
        "message": _listed(unknown, "not a member of the fleet")
        if unknown
        else "every cluster this policy names is a member of the fleet",
        "observedGeneration": generation,
    }


def _refused_work(cluster: str, template: Obj, message: str) -> DesiredWork:
    """A work that fails with `message` and applies nothing: its manifest is only the template's
    identity (what deleting or orphaning the member copy later needs), its hash one no manifest
    has (so the fixed translation is written as soon as there is one)."""
    meta = _meta(template)
    identity: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("namespace"):
        identity["namespace"] = meta["namespace"]
    stub = {"apiVersion": template.get("apiVersion"), "kind": template.get("kind"), "metadata": identity}
    digest = hashlib.sha256(message.encode()).hexdigest()[:24]
    return DesiredWork(cluster, stub, f"refused-{digest}", error=message)


def _propagated(summary: Any, generation: int | None) -> dict[str, Any]:
    if summary is None or summary.matched == 0:
        return {
            "type": "federation.io/Propagated",
            "status": "False",
            "reason": "NothingMatched",
            "message": "no template is governed by this policy",
            "observedGeneration": generation,
        }
    ok = summary.applied == summary.placed and summary.conflicted == 0 and summary.failed == 0
    reason = (
        "Conflict"
        if summary.conflicted
        else "ApplyFailed"
        if summary.failed
        else "Applied"
        if ok
        else "Progressing"
    )
    return {
        "type": "federation.io/Propagated",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": (
            f"matched {summary.matched}, placed {summary.placed}, applied {summary.applied}, "
            f"healthy {summary.healthy}, conflicted {summary.conflicted}, failed {summary.failed}, "
            f"pending {summary.pending}"
        ),
        "observedGeneration": generation,
    }


def _keep_times(old: list[Mapping[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in old}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and all(before.get(k) == cond.get(k) for k in ("status", "reason", "message")):
            out.append(dict(before))
            continue
        keep = before is not None and before.get("status") == cond["status"]
        out.append({**cond, "lastTransitionTime": before["lastTransitionTime"] if keep and before else now})
    return out


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error of a task group's exception group (the worker handles it as such)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _extra(key: ResourceKey) -> dict[str, str]:
    return {"namespace": key.namespace, "object_name": key.name, "kind": key.kind}
