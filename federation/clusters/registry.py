"""The member registry: which clusters exist, how to reach them, and how healthy they are.

Clusters come from `MemberCluster` objects on the hub (credentials in the Secret the object
names) and/or a clusters file (bootstrap and development). For each one the registry owns the
connection (a `KubeClient`, its `Discovery`, and the `InformerFactory` every member-side watch
of that cluster goes through), probes `/readyz` periodically, and publishes what placement needs
as `ClusterSnapshot`s. Subscribers are told when the fleet changes (a cluster joined or left,
became ready or not, crossed the failover grace period, or changed labels or taints).

MemberClusters are reconciled by name, level-based (`federation.runtime.run_workers` over a
`WorkQueue[str]`): the informer only says which name may have changed; the reconcile reads the
object from the informer's cache — absent means deleted — and moves the registry toward it
(join, reconnect on new credentials, labels and taints, drain behind the finalizer, leave). A
burst of updates is one reconcile; a deletion and a re-creation under the same name are told
apart by the object's uid.

Why one module of this length: joining, leaving, connecting and probing all write one table of
members and tell one list of listeners, in an order that matters (a cluster that leaves has its
works recorded abandoned before placement hears of it). What has a job of its own is beside it:
`credentials` (the kubeconfig Secret, behind its trust boundary), `drain` (the finalizer's
patches), `health` (the probe history and the failover grace period), `changes` (what the
listeners are told).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from federation.api import ClusterEntry, MemberCluster, Taint
from federation.clusters.capacity import Capacity
from federation.clusters.capacity_watch import CapacityWatcher, as_quantities
from federation.clusters.changes import FleetChange, FleetChangeKind, FleetListener
from federation.clusters.credentials import connect_from_secret
from federation.clusters.drain import ABANDONED, DrainHooks, finalizer_patch, forced, has_finalizer
from federation.clusters.health import (
    NO_READY_NODES,
    NO_READY_NODES_FAILOVER,
    UNREACHABLE_TAINT,
    HealthTracker,
)
from federation.errors import ConflictError, FederationError, KubeError, NotFoundError, StoreError
from federation.informers import Handlers, Informer, InformerFactory, WorkQueue
from federation.informers.clock import Clock, RealClock
from federation.kube import GVK, Discovery, KubeClient, Obj
from federation.kube.throttle import RateLimit
from federation.metrics import CLUSTER_READY
from federation.placement import Allocatable, ClusterSnapshot
from federation.runtime import run_workers
from federation.runtime.workers import process
from federation.status.bounds import cut

log = logging.getLogger(__name__)

MEMBERCLUSTER_GVK = GVK("federation.io", "v1alpha1", "MemberCluster")
#: The MemberCluster loop's name in metrics and log lines.
_LOOP = "member-clusters"


@dataclass
class Member:
    """One member cluster: identity, what placement sees, and the connection to it."""

    name: str
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    source: str  # "clusters file" or "MemberCluster NAME"
    client: KubeClient | None = None
    discovery: Discovery | None = None
    factory: InformerFactory | None = None
    connect_error: str | None = None
    allocatable: Allocatable | None = None
    available_replicas: int | None = None
    from_hub: bool = False
    secret_ref: tuple[str, str, str] | None = None
    scope: anyio.CancelScope | None = field(default=None, repr=False)
    #: Its MemberCluster is being deleted: out of placement, still connected until drained.
    draining: bool = False
    #: The MemberCluster as last seen (its finalizers and resourceVersion, for our patches).
    seen: Obj | None = field(default=None, repr=False)
    #: Measured from its nodes and pods (`capacity_watch`); None until then, or when refused.
    capacity: Capacity | None = None
    #: When its nodes last all stopped being Ready (registry clock); None while some are.
    no_ready_since: float | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None


@dataclass
class RegistrySettings:
    probe_interval: float = 10.0
    probe_timeout: float = 5.0
    grace_period: float = 60.0
    #: How often MemberCluster status is re-written when nothing changed (lastProbeTime).
    status_refresh: float = 60.0
    #: The hub namespaces member kubeconfig Secrets may be read from (None: any). A
    #: MemberCluster naming a Secret elsewhere is not connected, and nothing is read for it:
    #: whoever may write a MemberCluster must not make the controller read, and use as a
    #: member's credentials, a Secret of a tenant's namespace.
    credentials_namespaces: frozenset[str] | None = None
    #: Each member's client has its own token bucket (`federation.kube.throttle`): a slow or
    #: throttled member never stalls the others, and a rollout burst never floods a member.
    member_rate_limit: RateLimit = field(default_factory=RateLimit)
    #: Members whose client has a limit of its own (a small apiserver, a fragile link).
    member_rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    #: Measure each member's capacity from its nodes and pods (`capacity_watch`).
    measure_capacity: bool = True
    #: Seconds between capacity sums of a member (events in between are summed once).
    capacity_interval: float = 5.0


class ClusterRegistry:
    def __init__(
        self,
        *,
        hub: KubeClient | None = None,
        hub_discovery: Discovery | None = None,
        hub_factory: InformerFactory | None = None,
        clusters_file: Path | None = None,
        settings: RegistrySettings | None = None,
        clock: Clock | None = None,
        reflector_options: dict[str, Any] | None = None,
        drain: DrainHooks | None = None,
    ) -> None:
        """With `drain` (the state store), MemberClusters get our finalizer and a deleted one
        is drained before it goes (see federation/clusters/drain.py); without, it goes at once."""
        self.hub = hub
        self.drain = drain
        #: Whether this registry writes what it learns to the hub and the store (MemberCluster
        #: status and our finalizer, a drained cluster released, an undrained one's works
        #: recorded abandoned). With several replicas only the leader's does (`lead`); the others
        #: connect and probe the members they need and never write, so two never disagree.
        self.writes_hub = True
        self.hub_discovery = hub_discovery
        self.hub_factory = hub_factory
        self.clusters_file = clusters_file
        self.settings = settings or RegistrySettings()
        self.clock = clock or RealClock()
        self.health = HealthTracker(grace_period=self.settings.grace_period, clock=self.clock)
        self.reflector_options = reflector_options or {}
        self._members: dict[str, Member] = {}
        self._listeners: list[FleetListener] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._status_written: dict[str, tuple[str, float]] = {}
        self._unreachable: set[str] = set()
        self._nodes_down: set[str] = set()
        self._credentials: dict[str, tuple[str, str]] = {}
        self._member_clusters: Informer | None = None
        #: Names of MemberClusters that may have changed (level-based: see the module docstring).
        self.queue: WorkQueue[str] = WorkQueue(_LOOP, clock=self.clock)
        self.loaded = anyio.Event()

    # -- what others read ------------------------------------------------------------

    def subscribe(self, listener: FleetListener) -> None:
        self._listeners.append(listener)

    def listeners_mark(self) -> int:
        """A mark to `drop_listeners` back to: the registry outlives a replica's leaderships,
        and what a leadership's hub side subscribed must not outlive it."""
        return len(self._listeners)

    def drop_listeners(self, mark: int) -> None:
        del self._listeners[mark:]

    def members(self) -> list[Member]:
        return [self._members[n] for n in sorted(self._members)]

    def get(self, name: str) -> Member | None:
        return self._members.get(name)

    def snapshots(self) -> list[ClusterSnapshot]:
        """The fleet as placement sees it now: NotReady clusters, and the failover taint."""
        out = []
        for m in self.members():
            if m.draining:
                continue  # leaving: nothing new goes there, what is there is re-placed
            taints = self.taints_of(m)
            free = m.capacity.available if m.capacity is not None else None
            out.append(
                ClusterSnapshot(
                    name=m.name,
                    labels=dict(m.labels),
                    taints=taints,
                    ready=m.connected and self.health.is_ready(m.name),
                    allocatable=m.allocatable or free,
                    available_replicas=m.available_replicas,
                    free=free,
                )
            )
        return out

    def taints_of(self, m: Member) -> tuple[Taint, ...]:
        """The member's taints and the registry's own: unreachable past the grace period, no
        Ready node (NoSchedule, then NoExecute past the grace period)."""
        taints = m.taints
        if self.health.unreachable(m.name) and UNREACHABLE_TAINT not in taints:
            taints = (*taints, UNREACHABLE_TAINT)
        if m.no_ready_since is not None:
            taints = (*taints, NO_READY_NODES_FAILOVER if self._nodes_failed(m) else NO_READY_NODES)
        return taints

    def credential_refs(self) -> frozenset[tuple[str, str]]:
        """(namespace, name) of every Secret a MemberCluster references, valid or not, connected
        or not: none of them may ever be propagated (`federation.translate.protected`)."""
        return frozenset(self._credentials.values())

    def lead(self, leading: bool) -> None:
        """This replica leads (or stops leading): write to the hub and the store or not. Taking
        the lead, every MemberCluster is looked at again (one added meanwhile needs our finalizer)."""
        self.writes_hub = leading
        if leading and self._member_clusters is not None:
            for name in list(self._member_clusters.store.keys()):
                self.queue.add(name)

    def is_ready(self, name: str) -> bool:
        m = self._members.get(name)
        return m is not None and m.connected and self.health.is_ready(name)

    def _changed(self, cluster: str, kind: FleetChangeKind) -> None:
        change = FleetChange(cluster, kind)
        log.info("fleet changed: %s", change.describe(), extra={"cluster": cluster})
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("fleet listener failed")

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Load the clusters, keep them connected and probed, until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if self.clusters_file is not None:
                await self._load_file(self.clusters_file)
            if self.hub is not None and self.hub_factory is not None and self.hub_discovery is not None:
                await self._watch_member_clusters()
            await self.probe_all()
            self.loaded.set()
            tg.start_soon(self._probe_loop)

    async def _load_file(self, path: Path) -> None:
        from federation.api import load_clusters_file

        for entry in load_clusters_file(path):
            await self._add_from_entry(entry)

    async def _add_from_entry(self, entry: ClusterEntry) -> None:
        member = Member(
            name=entry.name, labels=dict(entry.labels), taints=entry.taints, source="clusters file"
        )
        try:
            if entry.kubeconfig is None:
                raise FederationError(f"cluster {entry.name}: the clusters file gives no kubeconfig")
            client = await KubeClient.connect(entry.name, kubeconfig=entry.kubeconfig, context=entry.context)
            self._attach(member, client)
        except FederationError as exc:
            member.connect_error = str(exc)
            log.error("cannot connect to cluster %s: %s", entry.name, exc, extra={"cluster": entry.name})
        self._members[entry.name] = member

    def _attach(self, member: Member, client: KubeClient) -> None:
        client.set_rate_limit(
            self.settings.member_rate_limits.get(member.name, self.settings.member_rate_limit)
        )
        member.client = client
        member.discovery = Discovery(client)
        member.factory = InformerFactory(client, reflector_options=self.reflector_options)
        member.connect_error = None
        if self._tg is not None:
            self._tg.start_soon(self._run_factory, member)

    async def _run_factory(self, member: Member) -> None:
        assert member.factory is not None and member.discovery is not None
        with anyio.CancelScope() as scope:
            member.scope = scope
            async with anyio.create_task_group() as tg:
                tg.start_soon(member.factory.run)
                if self.settings.measure_capacity:
                    watcher = CapacityWatcher(
                        member.name,
                        factory=member.factory,
                        discovery=member.discovery,
                        listener=lambda capacity: self._capacity(member, capacity),
                        interval=self.settings.capacity_interval,
                    )
                    tg.start_soon(watcher.run)

    # -- capacity and nodes ------------------------------------------------------------

    def _capacity(self, m: Member, capacity: Capacity) -> None:
        """A member's measured capacity changed enough to matter (`capacity_watch`)."""
        if self._members.get(m.name) is not m:
            return  # replaced or gone meanwhile
        m.capacity = capacity
        if capacity.no_ready_nodes and m.no_ready_since is None:
            m.no_ready_since = self.clock.now()
            log.warning(
                "cluster %s: none of its %d nodes is Ready: no new placements; failover in %.0fs",
                m.name,
                capacity.nodes,
                self.settings.grace_period,
                extra={"cluster": m.name},
            )
        elif not capacity.no_ready_nodes and m.no_ready_since is not None:
            m.no_ready_since = None
            log.info("cluster %s: its nodes are Ready again", m.name, extra={"cluster": m.name})
            self._nodes_down.discard(m.name)
        self._changed(m.name, FleetChangeKind.CAPACITY)

    def _nodes_failed(self, m: Member) -> bool:
        """No node Ready for longer than the grace period: time to fail over."""
        return (
            m.no_ready_since is not None and self.clock.now() - m.no_ready_since >= self.settings.grace_period
        )

    async def _detach(self, member: Member) -> None:
        if member.scope is not None:
            member.scope.cancel()
        if member.client is not None:
            await member.client.close()
        member.client = member.discovery = member.factory = None

    # -- MemberCluster objects on the hub ------------------------------------------------

    async def _watch_member_clusters(self) -> None:
        assert self.hub_discovery is not None and self.hub_factory is not None
        try:
            res = await self.hub_discovery.resource_for(MEMBERCLUSTER_GVK)
        except KubeError as exc:
            raise FederationError(
                f"the hub does not serve {MEMBERCLUSTER_GVK.api_version} MemberCluster: {exc}",
                hint="install the CRDs: kubectl apply -f deploy/crds/ (or start once with --install-crds)",
            ) from exc
        self._member_clusters = informer = self.hub_factory.informer(res)

        def changed(obj: Obj) -> None:
            self.queue.add(str((obj.get("metadata") or {}).get("name")))

        informer.add_handler(Handlers(on_add=changed, on_update=lambda _o, n: changed(n), on_delete=changed))
        assert self._tg is not None
        await informer.wait_for_sync()
        # The initial list, before the first probe (and before `loaded`): connected at once.
        reconcile, queue = self.reconcile_member_cluster, self.queue
        while (name := queue.get_nowait()) is not None:
            try:
                await process(queue, reconcile, name, name=_LOOP, describe=_fields)
            finally:
                queue.done(name)
        self._tg.start_soon(self._reconcile_member_clusters)

    async def _reconcile_member_clusters(self) -> None:
        await run_workers(self.queue, self.reconcile_member_cluster, name=_LOOP, describe=_fields)

    async def reconcile_member_cluster(self, name: str) -> None:
        """Bring the registry's member `name` in line with its MemberCluster as cached now."""
        assert self._member_clusters is not None
        await self._on_member_cluster(name, self._member_clusters.store.get(name))

    async def _on_member_cluster(self, name: str, obj: Obj | None) -> None:
        """`obj` None: the MemberCluster is gone."""
        credentials_changed = self._note_credentials(name, None if obj is None else _secret_key(obj))
        existing = self._members.get(name)
        if existing is not None and not existing.from_hub:
            existing = None  # a clusters-file entry of the same name is not this object's
        if existing is not None and obj is not None and _uid(existing.seen) not in (None, _uid(obj)):
            # Deleted and created again since we last looked: the old one left first.
            await self._forget(existing)
            existing = None
        if obj is None or (
            (obj.get("metadata") or {}).get("deletionTimestamp")
            and not (self.drain is not None and has_finalizer(obj))
        ):
            if existing is not None:
                await self._forget(existing)
            return
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            await self._start_draining(existing, obj)
            return
        mc = _validated(obj)
        if mc is None:
            if credentials_changed:
                self._changed(name, FleetChangeKind.CREDENTIALS)
            return
        member = existing
        labels, taints = dict(mc.metadata.labels), tuple(mc.spec.taints)
        status = mc.status
        if member is None:
            member = await self._add_hub_member(mc)
            self._changed(name, FleetChangeKind.JOINED)
        else:
            reconnect = member.connect_error is not None or _secret_key(obj) != member.secret_ref
            placement_changed = (member.labels, member.taints) != (labels, taints)
            member.labels, member.taints = labels, taints
            if reconnect:
                await self._detach(member)
                await self._connect_from_secret(member, mc)
            if placement_changed:
                self._changed(name, FleetChangeKind.LABELS)
            elif credentials_changed:
                self._changed(name, FleetChangeKind.CREDENTIALS)
        member.secret_ref = _secret_key(obj)
        member.seen = obj
        if status is not None:
            member.available_replicas = status.available_replicas
        if self.writes_hub and self.drain is not None and not has_finalizer(obj) and not forced(obj):
            await self._patch_finalizer(member, present=True)

    def _note_credentials(self, name: str, key: tuple[str, str, str] | None) -> bool:
        """Remember the Secret a MemberCluster names; whether that changed. The caller tells the
        fleet's listeners (so templates are re-evaluated: a Secret that became a credential
        must leave the members) once the change is complete: a cluster that joins or leaves
        says so itself, and one that leaves must first have its works recorded abandoned."""
        ref = None if key is None else (key[0], key[1])
        if self._credentials.get(name) == ref:
            return False
        if ref is None:
            del self._credentials[name]
        else:
            self._credentials[name] = ref
        return True

    async def _add_hub_member(self, mc: MemberCluster) -> Member:
        """Register the cluster a MemberCluster describes, connected with its Secret."""
        name = mc.metadata.name
        member = Member(
            name=name,
            labels=dict(mc.metadata.labels),
            taints=tuple(mc.spec.taints),
            source=f"MemberCluster {name}",
            from_hub=True,
        )
        self._members[name] = member
        await self._connect_from_secret(member, mc)
        return member

    # -- leaving the fleet -------------------------------------------------------------

    async def _start_draining(self, existing: Member | None, obj: Obj) -> None:
        """A MemberCluster with our finalizer is being deleted: stop placing there, keep the
        connection so its propagator deletes the copies (after a restart too)."""
        name = str(obj["metadata"]["name"])
        member = existing
        if member is None:
            mc = _validated(obj)
            if mc is None:
                return
            member = await self._add_hub_member(mc)
        member.seen = obj
        if not member.draining:
            member.draining = True
            log.info("cluster %s is being removed: draining its copies", name, extra={"cluster": name})
            self._changed(name, FleetChangeKind.LEAVING)

    async def drain_step(self) -> None:
        """Release each leaving cluster whose works are all done (called every probe round)."""
        if self.drain is None or not self.writes_hub:
            return
        for m in self.members():
            if not m.draining:
                continue
            try:
                left = await self.drain.works_to_drain(m.name)
            except StoreError as exc:
                log.warning("cluster %s: cannot count what is left to drain: %s", m.name, exc)
                continue
            if left:
                log.info("cluster %s draining: %d copies left", m.name, left, extra={"cluster": m.name})
                continue
            log.info("cluster %s drained: releasing its MemberCluster", m.name, extra={"cluster": m.name})
            await self._patch_finalizer(m, present=False)

    async def _forget(self, member: Member) -> None:
        """The MemberCluster is gone: disconnect, and record what was left undrained."""
        name = member.name
        await self._detach(member)
        del self._members[name]
        self.health.forget(name)
        with contextlib.suppress(KeyError):
            CLUSTER_READY.remove(name)
        abandoned = 0
        if self.drain is not None and self.writes_hub:
            # Before placement hears of it: what is orphaned now is not turned into deletions.
            try:
                abandoned = await self.drain.abandon_cluster(name, ABANDONED)
            except StoreError as exc:
                log.warning("cluster %s left: cannot record its remaining works: %s", name, exc)
        self._changed(name, FleetChangeKind.LEFT)
        if abandoned:
            log.warning(
                "cluster %s left the fleet before it was drained: %d copies left in place (orphaned)",
                name,
                abandoned,
                extra={"cluster": name},
            )

    async def _patch_finalizer(self, member: Member, *, present: bool) -> None:
        assert self.hub is not None and self.hub_discovery is not None and member.seen is not None
        try:
            res = await self.hub_discovery.resource_for(MEMBERCLUSTER_GVK)
            await self.hub.patch(res, member.name, finalizer_patch(member.seen, present=present))
        except (ConflictError, NotFoundError):
            return  # a newer object is on its way through the informer; it decides again
        except KubeError as exc:
            log.warning(
                "cannot %s the finalizer of MemberCluster %s: %s",
                "add" if present else "remove",
                member.name,
                exc,
                extra={"cluster": member.name},
            )

    async def _connect_from_secret(self, member: Member, mc: MemberCluster) -> None:
        try:
            client = await connect_from_secret(
                mc,
                hub=self.hub,
                hub_discovery=self.hub_discovery,
                allowed=self.settings.credentials_namespaces,
            )
        except FederationError as exc:
            member.connect_error = str(exc)
            log.error("cannot connect to cluster %s: %s", member.name, exc, extra={"cluster": member.name})
            return
        self._attach(member, client)

    # -- probing -------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.probe_interval)
            await self.probe_all()
            await self.drain_step()

    async def probe_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for m in self.members():
                tg.start_soon(self._probe, m)
        # Crossing the grace period is a change too, even without a new probe result.
        for m in self.members():
            unreachable = self.health.unreachable(m.name)
            if unreachable and m.name not in self._unreachable:
                self._unreachable.add(m.name)
                self._changed(m.name, FleetChangeKind.FAILOVER)
            elif not unreachable and m.name in self._unreachable:
                self._unreachable.discard(m.name)
                self._changed(m.name, FleetChangeKind.REACHABLE)
            if self._nodes_failed(m) and m.name not in self._nodes_down:
                self._nodes_down.add(m.name)
                self._changed(m.name, FleetChangeKind.NODES_FAILED)

    async def _probe(self, m: Member) -> None:
        if m.client is None:
            ok, reason, version = False, m.connect_error or "not connected", None
        else:
            ok, reason = await m.client.ready(timeout=self.settings.probe_timeout)
            reason = cut(reason)  # the member's apiserver writes it: bounded before the hub
            version = None
            if ok and self.health.get(m.name).version is None:
                try:
                    version = cut(str((await m.client.version()).get("gitVersion", "")), 64) or None
                except KubeError:
                    version = None
        transition = self.health.observe(m.name, ok=ok, reason=reason, version=version)
        CLUSTER_READY.labels(m.name).set(1 if ok else 0)
        if transition is not None:
            log.log(
                logging.INFO if ok else logging.WARNING,
                "cluster %s is %s: %s",
                m.name,
                "Ready" if ok else "NotReady",
                reason,
                extra={"cluster": m.name},
            )
            self._changed(m.name, FleetChangeKind.READY if ok else FleetChangeKind.NOT_READY)
        if m.from_hub and self.writes_hub:
            await self._write_status(m)

    async def _write_status(self, m: Member) -> None:
        """Ready condition, version and probe time on the MemberCluster, when they changed
        (or every `status_refresh` seconds, so lastProbeTime stays meaningful)."""
        assert self.hub is not None and self.hub_discovery is not None
        h = self.health.get(m.name)
        cap = m.capacity
        key = f"{h.ready}|{h.reason}|{h.version}|{cap}"
        last = self._status_written.get(m.name)
        now = self.clock.now()
        if last is not None and last[0] == key and now - last[1] < self.settings.status_refresh:
            return
        stamp = _now()
        condition = {
            "type": "Ready",
            "status": "True" if h.ready else "False",
            "reason": "ProbeSucceeded" if h.ready else "ProbeFailed",
            "message": h.reason[:1000],
            "lastTransitionTime": _iso(h.since, self.clock),
        }
        patch: dict[str, Any] = {"status": {"conditions": [condition], "lastProbeTime": stamp}}
        if h.version:
            patch["status"]["kubernetesVersion"] = h.version
        if cap is not None:
            patch["status"]["allocatable"] = as_quantities(cap.allocatable)
            patch["status"]["available"] = as_quantities(cap.available)
            patch["status"]["nodes"] = {"total": cap.nodes, "ready": cap.ready_nodes}
        try:
            res = await self.hub_discovery.resource_for(MEMBERCLUSTER_GVK)
            await self.hub.patch(res, m.name, patch, subresource="status")
            self._status_written[m.name] = (key, now)
        except KubeError as exc:
            log.warning("cannot write MemberCluster %s status: %s", m.name, exc, extra={"cluster": m.name})

    async def close(self) -> None:
        for m in list(self._members.values()):
            await self._detach(m)


def _validated(obj: Obj) -> MemberCluster | None:
    """The MemberCluster, or None (logged) when the object does not parse."""
    name = str((obj.get("metadata") or {}).get("name"))
    try:
        return MemberCluster.model_validate(obj)
    except FederationError as exc:
        log.error("ignoring invalid MemberCluster %s: %s", name, exc, extra={"cluster": name})
        return None


def _uid(obj: Obj | None) -> str | None:
    uid = None if obj is None else (obj.get("metadata") or {}).get("uid")
    return None if uid is None else str(uid)


def _fields(name: str) -> dict[str, str]:
    return {"cluster": name}


def _secret_key(obj: Obj) -> tuple[str, str, str] | None:
    ref = (obj.get("spec") or {}).get("kubeconfigSecretRef")
    if not ref:
        return None
    return (str(ref.get("namespace")), str(ref.get("name")), str(ref.get("key", "kubeconfig")))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(monotonic_at: float, clock: Clock) -> str:
    """A monotonic instant of `clock` as wall-clock RFC 3339 (for condition timestamps)."""
    wall = time.time() - (clock.now() - monotonic_at)
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
