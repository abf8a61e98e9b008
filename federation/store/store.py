"""`Store`: the controller's one handle on Postgres.

It owns an asyncpg pool and runs every repository call as a retried unit of work (see
`retry`): acquire a connection, run the call (inside a transaction when it has more than one
statement; a single statement is atomic by itself and saves two round trips), translate errors
into `federation.errors`. It also keeps the store's health for the controller's readiness
probe: unhealthy from the first connection fault until the next successful call.

Most of its methods are a repository function bound as such a unit of work, declared in one
line with `unit_of_work` (see `federation.store.unit`): the signature and docstring are the
repository function's. The methods written out are those that do more than pass a call through,
each saying what: sealing on the way in, opening on the way out, chunked bulk writes, batches.
The module is over 400 lines because it is the store's whole surface in one class: some 40
one-line declarations, and beside them only what needs the pool, the retry and the sealer
together (the SQL is in `repo/`, the retry loop in `retry`, the binding in `unit`).

It is also where sensitive values are sealed and opened (`federation.store.sealing`): the
templates and desired manifests given to it are sealed by its `Sealer` before they are sent to
Postgres, and claimed or indexed works are opened before they are returned. A work that does not
open is returned with `sealing_error` set rather than failing the whole call: one bad row must
not stop a cluster's propagation, nor crash the controller into a restart loop.

    store = await Store.connect("postgresql://postgres@127.0.0.1:5432/federation", sealer=sealer)
    async with store:
        ids = await store.upsert_resources(rows)
        change = await store.save_placement(ids[0], policy_id=..., decisions=..., desired_works=...)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
import asyncpg

from federation.errors import SealingError, StoreError
from federation.store.coalesce import Coalescer
from federation.store.db import Connection, init_connection
from federation.store.repo import (
    changes,
    checkpoints,
    clusters,
    collected,
    events,
    leases,
    placements,
    policies,
    reads,
    resources,
    rollouts,
    status,
    sweep,
    works,
)
from federation.store.repo.rollouts import RolloutRow
from federation.store.repo.works import HeldWork
from federation.store.retry import Monotonic, RetryPolicy, Sleep, retrying
from federation.store.rows import (
    ClaimedWork,
    ClusterDecision,
    ClusterRow,
    DesiredWork,
    IndexedWork,
    MemberStatusRow,
    PlacementChange,
    PolicyId,
    ResourceId,
    ResourceRow,
    ResourceWork,
)
from federation.store.sealing import SEALED, SealedRow, Sealer
from federation.store.unit import What, unit_of_work
from federation.store.url import asyncpg_dsn, describe

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W", ClaimedWork, IndexedWork)
JSON = Mapping[str, Any]
log = logging.getLogger(__name__)


async def _no_reset(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    return None


class HealthListener(Protocol):
    """Called when the store turns unhealthy (with the fault) or healthy again (with None)."""

    def __call__(self, healthy: bool, fault: BaseException | None, /) -> None: ...


@dataclass(frozen=True)
class StoreSettings:
    """How the store connects and retries, and how long it keeps events."""

    #: `prune_events()` removes events older than this (the controller runs it periodically).
    event_retention: timedelta = timedelta(days=7)
    #: `prune_changes()` removes change-log rows older than this (watchers and sinks resume
    #: from a position within it).
    change_retention: timedelta = timedelta(days=7)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    min_connections: int = 1
    max_connections: int = 20
    #: Seconds to open one connection, and the longest any statement may run (server side).
    connect_timeout: float = 10.0
    statement_timeout: float = 60.0
    #: Seconds `connect` keeps trying when the server is not up yet (0: one attempt).
    connect_deadline: float = 0.0
    application_name: str = "federation"
    #: Bulk writes (`upsert_desired_works`, `upsert_member_statuses`) go in statements of at most
    #: this many rows, up to `bulk_parallelism` at a time on separate connections, so that
    #: encoding one chunk here overlaps with Postgres writing another.
    bulk_chunk_rows: int = 2500
    bulk_parallelism: int = 2


@dataclass
class StoreStats:
    """Counters for metrics and tests."""

    #: Attempts that failed on a connection fault (each was retried unless the deadline passed).
    connection_faults: int = 0


class Store:
    """The Postgres state store. Create with `Store.connect`; close with `close` (or `async with`)."""

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        target: str,
        settings: StoreSettings,
        clock: Monotonic,
        sleep: Sleep,
        on_health_change: HealthListener | None,
        sealer: Sealer | None = None,
    ) -> None:
        self._pool = pool
        self.sealer = sealer
        self.target = target
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._on_health_change = on_health_change
        self._healthy = True
        self.stats = StoreStats()
        #: Templates registered at the same moment share one upsert (`federation.store.coalesce`).
        self._registrations: Coalescer[ResourceRow, tuple[ResourceId, bool]] = Coalescer(self._register)

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        settings: StoreSettings | None = None,
        on_health_change: HealthListener | None = None,
        clock: Monotonic = time.monotonic,
        sleep: Sleep = anyio.sleep,
        sealer: Sealer | None = None,
    ) -> Store:
        """Open a pool on `url` (``postgresql://`` or ``postgresql+asyncpg://``).

        ``sealer`` seals the sensitive values of templates and works on their way in and opens
        them on their way out (`federation.sealing.Sealer`; the controller always gives one).
        Without it documents are stored and returned as they are: for tools and tests that
        write nothing sensitive.

        Raises `StoreUnavailableError` naming host:port when the server cannot be reached
        within ``settings.connect_deadline``; `ConfigError` for a URL that is not Postgres.
        """
        settings = settings or StoreSettings()
        dsn = asyncpg_dsn(url)
        target = describe(url)

        async def open_pool() -> asyncpg.Pool[asyncpg.Record]:
            return await asyncpg.create_pool(
                dsn,
                min_size=settings.min_connections,
                max_size=settings.max_connections,
                init=init_connection,
                # The store keeps no session state (no LISTEN, locks, cursors or SET), so the
                # default reset round trip on every release would be pure overhead.
                reset=_no_reset,
                timeout=settings.connect_timeout,
                server_settings={
                    "application_name": settings.application_name,
                    "statement_timeout": str(int(settings.statement_timeout * 1000)),
                },
            )

        policy = RetryPolicy(
            first_delay=settings.retry.first_delay,
            max_delay=settings.retry.max_delay,
            multiplier=settings.retry.multiplier,
            deadline=settings.connect_deadline,
        )
        pool = await retrying(
            open_pool, what=f"connecting to {target}", target=target, policy=policy, clock=clock, sleep=sleep
        )
        return cls(
            pool,
            target=target,
            settings=settings,
            clock=clock,
            sleep=sleep,
            on_health_change=on_health_change,
            sealer=sealer,
        )

    async def close(self) -> None:
        """Close every connection (waits for calls in flight to finish)."""
        with anyio.CancelScope(shield=True):
            await self._pool.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def healthy(self) -> bool:
        """False from the first connection fault until a call succeeds again (readiness)."""
        return self._healthy

    async def ping(self) -> None:
        """One round trip (with retries); raises `StoreUnavailableError` when the server is gone."""
        await self._run("ping", lambda conn: conn.fetchval("SELECT 1"))

    # -- the unit of work ----------------------------------------------------------------

    def _fault(self, exc: BaseException) -> None:
        self.stats.connection_faults += 1
        if self._healthy:
            self._healthy = False
            log.warning("state store at %s unavailable, retrying: %s", self.target, exc)
            if self._on_health_change is not None:
                self._on_health_change(False, exc)

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            log.info("state store at %s available again", self.target)
            if self._on_health_change is not None:
                self._on_health_change(True, None)

    async def _run(
        self, what: What, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        """Run `fn` on a pooled connection as one retried attempt (in a transaction if asked).

        The `unit.Runner` every `unit_of_work` method runs on. `what` names the operation in
        errors (a function of no argument if it is only to be made when one is raised)."""

        async def attempt() -> T:
            async with self._pool.acquire(timeout=self.settings.connect_timeout) as conn:
                if not transaction:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)

        return await retrying(
            attempt,
            what=what,
            target=self.target,
            policy=self.settings.retry,
            clock=self._clock,
            sleep=self._sleep,
            on_fault=self._fault,
            on_success=self._recovered,
        )

    async def _bulk(
        self,
        what: str,
        rows: Sequence[R],
        write: Callable[[Connection, Sequence[R]], Awaitable[int]],
        *,
        key: Callable[[R], tuple[int, str]],
    ) -> int:
        """Run a bulk write in chunks, a few at a time; returns the rows written.

        Each chunk is one statement and its own retried unit: rows of a bulk write are
        independent idempotent upserts, so a failure leaves every chunk either written or not,
        and running the call again completes it. The first error is raised once all are done.
        Rows are sorted by (resource_id, cluster) first: concurrent chunks then touch disjoint
        resources (no two transactions share the foreign key's lock on one resource row, which
        would cost a multixact) and insert into the indexes in order.
        """
        size = max(1, self.settings.bulk_chunk_rows)
        if len(rows) <= size:
            return await self._run(what, lambda c: write(c, rows))
        rows = sorted(rows, key=key)
        limiter = anyio.CapacityLimiter(max(1, self.settings.bulk_parallelism))
        written: list[int] = []
        errors: list[Exception] = []

        async def chunk(start: int) -> None:
            part = rows[start : start + size]
            async with limiter:
                try:
                    written.append(await self._run(f"{what} from row {start}", lambda c: write(c, part)))
                except Exception as exc:
                    errors.append(exc)

        async with anyio.create_task_group() as tg:
            for start in range(0, len(rows), size):
                tg.start_soon(chunk, start)
        if errors:
            raise errors[0]
        return sum(written)

    async def run_in_transaction(self, what: str, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run several repository calls as one retried transaction.

        `fn` may run more than once (after a connection fault), so it must do nothing but
        database work on the connection it is given; `what` names the table and key in errors.
        """
        return await self._run(what, fn, transaction=True)

    # -- sealing (the boundary: sealed on the way in, opened on the way out) ---------------------

    @property
    def _readable_keys(self) -> list[str] | None:
        return None if self.sealer is None else list(self.sealer.readable_keys)

    def _seal_resource(self, row: ResourceRow) -> ResourceRow:
        if self.sealer is None:
            return row
        where = SealedRow(
            table="resources", api_group=row.api_group, kind=row.kind, namespace=row.namespace, name=row.name
        )
        template = self.sealer.seal(row.template, where)
        return row if template is row.template else replace(row, template=template)

    def _seal_rollout(self, template: JSON) -> JSON:
        return template if self.sealer is None else self.sealer.seal(template, _rollout_row(template))

    def _seal_work(self, resource_id: ResourceId, cluster: str, desired: JSON) -> JSON:
        if self.sealer is None:
            return desired
        return self.sealer.seal(desired, SealedRow.of_work(desired, resource_id=resource_id, cluster=cluster))

    def _open(self, work: W, cluster: str) -> W:
        """A claimed or indexed work with its sealed values opened; if they do not open, the
        readable rest and the reason (`sealing_error`), logged: one row's key problem is that
        row's, and the work can still be deleted or orphaned (its identity is never sealed)."""
        if self.sealer is None or SEALED not in work.desired:
            return work
        where = SealedRow.of_work(work.desired, resource_id=work.resource_id, cluster=cluster)
        try:
            return replace(work, desired=self.sealer.unseal(work.desired, where))
        except SealingError as exc:
            log.error("%s", exc)
            return replace(work, desired=self.sealer.strip(work.desired), sealing_error=str(exc))

    @staticmethod
    def _report_held(held: Sequence[HeldWork]) -> None:
        for h in held:
            log.error(
                "works resource_id=%s cluster=%s: not rewritten: its sensitive values are sealed with "
                "encryption key %r, which the key file does not hold (give the controller that key "
                "again, after the active one; see `federation keys`)",
                h.resource_id,
                h.cluster,
                h.key_id,
            )

    # -- pass-throughs: a repository function run as a retried unit of work (see `unit`) --------
    # Their signatures and docstrings are the repository functions' (without the connection).

    upsert_clusters = unit_of_work(clusters.upsert_clusters, lambda rows: f"clusters name={_names(rows)}")
    delete_cluster = unit_of_work(clusters.delete_cluster, "clusters name={name}")
    list_clusters = unit_of_work(clusters.list_clusters, "clusters")
    acquire_cluster_lease = unit_of_work(leases.acquire_cluster_lease, "cluster_leases cluster={cluster}")
    release_cluster_lease = unit_of_work(leases.release_cluster_lease, "cluster_leases cluster={cluster}")
    clusters_held_by = unit_of_work(leases.clusters_held_by, "cluster_leases holder={holder}")
    take_cluster_lease = unit_of_work(leases.take_cluster_lease, "cluster_leases cluster={cluster}")
    renew_cluster_leases = unit_of_work(leases.renew_cluster_leases, "cluster_leases holder={holder}")
    release_cluster_claims = unit_of_work(leases.release_cluster_claims, "works cluster={cluster}")
    list_cluster_leases = unit_of_work(leases.list_cluster_leases, "cluster_leases")
    heartbeat_replica = unit_of_work(leases.heartbeat_replica, "controller_replicas replica={replica}")
    retire_replica = unit_of_work(leases.retire_replica, "controller_replicas replica={replica}")
    live_replicas = unit_of_work(leases.live_replicas, "controller_replicas")
    prune_replicas = unit_of_work(leases.prune_replicas, "controller_replicas")
    collected_statuses = unit_of_work(collected.collected_statuses, "member_status (collected)")
    notify = unit_of_work(collected.notify, "notify {channel}")

    mark_resource_deleted = unit_of_work(resources.mark_resource_deleted, "resources {ref}")
    purge_resource = unit_of_work(resources.purge_resource, "resources id={resource_id}")
    resource_id_of = unit_of_work(resources.resource_id_of, "resources {ref}")
    upsert_policy = unit_of_work(policies.upsert_policy, "policies {row.kind} {row.namespace}/{row.name}")
    delete_policy = unit_of_work(policies.delete_policy, "policies {kind} {namespace}/{name}")

    record_apply_results = unit_of_work(
        works.record_apply_results, lambda rows: f"works ({len(rows)} results)"
    )
    sealed_key_usage = unit_of_work(works.sealed_key_usage, "works, resources")
    recorded_works = unit_of_work(sweep.recorded_works, "works (sweep)")
    works_to_drain = unit_of_work(works.works_to_drain, "works cluster={cluster}")
    abandon_cluster = unit_of_work(works.abandon_cluster, "works cluster={cluster}")
    count_works = unit_of_work(works.count_works, "works resource_id={resource_id}")
    finish_deletion = unit_of_work(works.finish_deletion, "works id={work_id}")
    release_claims = unit_of_work(works.release_claims, "works claimed_by={holder}")
    renew_claims = unit_of_work(works.renew_claims, "works claimed_by={holder}")
    release_foreign_claims = unit_of_work(works.release_foreign_claims, "works claimed_by")
    requeue_work = unit_of_work(works.requeue_work, "works resource_id={resource_id} cluster={cluster}")
    placement_of = unit_of_work(placements.placement_of, "placement_decisions resource_id={resource_id}")
    policy_summary = unit_of_work(placements.policy_summary, "placements policy_id={policy_id}")

    sequence_changes = unit_of_work(changes.sequence_changes, "changes (sequencing)")
    changes_after = unit_of_work(changes.changes_after, "changes position>{position}")
    last_position = unit_of_work(changes.last_position, "changes")
    first_position = unit_of_work(changes.first_position, "changes")
    sink_position = unit_of_work(changes.sink_position, "sink_positions name={name}")
    save_sink_position = unit_of_work(changes.save_sink_position, "sink_positions name={name}")
    position_at = unit_of_work(changes.position_at, "changes time>={when}")

    delete_rollout = unit_of_work(rollouts.delete_rollout, "rollouts resource_id={resource_id}")
    rollout_copies = unit_of_work(rollouts.rollout_copies, "works resource_id={resource_id} (rollout)")
    approve_rollouts = unit_of_work(rollouts.approve_rollouts, "rollouts (approve)")
    undo_rollouts = unit_of_work(rollouts.undo_rollouts, "rollouts (undo)")

    delete_orphaned_statuses = unit_of_work(status.delete_orphaned_statuses, "member_status")
    append_events = unit_of_work(events.append_events, lambda rows: f"events ({len(rows)} rows)")
    list_events = unit_of_work(events.list_events, "events")
    get_checkpoint = unit_of_work(
        checkpoints.get_checkpoint, "watch_checkpoints cluster={cluster} resource={resource}"
    )
    get_checkpoints = unit_of_work(checkpoints.get_checkpoints, "watch_checkpoints cluster={cluster}")
    set_checkpoints = unit_of_work(checkpoints.set_checkpoints, "watch_checkpoints")

    resource_status = unit_of_work(reads.resource_status, "fleet_resource_status resource_id={resource_id}")
    resource_statuses = unit_of_work(reads.resource_statuses, "fleet_resource_status")
    resource_status_page = unit_of_work(reads.resource_status_page, "fleet_resource_status")
    cluster_status = unit_of_work(reads.cluster_status, "fleet_cluster_status cluster={cluster}")
    cluster_statuses = unit_of_work(reads.cluster_statuses, "fleet_cluster_status")
    works_of_resource = unit_of_work(reads.works_of_resource, "fleet_work_status resource_id={resource_id}")
    works_of_cluster = unit_of_work(reads.works_of_cluster, "fleet_work_status cluster={cluster}")
    works_of_resources = unit_of_work(
        reads.works_of_resources, lambda resource_ids: f"fleet_work_status ({len(resource_ids)} resources)"
    )

    # -- written out: sealed on the way in ----------------------------------------------------

    async def save_rollout(self, row: RolloutRow) -> bool:
        """Save a template's rollout (the controller's columns); whether anything was written.

        Written out: the revision the unreached clusters keep is sealed as templates are."""
        stable = self._seal_rollout(row.stable_template)
        return await self._run(
            f"rollouts resource_id={row.resource_id}",
            lambda c: rollouts.save_rollout(c, replace(row, stable_template=stable)),
        )

    async def rollout_of(self, resource_id: ResourceId) -> RolloutRow | None:
        """A template's rollout, its kept revision opened (see `save_rollout`)."""
        row = await self._run(
            f"rollouts resource_id={resource_id}", lambda c: rollouts.rollout_of(c, resource_id)
        )
        if row is None or self.sealer is None or SEALED not in row.stable_template:
            return row
        return replace(
            row, stable_template=self.sealer.unseal(row.stable_template, _rollout_row(row.stable_template))
        )

    list_rollouts = unit_of_work(rollouts.list_rollouts, "rollouts")

    async def upsert_resources(self, rows: Sequence[ResourceRow]) -> list[ResourceId]:
        """Insert or update hub templates; their ids in input order (unchanged rows: no write).

        Written out: each template is sealed before it is sent."""
        what = "resources"
        if rows:
            what = f"resources {rows[0].ref}" + (f" (+{len(rows) - 1} more)" if len(rows) > 1 else "")
        sealed = [self._seal_resource(r) for r in rows]
        return await self._run(what, lambda c: resources.upsert_resources(c, sealed))

    async def register_resource(self, row: ResourceRow) -> tuple[ResourceId, bool]:
        """Upsert one template: its id, and whether its row is new (so it has no placement).

        Written out: the template is sealed before it is sent."""
        return await self._registrations.submit(self._seal_resource(row))

    async def _register(self, rows: Sequence[ResourceRow]) -> list[tuple[ResourceId, bool]]:
        """One upsert for a batch of sealed templates (one per row should a template come twice,
        which the upsert refuses; the hub's queue never reconciles one key twice at once)."""
        if len({r.ref for r in rows}) < len(rows):
            return [found for r in rows for found in await self._register([r])]
        return await self._run(
            lambda: f"resources ({len(rows)} rows: {rows[0].ref}…)",
            lambda c: resources.upsert_resources_new(c, rows),
        )

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
        """Save a placement and its works in one statement; writes nothing when nothing changed.

        See `federation.store.repo.placements.save_placement`. Raises `SealingUnavailableError`
        (writing nothing) when a desired manifest holds a sensitive value and the sealer has no
        key. Works sealed with a key the sealer cannot open are not rewritten (`works_held`).
        Written out for that: manifests sealed on the way in, held works reported on the way out.
        """
        sealed = [
            replace(w, desired=self._seal_work(resource_id, w.cluster, w.desired)) for w in desired_works
        ]
        readable_keys = self._readable_keys
        change = await self._run(
            f"placements resource_id={resource_id}",
            lambda c: placements.save_placement(
                c,
                resource_id,
                policy_id=policy_id,
                decisions=decisions,
                desired_works=sealed,
                unschedulable=unschedulable,
                orphan=orphan,
                readable_keys=readable_keys,
            ),
        )
        self._report_held([HeldWork(resource_id, cluster, kid) for cluster, kid in change.works_held])
        return change

    # -- written out: bulk writes, in chunks ----------------------------------------------------

    async def upsert_desired_works(self, rows: Sequence[ResourceWork]) -> int:
        """Bulk upsert of desired works across resources (no unplacing); returns rows written.

        Sealed and held back as `save_placement` does, in chunks (see `_bulk`)."""
        works.check_unique_works(rows)
        sealed = [replace(r, desired=self._seal_work(r.resource_id, r.cluster, r.desired)) for r in rows]
        readable_keys = self._readable_keys

        async def write(conn: Connection, part: Sequence[ResourceWork]) -> int:
            written, held = await works.upsert_desired_works(conn, part, readable_keys=readable_keys)
            self._report_held(held)
            return written

        return await self._bulk(
            f"works ({len(rows)} rows)", sealed, write, key=lambda r: (r.resource_id, r.cluster)
        )

    async def upsert_member_statuses(self, rows: Sequence[MemberStatusRow]) -> int:
        """Bulk upsert of member statuses; rows of unknown works are skipped. Returns rows written.

        Written out: in chunks (see `_bulk`)."""
        status.check_unique_statuses(rows)
        return await self._bulk(
            f"member_status ({len(rows)} rows)",
            rows,
            status.upsert_member_statuses,
            key=lambda r: (r.resource_id, r.cluster),
        )

    # -- written out: opened on the way out -----------------------------------------------------

    async def claim_due_works(
        self, cluster: str, *, holder: str, limit: int, lease_seconds: float
    ) -> list[ClaimedWork]:
        """Lease up to `limit` due works of `cluster` to `holder` for `lease_seconds`.

        Their sealed values are opened; a work that does not open comes with `sealing_error`."""
        claimed = await self._run(
            f"works cluster={cluster}",
            lambda c: works.claim_due_works(
                c, cluster, holder=holder, limit=limit, lease_seconds=lease_seconds
            ),
        )
        return [self._open(w, cluster) for w in claimed]

    async def work_index(self, cluster: str) -> list[IndexedWork]:
        """Every work of `cluster` (its propagator maps member objects to works with it), opened
        as `claim_due_works` opens them."""
        indexed = await self._run(f"works cluster={cluster}", lambda c: works.work_index(c, cluster))
        return [self._open(w, cluster) for w in indexed]

    # -- written out: batches until done, each batch its own unit of work -------------------------

    async def purge_deleted_resources(self, *, batch: int = 1000) -> int:
        """Remove every resource marked deleted whose works are all done (deleted, or orphaned on
        purpose), in batches; returns how many went. The hub controller marks a template deleted
        when it is deleted on the hub *or* no policy governs it any more: the store keeps no
        template (a Secret's, say) it has no use for."""
        total = 0
        while True:
            done = await self._run(
                "resources (purge)", lambda c: resources.purge_deleted_resources(c, batch=batch)
            )
            total += done
            if done < batch:
                return total

    async def prune_events(self, older_than: timedelta | None = None, *, batch: int = 10_000) -> int:
        """Delete events older than `older_than` (default: the retention setting), in batches."""
        age = self.settings.event_retention if older_than is None else older_than
        return await self._prune("events", age, events.prune_events_batch, batch)

    async def prune_changes(self, older_than: timedelta | None = None, *, batch: int = 10_000) -> int:
        """Delete change-log rows older than `older_than` (default: the retention setting)."""
        age = self.settings.change_retention if older_than is None else older_than
        return await self._prune("changes", age, changes.prune_changes_batch, batch)

    async def _prune(
        self, table: str, age: timedelta, prune: Callable[..., Awaitable[int]], batch: int
    ) -> int:
        """Delete a table's rows older than `age`, in short transactions of `batch` rows."""
        if age < timedelta(0):
            raise StoreError(f"{table}: a negative retention ({age}) would delete the future")
        before = await self._run(table, lambda c: c.fetchval("SELECT now() - $1::interval", age))
        total = 0
        while True:
            deleted = await self._run(table, lambda c: prune(c, before=before, batch=batch))
            total += deleted
            if deleted < batch:
                return total


def _names(rows: Sequence[ClusterRow]) -> str:
    """The first few names of a batch of clusters, for an error message."""
    return ",".join(r.name for r in rows[:3]) + ("…" if len(rows) > 3 else "")


def _rollout_row(template: JSON) -> SealedRow:
    """The sealed row of a rollout's kept revision: its template's identity (never sealed)."""
    meta = template.get("metadata") or {}
    return SealedRow(
        table="rollouts",
        api_group=str(template.get("apiVersion") or "").rpartition("/")[0],
        kind=str(template.get("kind") or ""),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
    )
