"""`Store`: the controller's one handle on Postgres.

It owns an asyncpg pool and runs every repository call as a retried unit of work (see
`retry`): acquire a connection, run the call (inside a transaction when it has more than one
statement; a single statement is atomic by itself and saves two round trips), translate errors
into `federation.errors`. It also keeps the store's health for the controller's readiness
probe: unhealthy from the first connection fault until the next successful call.

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
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
import asyncpg

from federation.errors import SealingError, StoreError
from federation.store.db import Connection, init_connection
from federation.store.enums import Health, PolicyKind, WorkState
from federation.store.repo import (
    checkpoints,
    clusters,
    events,
    leases,
    placements,
    policies,
    reads,
    resources,
    status,
    works,
)
from federation.store.repo.sweep import RecordedWork, recorded_works
from federation.store.repo.works import HeldWork
from federation.store.retry import Clock, RetryPolicy, Sleep, retrying
from federation.store.rows import (
    ApplyResult,
    Checkpoint,
    ClaimedWork,
    ClusterRow,
    ClusterStatus,
    Decision,
    DesiredWork,
    EventRow,
    IndexedWork,
    MemberStatusRow,
    ObjectRef,
    PlacementChange,
    PolicyId,
    PolicyRow,
    PolicySummary,
    ResourceId,
    ResourceRow,
    ResourceStatus,
    ResourceWork,
    StoredEvent,
    WorkId,
    WorkStatus,
)
from federation.store.sealing import SEALED, SealedRow, Sealer
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
        clock: Clock,
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

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        settings: StoreSettings | None = None,
        on_health_change: HealthListener | None = None,
        clock: Clock = time.monotonic,
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
        self, what: str, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        """Run `fn` on a pooled connection as one retried attempt (in a transaction if asked)."""

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

    # -- clusters and leases ----------------------------------------------------------------

    async def upsert_clusters(self, rows: Sequence[ClusterRow]) -> int:
        """Insert or update member clusters by name; returns rows written (unchanged: 0)."""
        names = ",".join(r.name for r in rows[:3]) + ("…" if len(rows) > 3 else "")
        return await self._run(f"clusters name={names}", lambda c: clusters.upsert_clusters(c, rows))

    async def delete_cluster(self, name: str) -> bool:
        return await self._run(f"clusters name={name}", lambda c: clusters.delete_cluster(c, name))

    async def list_clusters(self) -> list[ClusterRow]:
        return await self._run("clusters", clusters.list_clusters)

    async def acquire_cluster_lease(self, cluster: str, *, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease of `cluster` for `holder`; False when another holder has it."""
        return await self._run(
            f"cluster_leases cluster={cluster}",
            lambda c: leases.acquire_cluster_lease(c, cluster, holder=holder, ttl_seconds=ttl_seconds),
        )

    async def release_cluster_lease(self, cluster: str, *, holder: str) -> bool:
        return await self._run(
            f"cluster_leases cluster={cluster}",
            lambda c: leases.release_cluster_lease(c, cluster, holder=holder),
        )

    async def clusters_held_by(self, holder: str) -> list[str]:
        return await self._run(
            f"cluster_leases holder={holder}", lambda c: leases.clusters_held_by(c, holder)
        )

    # -- resources and policies ---------------------------------------------------------------

    async def upsert_resources(self, rows: Sequence[ResourceRow]) -> list[ResourceId]:
        """Insert or update hub templates; their ids in input order (unchanged rows: no write)."""
        what = "resources"
        if rows:
            what = f"resources {rows[0].ref}" + (f" (+{len(rows) - 1} more)" if len(rows) > 1 else "")
        sealed = [self._seal_resource(r) for r in rows]
        return await self._run(what, lambda c: resources.upsert_resources(c, sealed))

    async def register_resource(self, row: ResourceRow) -> tuple[ResourceId, bool]:
        """Upsert one template: its id, and whether its row is new (so it has no placement)."""
        sealed = self._seal_resource(row)
        found = await self._run(f"resources {row.ref}", lambda c: resources.upsert_resources_new(c, [sealed]))
        return found[0]

    async def mark_resource_deleted(self, ref: ObjectRef) -> ResourceId | None:
        """Record the template's deletion on the hub; None if the store never had it."""
        return await self._run(f"resources {ref}", lambda c: resources.mark_resource_deleted(c, ref))

    async def purge_resource(self, resource_id: ResourceId) -> bool:
        """Remove a deleted resource whose works are all finished; False if some remain."""
        return await self._run(
            f"resources id={resource_id}", lambda c: resources.purge_resource(c, resource_id)
        )

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

    async def resource_id_of(self, ref: ObjectRef) -> ResourceId | None:
        return await self._run(f"resources {ref}", lambda c: resources.resource_id_of(c, ref))

    async def upsert_policy(self, row: PolicyRow) -> PolicyId:
        return await self._run(
            f"policies {row.kind} {row.namespace}/{row.name}", lambda c: policies.upsert_policy(c, row)
        )

    async def delete_policy(self, *, kind: PolicyKind, namespace: str, name: str) -> bool:
        return await self._run(
            f"policies {kind} {namespace}/{name}",
            lambda c: policies.delete_policy(c, kind=kind, namespace=namespace, name=name),
        )

    # -- placements and works --------------------------------------------------------------------

    async def save_placement(
        self,
        resource_id: ResourceId,
        *,
        policy_id: PolicyId | None,
        decisions: Sequence[Decision],
        desired_works: Sequence[DesiredWork],
        unschedulable: str | None = None,
        orphan: bool = False,
    ) -> PlacementChange:
        """Save a placement and its works in one statement; writes nothing when nothing changed.

        See `federation.store.repo.placements.save_placement`. Raises `SealingUnavailableError`
        (writing nothing) when a desired manifest holds a sensitive value and the sealer has no
        key. Works sealed with a key the sealer cannot open are not rewritten (`works_held`).
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

    async def upsert_desired_works(self, rows: Sequence[ResourceWork]) -> int:
        """Bulk upsert of desired works across resources (no unplacing); returns rows written.

        Sealed and held back as `save_placement` does."""
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

    async def record_apply_result(
        self,
        work_id: WorkId,
        *,
        version: int,
        state: WorkState,
        applied_hash: str | None = None,
        member_resource_version: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        baseline: str | None = None,
    ) -> int:
        """Record an apply's outcome if the work is still at `version` (else `VersionConflictError`).

        Releases the claim; returns the work's new version.
        """
        return await self._run(
            f"works id={work_id}",
            lambda c: works.record_apply_result(
                c,
                work_id,
                version=version,
                state=state,
                applied_hash=applied_hash,
                member_resource_version=member_resource_version,
                error=error,
                next_attempt_at=next_attempt_at,
                baseline=baseline,
            ),
        )

    async def record_apply_results(self, rows: Sequence[ApplyResult]) -> dict[WorkId, int | None]:
        """Many `record_apply_result`s in one statement; None marks a refused (stale) result."""
        return await self._run(f"works ({len(rows)} results)", lambda c: works.record_apply_results(c, rows))

    async def work_index(self, cluster: str) -> list[IndexedWork]:
        """Every work of `cluster` (its propagator maps member objects to works with it), opened
        as `claim_due_works` opens them."""
        indexed = await self._run(f"works cluster={cluster}", lambda c: works.work_index(c, cluster))
        return [self._open(w, cluster) for w in indexed]

    async def recorded_works(self) -> list[RecordedWork]:
        """Every work with its template, cluster, state, decision and policy: what the sweep
        (`federation.hub.sweep`) checks against the hub and the members."""
        return await self._run("works (sweep)", recorded_works)

    async def sealed_key_usage(self) -> dict[str, dict[str, int]]:
        """How many rows hold values sealed with each key: {key id: {table: rows}}. A key that
        is not here any more may be dropped from the key file (a full scan of both tables)."""
        return await self._run("works, resources", works.sealed_key_usage)

    async def works_to_drain(self, cluster: str) -> int:
        """Works of `cluster` not yet deleted (or orphaned): what a leaving cluster waits for."""
        return await self._run(f"works cluster={cluster}", lambda c: works.works_to_drain(c, cluster))

    async def abandon_cluster(self, cluster: str, reason: str) -> int:
        """Orphan what is left of a cluster removed before it was drained; how many works."""
        return await self._run(
            f"works cluster={cluster}", lambda c: works.abandon_cluster(c, cluster, reason)
        )

    async def count_works(self, resource_id: ResourceId) -> int:
        return await self._run(
            f"works resource_id={resource_id}", lambda c: works.count_works(c, resource_id)
        )

    async def placement_of(self, resource_id: ResourceId) -> list[Decision]:
        """The stored decision rows of a resource (the `previous` decision for stability)."""
        return await self._run(
            f"placement_decisions resource_id={resource_id}",
            lambda c: placements.placement_of(c, resource_id),
        )

    async def policy_summary(self, policy_id: PolicyId) -> PolicySummary:
        return await self._run(
            f"placements policy_id={policy_id}", lambda c: placements.policy_summary(c, policy_id)
        )

    async def finish_deletion(self, work_id: WorkId, version: int) -> None:
        """Delete a work row whose member object is gone, if still at `version`."""
        await self._run(f"works id={work_id}", lambda c: works.finish_deletion(c, work_id, version))

    async def release_claims(self, holder: str, *, work_ids: Sequence[WorkId] | None = None) -> int:
        """Release `holder`'s claims (on shutdown, or after a version conflict)."""
        return await self._run(
            f"works claimed_by={holder}", lambda c: works.release_claims(c, holder, work_ids=work_ids)
        )

    async def release_foreign_claims(self, holder: str) -> int:
        """Release claims held by anyone but `holder` (only a leader may call this)."""
        return await self._run("works claimed_by", lambda c: works.release_foreign_claims(c, holder))

    async def requeue_work(self, resource_id: ResourceId, cluster: str) -> int | None:
        """Make a settled work due now (drift); returns its new version, None if not settled."""
        return await self._run(
            f"works resource_id={resource_id} cluster={cluster}",
            lambda c: works.requeue_work(c, resource_id, cluster),
        )

    # -- status, events, checkpoints -------------------------------------------------------------

    async def upsert_member_statuses(self, rows: Sequence[MemberStatusRow]) -> int:
        """Bulk upsert of member statuses; rows of unknown works are skipped. Returns rows written."""
        status.check_unique_statuses(rows)
        return await self._bulk(
            f"member_status ({len(rows)} rows)",
            rows,
            status.upsert_member_statuses,
            key=lambda r: (r.resource_id, r.cluster),
        )

    async def delete_orphaned_statuses(self) -> int:
        """Remove member statuses whose work is gone (run now and then, like `prune_events`)."""
        return await self._run("member_status", status.delete_orphaned_statuses)

    async def append_events(self, rows: Sequence[EventRow]) -> int:
        return await self._run(f"events ({len(rows)} rows)", lambda c: events.append_events(c, rows))

    async def list_events(
        self,
        *,
        cluster: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        type_: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events, newest first; every filter is optional."""
        return await self._run(
            "events",
            lambda c: events.list_events(
                c,
                cluster=cluster,
                namespace=namespace,
                name=name,
                kind=kind,
                type_=type_,
                since=since,
                limit=limit,
            ),
        )

    async def prune_events(self, older_than: timedelta | None = None, *, batch: int = 10_000) -> int:
        """Delete events older than `older_than` (default: the retention setting), in batches."""
        age = self.settings.event_retention if older_than is None else older_than
        if age < timedelta(0):
            raise StoreError(f"events: a negative retention ({age}) would delete the future")
        before = await self._run("events", lambda c: c.fetchval("SELECT now() - $1::interval", age))
        total = 0
        while True:
            deleted = await self._run(
                "events", lambda c: events.prune_events_batch(c, before=before, batch=batch)
            )
            total += deleted
            if deleted < batch:
                return total

    async def get_checkpoint(self, cluster: str, resource: str) -> str | None:
        return await self._run(
            f"watch_checkpoints cluster={cluster} resource={resource}",
            lambda c: checkpoints.get_checkpoint(c, cluster, resource),
        )

    async def get_checkpoints(self, cluster: str) -> dict[str, str]:
        return await self._run(
            f"watch_checkpoints cluster={cluster}", lambda c: checkpoints.get_checkpoints(c, cluster)
        )

    async def set_checkpoints(self, rows: Sequence[Checkpoint]) -> int:
        return await self._run("watch_checkpoints", lambda c: checkpoints.set_checkpoints(c, rows))

    # -- aggregated reads ---------------------------------------------------------------------------

    async def resource_status(self, resource_id: ResourceId) -> ResourceStatus | None:
        return await self._run(
            f"fleet_resource_status resource_id={resource_id}",
            lambda c: reads.resource_status(c, resource_id),
        )

    async def resource_statuses(self) -> list[ResourceStatus]:
        return await self._run("fleet_resource_status", reads.resource_statuses)

    async def cluster_status(self, cluster: str) -> ClusterStatus | None:
        return await self._run(
            f"fleet_cluster_status cluster={cluster}", lambda c: reads.cluster_status(c, cluster)
        )

    async def cluster_statuses(self) -> list[ClusterStatus]:
        return await self._run("fleet_cluster_status", reads.cluster_statuses)

    async def works_of_resource(self, resource_id: ResourceId) -> list[WorkStatus]:
        return await self._run(
            f"fleet_work_status resource_id={resource_id}", lambda c: reads.works_of_resource(c, resource_id)
        )

    async def works_of_cluster(self, cluster: str, *, limit: int = 1000) -> list[WorkStatus]:
        return await self._run(
            f"fleet_work_status cluster={cluster}", lambda c: reads.works_of_cluster(c, cluster, limit=limit)
        )

    async def resource_status_page(
        self,
        *,
        api_group: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        worst_health: Sequence[Health] | None = None,
        limit: int = 100,
        offset: int = 0,
        order: str = "name",
    ) -> tuple[list[ResourceStatus], int]:
        """A filtered page of `fleet_resource_status` and the number of matching rows.

        Filtering and paging happen in SQL so a dashboard polling a large fleet reads one page,
        not every resource. `order` is "name" (stable) or "attention" (problems first, then the
        most recently changed), what a status page shows when it can only show the top N.
        """
        return await self._run(
            "fleet_resource_status",
            lambda c: reads.resource_status_page(
                c,
                api_group=api_group,
                kind=kind,
                namespace=namespace,
                worst_health=worst_health,
                limit=limit,
                offset=offset,
                order=order,
            ),
        )

    async def works_of_resources(self, resource_ids: Sequence[ResourceId]) -> list[WorkStatus]:
        """The per-cluster rows of several resources in one round trip."""
        return await self._run(
            f"fleet_work_status ({len(resource_ids)} resources)",
            lambda c: reads.works_of_resources(c, resource_ids),
        )
