"""Wire one controller process: config, leases, leader election, and the task group of everything.

    hub informers ─► HubController ─► Postgres works ─► ClusterPropagator (one per leased member)
    member informers ─► ClusterPropagator ─► drift, status.collect ─► StatusWriter ─► hub status

Every replica runs the propagators (and member informers) of the members it leases
(`federation.propagate.shard`: owners by rendezvous hashing over the live replicas, a lease row
per member); one replica, the leader (Postgres advisory lock), also runs the hub side: the hub
controller, the status writer, the clusters mirror and housekeeping. Replicas hint each other
through Postgres notifications (`federation.store.listen`): the leader wakes a member's owner
when its works change, and learns of the statuses other replicas' propagators collected
(`federation.status.remote`). With ``--no-leader-election`` the one process does all of it and
takes no lease. Shutdown (SIGTERM) cancels the task group: claims stop, each apply already
started finishes and is recorded (shielded), and the replica's claims and leases are released
so the others take its members at once.

Why one module of this length: it is the one place where every part is constructed and
connected, in the order startup and shutdown need (store, registry, leases, propagators, hub
controller, status writer, server); each part's logic lives in its own package.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
from aiohttp import web

from federation.api.sinksfile import SinkEntry
from federation.changes import ChangeFeed
from federation.changes.exporter import ExportThread
from federation.clusters import ClusterRegistry, Member, RegistrySettings
from federation.errors import ConfigError, StoreError
from federation.hub.controller import ControllerSettings, HubController
from federation.hub.keys import ResourceKey
from federation.informers import InformerFactory
from federation.informers.transform import keep_last_writer
from federation.kube import Discovery, KubeClient, Obj
from federation.leader import LeaderElector
from federation.propagate.fleet import Propagators
from federation.propagate.shard import ShardKeeper, ShardSettings
from federation.propagate.worker import ClusterPropagator, PropagatorSettings
from federation.runtime.looplag import watch_loop_lag
from federation.sealing import KEY_FLAG, KeyRing, Sealer
from federation.server import (
    ReadyCheck,
    ServerConfig,
    ValidatingWebhook,
    WebhookSettings,
    build_app,
    serve,
)
from federation.server.watch import FEED
from federation.status.remote import RemoteStatuses
from federation.status.writer import StatusWriter
from federation.store import ClusterRow, EventRow, Store, give_up_after
from federation.store.listen import MEMBER_STATUS_CHANNEL, WORKS_CHANNEL, Listener
from federation.store.url import asyncpg_dsn
from federation.translate import SensitiveField, SensitiveFields
from federation.translate import hub_id as check_hub_id
from federation.translate.protected import KindRef, Protection

log = logging.getLogger(__name__)


@dataclass
class ManagerConfig:
    database_url: str
    hub_kubeconfig: Path | None = None
    hub_context: str | None = None
    clusters_file: Path | None = None
    event_sinks: Sequence[SinkEntry] = ()
    """Where the leader sends the change log (`federation.changes.sinks`)."""
    hub_id: str | None = None
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    leader_election: bool = True
    """Several replicas: members sharded by leases, the hub side on the leader only. False: this
    process does everything, with no lease (no other replica may run)."""
    replica_id: str | None = None
    """This replica's name in leases and work claims (``--replica-id``; default `identity`)."""
    lease_ttl: float = 15.0
    """Seconds a member's lease lasts unrenewed (``--lease-ttl``)."""
    server: ServerConfig | None = field(default_factory=ServerConfig)
    webhook: bool = True
    """Serve the admission webhook at /validate (on every replica: admission must not wait for
    a leader)."""
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    credentials_namespaces: frozenset[str] = frozenset({"fleet-system"})
    """Hub namespaces holding member kubeconfig Secrets: read only there, never propagated."""
    controller_namespace: str = "federation-system"
    """The hub namespace the controller runs in: never propagated; member kubeconfig Secrets
    may live there too (it is the fleet admin's)."""
    deny_namespaces: tuple[str, ...] = ()
    """More namespaces (globs) whose objects never propagate (``--deny-namespace``)."""
    deny_kinds: tuple[str, ...] = ()
    """Kinds that never propagate, ``Kind`` or ``Kind.group`` (``--deny-kind``)."""

    @property
    def replica(self) -> str:
        """Who holds this process's leases and work claims."""
        return self.replica_id or self.identity

    @property
    def secret_namespaces(self) -> frozenset[str]:
        """Where member kubeconfig Secrets may be read from: the credentials namespaces and the
        controller's own."""
        return self.credentials_namespaces | {self.controller_namespace}

    def protection(self) -> Protection:
        """What never propagates (`federation.translate.protected`), as configured."""
        return Protection(
            controller_namespace=self.controller_namespace,
            credentials_namespaces=self.credentials_namespaces,
            deny_namespaces=self.deny_namespaces,
            deny_kinds=tuple(KindRef.parse(k) for k in self.deny_kinds),
        )

    controller: ControllerSettings = field(default_factory=ControllerSettings)
    propagator: PropagatorSettings = field(default_factory=PropagatorSettings)
    status_interval: float = 1.0
    purge_interval: float = 30.0
    """Seconds between purges of templates that are deleted or no longer governed."""
    encryption_keys: KeyRing | None = None
    """The keys sensitive values are sealed with in Postgres (--encryption-key-file). None: no
    sensitive value is ever stored, so templates holding one are not propagated."""
    sensitive_fields: tuple[SensitiveField, ...] = ()
    """Fields sensitive beyond Secrets' data (--sensitive-field)."""


