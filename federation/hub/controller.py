"""The hub controller: templates and policies in, placements and works (in Postgres) out.

This module wires the parts and detects what to do; each part has one job and its own module:

- the *detector* (here): hub events → keys. A template event queues its key (and, through the
  `DependencyTracker`, the dependencies it references or stopped referencing); a policy event
  queues every template of the kinds either version selects, and the policy's status; a fleet
  change queues every template (a failover: only the placed ones, rate limited) and every
  policy's status (``ClustersResolved``). It also keeps the hub watching the kinds policies
  select (`TemplateWatcher`).
- the *binder* (`federation.hub.binder`): one template's reconcile — the pure pipeline
  (`federation.hub.pipeline`: match → place → dependencies → translate) with the I/O around it;
- the *dependency tracker* (`federation.hub.dependencies`): where the workloads a dependency
  follows are placed, as a function of now;
- *finalizers* (`federation.hub.finalizers`) on propagation policies (templates carry none:
  a deleted template is unplaced from its rows in Postgres, by its delete event or the sweep);
- *policy status* (`federation.hub.policy_status`): a keyed queue of policies, driven by the
  changes the others report (`federation.hub.ledger`);
- the *sweep* (`federation.hub.sweep`): level-based convergence of what Postgres and the members
  hold, which queues stale keys here; and the kinds to watch (`federation.hub.kinds`).

Every keyed loop runs on `federation.runtime.run_workers` (the templates' one is named
"resources" for the metrics, the policies' one "policies").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from federation.api.propagation import PolicyLike
from federation.clusters import ClusterRegistry
from federation.errors import FederationError, NotFoundError
from federation.hub.binder import Binder, BinderHooks, fields
from federation.hub.dependencies import DependencyTracker
from federation.hub.detector import Detector
from federation.hub.finalizers import Finalizers
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.kinds import KindsTrigger
from federation.hub.ledger import PolicyLedger
from federation.hub.pipeline import Fleet
from federation.hub.policies import POLICY_GVKS, AnyPolicy, PolicyCache
from federation.hub.policy_status import PolicyStatus, PolicyStatusSettings
from federation.hub.sweep import Sweep
from federation.hub.sweep_adapters import HubLookup, member_copies, policy_orphans
from federation.hub.templates import TemplateWatcher
from federation.informers import Handlers, InformerFactory, Priority, WorkQueue
from federation.kube import GVK, Discovery, KubeClient
from federation.runtime import run_workers, supervise
from federation.sealing import Sealer
from federation.store import Store
from federation.translate.protected import Protection

log = logging.getLogger(__name__)

DEPENDENCY_GVKS = (
    GVK("", "v1", "ConfigMap"),
    GVK("", "v1", "Secret"),
    GVK("", "v1", "ServiceAccount"),
    GVK("", "v1", "PersistentVolumeClaim"),
)

#: Told which clusters have works that changed (their propagators should claim now).
WorksListener = Callable[[Iterable[str]], None]


@dataclass
class ControllerSettings:
    workers: int = 32
    #: Re-placements per second when clusters fail over (a token bucket): a dying cluster must
    #: not turn into a stampede of thousands of re-placements at once.
    failover_rate: float = 50.0
    deletion_recheck: float = 1.0
    #: How soon a policy whose works are in flight has its status looked at again.
    policy_status_interval: float = 3.0
    #: Every policy's status, as a safety net (policy status is otherwise queued by change).
    policy_status_resync: float = 60.0
    #: Seconds between level-based sweeps of works and member copies (`federation.hub.sweep`).
    sweep_interval: float = 60.0
    #: The safety-net poll of kinds the hub does not serve yet (CRD and APIService watches
    #: re-sync them as soon as they change).
    kinds_poll_interval: float = 10.0


class _StatusWrites(Finalizers):
    """The policy status part's hub writes: finalizers and the status subresource."""

    async def write_status(self, pkey: PolicyKey, status: dict[str, Any]) -> None:
        res = await self.discovery.resource_for(GVK("federation.io", "v1alpha1", pkey.kind))
        await self.hub.patch(
            res, pkey.name, {"status": status}, namespace=pkey.namespace or None, subresource="status"
        )


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
        templates holding a sensitive value are not propagated."""
        self.hub = hub
        self.discovery = discovery
        self.factory = factory
        self.store = store
        self.registry = registry
        self.settings = settings or ControllerSettings()
        self.policies = PolicyCache()
        self.templates = TemplateWatcher(factory=factory, discovery=discovery, on_change=self._template_event)
        self.queue: WorkQueue[ResourceKey] = WorkQueue("hub-resources")
        self.tracker = DependencyTracker()
        self.ledger = PolicyLedger()
        self._protection = protection or Protection()
        self._fleet: Fleet | None = None
        self.hub_id = hub_id
        self.kinds_trigger = KindsTrigger(
            factory=factory, discovery=discovery, poll_interval=self.settings.kinds_poll_interval
        )
        writes = _StatusWrites(hub=hub, discovery=discovery)
        self.binder = Binder(
            templates=self.templates.get,
            policies=self.policies,
            store=store,
            fleet=self.fleet,
            protection=self.protection,
            finalizer=writes,
            hub_id=hub_id,
            tracker=self.tracker,
            ledger=self.ledger,
            hooks=BinderHooks(
                works_changed=on_works_changed,
                placed=on_placed,
                requeue=self.enqueue,
                policies=self._policies_changed,
            ),
            sealer=sealer,
            deletion_recheck=self.settings.deletion_recheck,
        )
        self.policy_status = PolicyStatus(
            policies=self.policies,
            ledger=self.ledger,
            policy_ids=self.binder.policy_ids,
            summary=store.policy_summary,
            members=lambda: {m.name for m in registry.members()},
            writes=writes,
            settings=PolicyStatusSettings(
                interval=self.settings.policy_status_interval, resync=self.settings.policy_status_resync
            ),
        )
        #: Where each template is placed, as saved (the status writer reads it).
        self.placed = self.binder.placed
        self.detector = Detector(
            queue=self.queue,
            template=self.templates.get,
            keys_of=self.templates.keys_of,
            all_keys=self.templates.all_keys,
            placed=lambda: list(self.placed),
            tracker=self.tracker,
            policy_changed=self._one_policy_changed,
            fleet_changed=self._fleet_changed,
            failover_rate=self.settings.failover_rate,
        )
        self.synced = anyio.Event()
        self.policies.subscribe(self._policy_changed)
        registry.subscribe(self.detector.fleet_event)

    # -- the detector's hooks ------------------------------------------------------------

    def enqueue(self, key: ResourceKey, priority: Priority = Priority.NORMAL) -> None:
        self.queue.add(key, priority)

    def _template_event(self, key: ResourceKey, priority: Priority) -> None:
        self.detector.template_event(key, priority)

    def _policies_changed(self, pkeys: Iterable[PolicyKey]) -> None:
        self.policy_status.mark(*pkeys)

    def _policy_changed(self, old: AnyPolicy | None, new: AnyPolicy | None) -> None:
        self.detector.policy_event(old, new)
        self.kinds_trigger.policy_changed()  # watch newly selected kinds

    def _one_policy_changed(self, pkey: PolicyKey) -> None:
        self.binder.policy_changed(pkey)
        self.policy_status.mark(pkey)

    def _fleet_changed(self) -> None:
        self._fleet = None
        self.policy_status.mark_all()

    def member_status_changed(self, key: ResourceKey) -> None:
        """A member's copy of `key` changed: the status of the policy governing it may have."""
        pkey = self.ledger.governing.get(key)
        if pkey is not None:
            self.policy_status.mark(pkey)

    # -- what the binder reads ---------------------------------------------------------------

    def fleet(self) -> Fleet:
        """The fleet snapshot every placement is decided against (until the fleet changes)."""
        if self._fleet is None:
            self._fleet = Fleet.of(self.registry.snapshots())
        return self._fleet

    def protection(self) -> Protection:
        """The rules of what never propagates, with the MemberClusters' Secrets of now."""
        refs = self.registry.credential_refs()
        if refs != self._protection.member_credentials:
            self._protection = self._protection.with_member_credentials(refs)
        return self._protection

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self._watch_policies()
        await self.kinds_trigger.watch_apis()
        await self._sync_kinds()
        await self.templates.wait_for_sync()
        self.tracker.seal()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._kinds_loop)
            tg.start_soon(self.policy_status.run)
            started = anyio.Event()
            tg.start_soon(self._run_workers, started)
            await started.wait()
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
            self.ledger.governing.setdefault(key, policy)
        self.enqueue(key, Priority.LOW)  # a resync: an edit made meanwhile goes first

    async def _run_workers(self, started: anyio.Event) -> None:
        await run_workers(
            self.queue,
            self.binder.reconcile,
            name="resources",
            workers=self.settings.workers,
            describe=fields,
            started=started,
        )

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
        if any(
            isinstance(p, PolicyLike) and p.spec.propagate_dependencies for p in self.policies.propagation()
        ):
            wanted |= set(DEPENDENCY_GVKS)
        return wanted

    async def _sync_kinds(self, priority: Priority = Priority.LOW) -> None:
        """Watch the kinds policies select now. At start their initial list is a relist of what
        is placed already (LOW: an edit goes first); a kind watched later because a policy now
        selects it brings templates nobody placed yet — a rollout, queued as creations are."""
        started = await self.templates.sync_kinds(self._wanted_kinds())
        if started:
            await self.templates.wait_for_sync()
            for key in self.templates.keys_of(started):
                self.enqueue(key, priority)

    async def _kinds_loop(self) -> None:
        await self.kinds_trigger.run(
            lambda: self._sync_kinds(Priority.CREATED), missing=lambda: bool(self.templates.missing)
        )