async def derive_hub_id(hub: KubeClient) -> str:
    """A stable id for this hub: from the uid of its kube-system namespace (unique per cluster)."""
    ns = await hub.request("GET", "/api/v1/namespaces/kube-system", what="get namespace kube-system")
    uid = str((ns.get("metadata") or {}).get("uid", "")).replace("-", "")
    if not uid:
        raise ConfigError("cannot derive a hub id: kube-system has no uid", hint="pass --hub-id")
    return f"hub-{uid[:12]}"


class Manager:
    def __init__(self, config: ManagerConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.hub: KubeClient | None = None
        self.hub_id: str = ""
        self.controller: HubController | None = None
        self.registry: ClusterRegistry | None = None
        self.status_writer: StatusWriter | None = None
        self.remote: RemoteStatuses | None = None
        self.keeper: ShardKeeper | None = None
        self.feed: ChangeFeed | None = None
        self.propagators = Propagators(self._new_propagator)
        self.leading = False
        self.running = anyio.Event()
        self._fleet_changed = anyio.Event()
        self._to_notify: set[str] = set()
        self._notify_due = anyio.Event()
        self.sealer = Sealer(
            keys=config.encryption_keys, fields=SensitiveFields(extra=config.sensitive_fields)
        )

    @property
    def sharded(self) -> bool:
        """Whether other replicas may run (members by lease, hints through Postgres)."""
        return self.config.leader_election

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        cfg = self.config
        if not self.sealer.available:
            log.warning(
                "no encryption key (%s): Secrets and fields marked sensitive will not be propagated, "
                "since their values would be stored in Postgres in plaintext; create a key with "
                "`federation keys generate --out FILE` and pass %s FILE",
                KEY_FLAG,
                KEY_FLAG,
            )
        else:
            assert cfg.encryption_keys is not None
            log.info(
                "sensitive values are sealed with encryption key %r (%d key(s) in %s)",
                cfg.encryption_keys.active.id,
                len(cfg.encryption_keys.keys),
                cfg.encryption_keys.source,
            )
        self.store = await Store.connect(cfg.database_url, sealer=self.sealer)
        self.hub = await KubeClient.connect("hub", kubeconfig=cfg.hub_kubeconfig, context=cfg.hub_context)
        try:
            self.hub_id = check_hub_id(cfg.hub_id) if cfg.hub_id else await derive_hub_id(self.hub)
            log.info("hub id %s, identity %s, replica %s", self.hub_id, cfg.identity, cfg.replica)
            # A previous incarnation under our name (a restart with the same --replica-id) may
            # have left claims: ours now, and nothing of ours runs yet.
            released = await self.store.release_claims(cfg.replica)
            if released:
                log.info("released %d work claims of a previous run as %s", released, cfg.replica)
            async with anyio.create_task_group() as tg:
                if cfg.server is not None:
                    webhook = (
                        ValidatingWebhook.for_hub(
                            self.hub,
                            credentials_namespaces=cfg.secret_namespaces,
                            settings=WebhookSettings(body_timeout=cfg.server.timeouts.body),
                        )
                        if cfg.webhook
                        else None
                    )
                    app = build_app(
                        checks=self._checks(), store=self.store, config=cfg.server, webhook=webhook
                    )
                    self.feed = app.get(FEED)
                    runner = await serve(app, cfg.server)
                    tg.start_soon(_cleanup_on_cancel, runner)
                await self._work_on_members(tg)
                if cfg.leader_election:
                    elector = LeaderElector(asyncpg_dsn(cfg.database_url), self.hub_id, identity=cfg.replica)
                    while True:
                        async with elector.leadership():
                            await self._lead()
                else:
                    await self._lead()
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()
                await self.hub.close()
                await self.store.close()

    async def _release(self) -> None:
        if self.keeper is not None:
            await self.keeper.close()  # the propagators have ended with the task group
        if self.store is not None:
            try:
                released = await self.store.release_claims(self.config.replica)
                if released:
                    log.info("released %d work claims", released)
            except Exception as exc:
                log.warning("releasing claims failed: %s", exc)
        if self.registry is not None:
            await self.registry.close()

    async def _work_on_members(self, tg: anyio.abc.TaskGroup) -> None:
        """Every replica's part: the registry (members connected and probed), the leases, the
        propagators of the leased members, and the notifications between replicas."""
        cfg = self.config
        assert self.hub is not None and self.store is not None
        factory = InformerFactory(self.hub)
        self.registry = registry = ClusterRegistry(
            hub=self.hub,
            hub_discovery=Discovery(self.hub),
            hub_factory=factory,
            clusters_file=cfg.clusters_file,
            settings=dataclasses.replace(cfg.registry, credentials_namespaces=cfg.secret_namespaces),
            drain=self.store,
        )
        registry.lead(not self.sharded)
        registry.subscribe(lambda _change: self._members_changed())
        tg.start_soon(factory.run)
        tg.start_soon(registry.run)
        tg.start_soon(watch_loop_lag)
        await registry.loaded.wait()
        if self.sharded:
            self.keeper = ShardKeeper(
                store=self.store,
                replica=cfg.replica,
                clusters=lambda: [m.name for m in registry.members()],
                stop=self.propagators.stop,
                on_change=self._poke_propagators,
                settings=ShardSettings(lease_ttl=cfg.lease_ttl),
            )
            tg.start_soon(self.keeper.run)
            listener = Listener(
                asyncpg_dsn(cfg.database_url),
                {WORKS_CHANNEL: self._works_notified, MEMBER_STATUS_CHANNEL: self._statuses_notified},
                on_connect=self._listening,
            )
            tg.start_soon(listener.run)
            tg.start_soon(self._send_notifications)
        tg.start_soon(self._supervise_propagators, tg)

    async def _lead(self) -> None:
        cfg = self.config
        assert self.hub is not None and self.store is not None and self.registry is not None
        registry = self.registry
        if not self.sharded:
            # The only process: whoever held claims before us is gone, and its claims would
            # otherwise keep its works from us until they expire. (Sharded, other replicas hold
            # live claims; a dead one's are released with its members' leases.)
            released = await self.store.release_foreign_claims(cfg.replica)
            if released:
                log.info("released %d work claims of a previous run", released)
        hub_discovery = Discovery(self.hub)
        # Templates keep their last writer for the change log (see keep_last_writer).
        hub_factory = InformerFactory(self.hub, transform=keep_last_writer)
        mark = registry.listeners_mark()
        self.controller = controller = HubController(
            hub=self.hub,
            discovery=hub_discovery,
            factory=hub_factory,
            store=self.store,
            registry=registry,
            hub_id=self.hub_id,
            on_works_changed=self._wake,
            on_placed=self._on_member_status,
            settings=cfg.controller,
            protection=cfg.protection(),
            sealer=self.sealer,
        )
        self.remote = remote = (
            RemoteStatuses(store=self.store, remote=self._remote_clusters, on_change=self._on_member_status)
            if self.sharded
            else None
        )
        self.status_writer = StatusWriter(
            hub=self.hub,
            discovery=hub_discovery,
            template=controller.templates.get,
            placed=lambda key: controller.placed.get(key, []),
            member=self._member_object,
            min_interval=cfg.status_interval,
            record=self._record_event,
        )
        self.leading = True
        registry.lead(True)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(hub_factory.run)
                if remote is not None:
                    tg.start_soon(remote.run)
                    await remote.loaded.wait()  # no aggregate without the other replicas' members
                tg.start_soon(self.status_writer.run)
                tg.start_soon(controller.run)
                tg.start_soon(self._housekeeping)
                tg.start_soon(self._mirror_clusters)
                exporter = ExportThread(
                    cfg.database_url, cfg.event_sinks, hub=self.hub_id, on_numbered=self._changes_numbered
                )
                tg.start_soon(exporter.run)
                await controller.synced.wait()
                # Everything loaded so far (caches, clients) lives as long as we lead: move it
                # out of the collector's sight instead of rescanning it forever.
                gc.freeze()
                self.running.set()
        finally:
            self.leading = False
            registry.lead(not self.sharded)
            registry.drop_listeners(mark)
            self.controller = self.status_writer = self.remote = None

    # -- propagators, one per leased member, each supervised (federation/propagate/fleet.py) --

    def _poke_propagators(self) -> None:
        """The members or our leases changed: the propagators are reconciled now."""
        self._fleet_changed.set()

    def _members_changed(self) -> None:
        self._poke_propagators()
        if self.keeper is not None:
            self.keeper.wake()

    def _local_clusters(self) -> frozenset[str]:
        """The members whose propagators run here (all of them, unsharded)."""
        if self.keeper is not None:
            return self.keeper.held
        members = self.registry.members() if self.registry is not None else []
        return frozenset(m.name for m in members)

    def _remote_clusters(self) -> frozenset[str]:
        """The members whose propagators run on other replicas."""
        members = self.registry.members() if self.registry is not None else []
        return frozenset(m.name for m in members) - self._local_clusters()

    async def _supervise_propagators(self, tg: anyio.abc.TaskGroup) -> None:
        assert self.registry is not None
        while True:
            self._fleet_changed = anyio.Event()
            local = self._local_clusters()
            self.propagators.reconcile([m for m in self.registry.members() if m.name in local], tg)
            with anyio.move_on_after(5.0):
                await self._fleet_changed.wait()

    def _new_propagator(self, member: Member) -> ClusterPropagator:
        assert self.store is not None and self.registry is not None
        registry = self.registry
        return ClusterPropagator(
            member=member,
            store=self.store,
            hub_id=self.hub_id,
            holder=self.config.replica,
            ready=lambda: registry.is_ready(member.name),
            on_status=self._on_member_status,
            settings=self.config.propagator,
            secrecy=self.sealer.secrecy,
        )

    async def _record_event(self, row: EventRow) -> None:
        assert self.store is not None
        await self.store.append_events([row])

    def _wake(self, clusters: Iterable[str]) -> None:
        """Works of `clusters` changed: their propagators claim now, here or (notified through
        Postgres) on the replica that leases them."""
        for name in clusters:
            propagator = self.propagators.get(name)
            if propagator is not None:
                propagator.wake()
            elif self.sharded:
                self._to_notify.add(name)
                self._notify_due.set()

    async def _send_notifications(self) -> None:
        """The wake-ups for other replicas, batched: one statement per burst of hub changes."""
        assert self.store is not None
        while True:
            await self._notify_due.wait()
            self._notify_due = anyio.Event()
            clusters, self._to_notify = sorted(self._to_notify), set()
            try:
                await self.store.notify(WORKS_CHANNEL, clusters)
            except StoreError as exc:  # a hint: the owner polls anyway
                log.debug("notifying the owners of %s failed: %s", clusters, exc)

    def _works_notified(self, _channel: str, cluster: str) -> None:
        propagator = self.propagators.get(cluster)
        if propagator is not None:
            propagator.wake()

    def _statuses_notified(self, _channel: str, _payload: str) -> None:
        if self.remote is not None:
            self.remote.notified()

    def _listening(self) -> None:
        """(Re)connected to the notifications: catch up on what was missed meanwhile."""
        for cluster in self._local_clusters():
            self._works_notified(WORKS_CHANNEL, cluster)
        self._statuses_notified(MEMBER_STATUS_CHANNEL, "")

    def _on_member_status(self, key: ResourceKey) -> None:
        if self.status_writer is not None:
            self.status_writer.mark(key)
        if self.controller is not None:
            self.controller.member_status_changed(key)

    def _member_object(self, key: ResourceKey, cluster: str) -> Obj | None:
        """A member's copy for the status writer: from the member's informers when its
        propagator runs here, else as its owner's propagator collected it into Postgres (also
        while a propagator just started here has not synced its informers yet)."""
        propagator = self.propagators.get(cluster)
        obj = propagator.member_object(key) if propagator is not None else None
        if obj is None and self.remote is not None:
            obj = self.remote.get(key, cluster)
        return obj

    async def _mirror_clusters(self) -> None:
        """Keep the store's `clusters` table (the registry as dashboards see it: the API, the
        status page's columns, `fleet_cluster_status`, Grafana) in step with the registry.

        On every fleet change and at least every `probe_interval` (so `last_probe_at` moves);
        rows of clusters that left the registry are deleted (their works stay until cleaned up:
        the views show them as unregistered). Unchanged rows are not rewritten by the store.
        """
        assert self.store is not None and self.registry is not None
        registry = self.registry
        changed = anyio.Event()
        registry.subscribe(lambda _reason: changed.set())
        while True:
            try:
                rows = [_cluster_row(m, registry) for m in registry.members()]
                await self.store.upsert_clusters(rows)
                current = {r.name for r in rows}
                for stale in await self.store.list_clusters():
                    if stale.name not in current:
                        await self.store.delete_cluster(stale.name)
            except Exception as exc:
                log.warning("mirroring the cluster registry to the store failed: %s", exc)
            with anyio.move_on_after(max(1.0, registry.settings.probe_interval)):
                await changed.wait()
            changed = anyio.Event()

    def _changes_numbered(self) -> None:
        """The sequencer numbered changes: this process's watchers hear of them at once (other
        replicas' feeds poll)."""
        if self.feed is not None:
            self.feed.notify()

    async def _housekeeping(self) -> None:
        """Retention and tidying the store leaves to its user: templates no longer needed every
        `purge_interval` (they may hold a Secret's data), events and stray statuses hourly."""
        assert self.store is not None
        rounds = max(1, round(3600 / self.config.purge_interval))
        for n in itertools.count():
            try:
                purged = await self.store.purge_deleted_resources()
                if purged:
                    log.info("purged %d templates that are deleted or no longer governed", purged)
                if n % rounds == 0:
                    await self.store.prune_events()
                    await self.store.prune_changes()
                    await self.store.prune_replicas(older_than_seconds=3600)
                    await self.store.delete_orphaned_statuses()
            except Exception as exc:
                log.warning("housekeeping failed: %s", exc)
            await anyio.sleep(self.config.purge_interval)

    # -- readiness ---------------------------------------------------------------------------

    def _checks(self) -> dict[str, ReadyCheck]:
        async def database() -> tuple[bool, str]:
            if self.store is None:
                return False, "not connected"
            try:
                with give_up_after(1.0):  # /readyz answers within 2 s with the database down
                    await self.store.ping()
            except Exception as exc:
                return False, str(exc)
            return True, "answers"

        async def informers() -> tuple[bool, str]:
            if not self.leading:
                return True, "standby (not the leader)"
            if self.controller is None or not self.controller.synced.is_set():
                return False, "hub informers not synced yet"
            return True, "synced"

        async def hub() -> tuple[bool, str]:
            if self.hub is None:
                return False, "not connected"
            ok, reason = await self.hub.ready(timeout=1.5)
            return ok, reason

        return {"database": database, "informers": informers, "hub": hub}


def _cluster_row(member: Member, registry: ClusterRegistry) -> ClusterRow:
    health = registry.health.get(member.name)
    last_probe = None
    if health.last_probe is not None:
        age = max(0.0, registry.clock.now() - health.last_probe)
        last_probe = datetime.now(UTC) - timedelta(seconds=age)
    # Measured from the member's nodes when it can be; else what its MemberCluster reports.
    allocatable = member.capacity.allocatable if member.capacity is not None else member.allocatable
    reason = health.reason if member.client is not None else (member.connect_error or health.reason)
    if member.draining:
        # What `clusters list`, the API and the page show while its copies are being deleted.
        reason = f"leaving the fleet: deleting its copies first ({reason})"
    return ClusterRow(
        name=member.name,
        labels=dict(member.labels),
        taints=tuple(
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in registry.taints_of(member)
        ),
        endpoint=member.client.server if member.client is not None else None,
        ready=registry.is_ready(member.name),
        ready_reason=reason,
        last_probe_at=last_probe,
        kubernetes_version=health.version,
        allocatable={}
        if allocatable is None
        else {k: v for k, v in dataclasses.asdict(allocatable).items() if v is not None},
    )


async def _cleanup_on_cancel(runner: web.AppRunner) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
