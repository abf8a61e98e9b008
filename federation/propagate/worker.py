"""The propagator of one member cluster: spec down, drift and deletions seen, status up.

Postgres is the queue. The propagator claims due works of its cluster (a lease, so a crashed
process's claims expire and another can take them), applies each with the `Applier`, and
records the outcome with the version its claim returned, so a stale result is refused. It is
woken by a hint when the hub side changed works of its cluster, and polls anyway every
`poll_interval` (hints are an optimisation, the table is the truth).

It also watches, in the member, the objects this hub owns (one informer per kind, selected by
our hub label) and turns what it sees into work: a managed field edited in the member (drift)
or a copy deleted in the member makes the work due again; every status change goes up through
`federation.status.collect` (a `member_status` row, batched, and a mark for the hub's status
writer).

While the cluster is not ready nothing is claimed: its works wait, and complete when it is back.

A work whose sealed values do not open (`ClaimedWork.sealing_error`: the key file lacks the key
that sealed it, or the row was altered) is not applied: it is retried with backoff, its
`last_error` saying why, until the controller is given the key; it can still be deleted or
orphaned (its identity is never sealed), and its member copy is not checked for drift.

Why one module of this length: the claim loop, the member informers and the batched writes all
read and update one in-memory index of the member's works (what a member object maps to, and in
which state), under one event loop and without locks. The parts with a job of their own are
beside it: `applier` (one member write and its conflict rules), `drift`, `fleet` (one
supervised propagator per member) and `federation.status.collect` (status up).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from federation.clusters import Member
from federation.errors import KubeError, StoreError, VersionConflictError
from federation.informers import Handlers, Informer
from federation.informers.ratelimit import exponential
from federation.kube import GVK, Obj
from federation.kube.keys import ResourceKey
from federation.kube.throttle import stop_signal
from federation.logs import RECONCILE_ID
from federation.metrics import (
    APPLY_DURATION,
    APPLY_RESULTS,
    CLAIM_ROUNDS,
    CLAIMS_RENEWED,
    CONFLICTS,
    DRIFT_EVENTS,
    MEMBER_WRITES,
    PROPAGATION_LATENCY,
    WORKS_BACKLOG,
)
from federation.propagate.applier import Applier, Outcome, Result, desired_hash, owner_hub
from federation.propagate.cache import member_copy
from federation.runtime.slots import PrioritySlots
from federation.status.bounds import ERROR_LIMIT, cut
from federation.status.collect import StatusCollector, StatusListener
from federation.store import (
    ApplyResult,
    ClaimedWork,
    EventRow,
    EventType,
    IndexedWork,
    ObjectRef,
    ResourceId,
    Store,
    WorkId,
    WorkState,
    give_up_after,
)
from federation.tracing import span
from federation.translate import OWNERSHIP, Secrecy
from federation.translate.identity import Identity

log = logging.getLogger(__name__)

#: Whether the cluster is ready now (from the registry's probes).
ReadyCheck = Callable[[], bool]


@dataclass
class PropagatorSettings:
    workers: int = 16
    batch: int = 256
    lease_seconds: float = 60.0
    poll_interval: float = 2.0
    retry_base: float = 1.0
    retry_cap: float = 300.0
    conflict_recheck: float = 60.0
    status_flush: float = 0.2


@dataclass
class _Entry:
    """What the propagator remembers of one work, to map member objects to it."""

    id: int
    resource_id: ResourceId
    state: WorkState
    desired: Mapping[str, Any]
    desired_hash: str
    baseline: str | None
    version: int
    queued_at: float | None = None
    unreadable: bool = False
    """Its sealed values did not open: `desired` lacks them, so it is no drift baseline."""


def _object_key(obj: Mapping[str, Any]) -> ResourceKey:
    return ResourceKey.of(obj)


def _urgency(work: ClaimedWork) -> int:
    """0 for a change to what a member already has (an edit, a deletion, a drift repair), 1 for
    a first apply: a one-line edit made during a bulk rollout goes ahead of the rollout's
    backlog (`PrioritySlots`), as the hub's queue ranks template creations below edits."""
    taking_away = work.state in (WorkState.DELETING, WorkState.ORPHANING)
    return 0 if work.applied_hash is not None or taking_away else 1


def _latest_per_work(
    batch: list[tuple[ApplyResult, Callable[[int], None] | None]],
) -> tuple[list[tuple[ApplyResult, Callable[[int], None] | None]], int]:
    """One result per work, the one of its latest claim; and how many were dropped.

    A work changed while its apply was in flight is claimed again, and both applies can end
    within one batching window; the store refuses a batch naming a work twice, which once lost
    a whole batch of results (their works waited out their leases: a minute). The older claim's
    result is stale anyway (the store would refuse its version)."""
    latest: dict[WorkId, tuple[ApplyResult, Callable[[int], None] | None]] = {}
    for item in batch:
        kept = latest.get(item[0].work_id)
        if kept is None or item[0].version >= kept[0].version:
            latest[item[0].work_id] = item
    return list(latest.values()), len(batch) - len(latest)


def _ref(key: ResourceKey) -> ObjectRef:
    return ObjectRef(api_group=key.group, kind=key.kind, namespace=key.namespace, name=key.name)


@dataclass
class ClusterPropagator:
    member: Member
    store: Store
    hub_id: str
    holder: str
    ready: ReadyCheck
    on_status: StatusListener
    settings: PropagatorSettings = field(default_factory=PropagatorSettings)
    rng: random.Random = field(default_factory=random.Random)
    secrecy: Secrecy | None = None
    """Which values are sensitive and the key of their hashes (drift baselines and diffs)."""

    def __post_init__(self) -> None:
        assert self.member.client is not None and self.member.discovery is not None
        self.cluster = self.member.name
        self._informers: dict[GVK, Informer] = {}
        self._unwatch: list[Callable[[], None]] = []  # takes our handlers off them
        self._unstarted: set[WorkId] = set()  # claimed, not started: released on a crash
        self._held: dict[WorkId, int] = {}  # claimed, not yet done: id -> claimed version
        self.applier = Applier(
            cluster=self.cluster,
            client=self.member.client,
            discovery=self.member.discovery,
            hub_id=self.hub_id,
            lookup=self._lookup,
            secrecy=self.secrecy,
        )
        self._index: dict[ResourceKey, _Entry] = {}
        self._wake = anyio.Event()
        self.statuses = StatusCollector(self.cluster, self.on_status)
        self._events: list[EventRow] = []
        self._requeues: list[tuple[_Entry, ResourceKey, str]] = []
        self._results: list[tuple[ApplyResult, Callable[[int], None] | None]] = []
        self._results_ready = anyio.Event()
        self._flush = anyio.Event()
        self._in_flight = 0
        self._active: dict[ResourceKey, anyio.Event] = {}
        self._stopping = False
        self._stop_signal = anyio.Event()  # replaced by run()'s, which its tasks see
        self.loaded = anyio.Event()
        self._extra = {"cluster": self.cluster}

    # -- signals from outside --------------------------------------------------------------

    def wake(self) -> None:
        """Works of this cluster changed: claim now rather than at the next poll."""
        log.debug("woken", extra=self._extra)
        self._wake.set()

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled. A crash (a bug) is raised after what finished is recorded and the
        works claimed but not started are released: the next propagator of this member
        (`federation.propagate.fleet` restarts one) claims them at once, not a lease later.
        Either way our handlers leave the member's informers, which outlive us."""
        with stop_signal() as stopping:  # our tasks stop waiting for tokens once we stop
            self._stop_signal = stopping
            try:
                await self._load_index()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._flush_loop)
                    tg.start_soon(self._record_loop)
                    tg.start_soon(self._check_after_sync)
                    tg.start_soon(self._renew_loop)
                    try:
                        await self._claim_loop()
                    finally:
                        self._stopping = True
                        tg.cancel_scope.cancel()
                        with anyio.CancelScope(shield=True):
                            await self._write_results()  # what finished during the shutdown
            except Exception:
                with anyio.CancelScope(shield=True):
                    await self._release_unstarted()
                raise
            finally:
                for remove in self._unwatch:
                    remove()

    async def _renew_loop(self) -> None:
        """Keep the leases of the works we hold while they wait and apply.

        A batch is claimed at once but applied at the member's pace: behind a slow member's
        token bucket (or a slow apiserver) its last works start minutes later. Were their leases
        let lapse, the next claim round would take them again under a new version, and every
        apply finishing after that would be stale and not recorded: a member slower than one
        lease per batch would never progress. A lease still lapses when its holder dies."""
        interval = max(self.settings.lease_seconds / 3, 0.5)
        while True:
            await anyio.sleep(interval)
            held = list(self._held.items())
            if not held:
                continue
            try:
                renewed = await self.store.renew_claims(
                    self.holder, held, lease_seconds=self.settings.lease_seconds
                )
            except StoreError as exc:
                log.warning("renewing %d claims failed: %s", len(held), exc, extra=self._extra)
                continue
            CLAIMS_RENEWED.labels(self.cluster).inc(renewed)
            log.debug("renewed %d of %d claims", renewed, len(held), extra=self._extra)

    async def _release_unstarted(self) -> None:
        unstarted, self._unstarted = list(self._unstarted), set()
        if not unstarted:
            return
        try:
            with give_up_after(2.0):  # the crash is reported and the restart scheduled meanwhile
                await self.store.release_claims(self.holder, work_ids=unstarted)
        except StoreError as exc:
            log.warning("releasing %d claims failed: %s", len(unstarted), exc, extra=self._extra)

    async def _load_index(self) -> None:
        for w in await self.store.work_index(self.cluster):
            self._remember(w)
        for gvk in {GVK.of(e.desired) for e in self._index.values()}:
            await self._watch(gvk)
        self.loaded.set()

    def _remember(self, w: IndexedWork | ClaimedWork) -> _Entry:
        key = _object_key(w.desired)
        entry = _Entry(
            id=int(w.id),
            resource_id=w.resource_id,
            state=w.state,
            desired=w.desired,
            desired_hash=w.desired_hash,
            baseline=w.baseline,
            version=w.version,
            unreadable=w.sealing_error is not None,
        )
        self._index[key] = entry
        return entry

    async def _watch(self, gvk: GVK) -> None:
        """One informer per kind, on the objects carrying our hub label only (a narrow watch),
        caching of each copy what drift, conflicts and status read (`federation.propagate.cache`)."""
        if gvk in self._informers or self.member.factory is None or self.member.discovery is None:
            return
        try:
            res = await self.member.discovery.resource_for(gvk)
        except KubeError:
            return  # not served (yet): the work will fail or retry and we try again then
        informer = self.member.factory.informer(
            res, label_selector=f"{OWNERSHIP.hub_label}={self.hub_id}", transform=member_copy
        )
        remove = informer.add_handler(
            Handlers(on_add=self._seen, on_update=lambda _o, n: self._seen(n), on_delete=self._gone),
            resync=False,
        )
        self._unwatch.append(remove)
        self._informers[gvk] = informer

    def _lookup(self, gvk: GVK, namespace: str | None, name: str) -> Obj | None:
        informer = self._informers.get(gvk)
        if informer is None or not informer.has_synced:
            return None
        return informer.store.get(f"{namespace}/{name}" if namespace else name)

    async def _check_after_sync(self) -> None:
        """After a (re)start: works recorded as applied whose member copy is gone or drifted
        while we were not watching become due. Nothing else is touched, so a restart with
        nothing changed writes nothing to any member."""
        for informer in list(self._informers.values()):
            await informer.wait_for_sync()
        for key, entry in list(self._index.items()):
            if entry.state != WorkState.APPLIED:
                continue
            live = self._lookup(GVK.of(entry.desired), key.namespace or None, key.name)
            if live is None:
                await self._requeue(entry, key, why="missing in the member after a restart")
            else:
                self._seen(live)

    async def _claim_loop(self) -> None:
        limiter = PrioritySlots(self.settings.workers)
        async with anyio.create_task_group() as tg:
            try:
                await self._claim_rounds(tg, limiter)
            finally:
                # Before this task group waits for its shielded applies: an apply under way
                # finishes its current request, but none of its next ones waits for a token
                # (on a member throttled to a trickle, each would wait for minutes); they end
                # as retries, recorded, and the works are claimed again by the next holder.
                self._stop_signal.set()

    async def _claim_rounds(self, tg: anyio.abc.TaskGroup, limiter: PrioritySlots) -> None:
        while True:
            if self.ready():
                CLAIM_ROUNDS.labels(self.cluster).inc()
                try:
                    claimed = await self.store.claim_due_works(
                        self.cluster,
                        holder=self.holder,
                        limit=self.settings.batch,
                        lease_seconds=self.settings.lease_seconds,
                    )
                except StoreError as exc:
                    log.warning("claiming works failed: %s", exc, extra=self._extra)
                    claimed = []
                if claimed:
                    log.debug("claimed %d works", len(claimed), extra=self._extra)
                fresh = [
                    w.desired for w in claimed if w.state == WorkState.PENDING and w.applied_hash is None
                ]
                if fresh:
                    await self.applier.prefetch_names(fresh)
                for work in claimed:
                    entry = self._remember(work)
                    entry.queued_at = anyio.current_time()
                    await self._watch(GVK.of(work.desired))
                    self._unstarted.add(work.id)
                    self._held[work.id] = work.version
                    tg.start_soon(self._process, work, limiter)
                if len(claimed) == self.settings.batch:
                    continue  # a backlog: claim the next batch at once
            with anyio.move_on_after(self.settings.poll_interval):
                await self._wake.wait()
            self._wake = anyio.Event()

    # -- one work ----------------------------------------------------------------------

    async def _process(self, work: ClaimedWork, limiter: PrioritySlots) -> None:
        """Process one claimed work, never while another claim of the same object is in flight.

        A change of the work clears its claim (`save_placement`), so the next claim round may
        bring the work again while a worker is still applying its previous version. Done
        concurrently, a deletion could find nothing yet ("already gone"), remove the row, and
        the apply still in flight would then create a copy no row records (issue 11: a template
        deleted a second after its creation kept its copy). One object, one operation at a time.
        """
        key = _object_key(work.desired)
        while (busy := self._active.get(key)) is not None:
            await busy.wait()
        self._active[key] = done = anyio.Event()
        try:
            async with limiter.slot(_urgency(work)):
                self._in_flight += 1
                started = anyio.current_time()
                try:
                    # Shielded: a shutdown lets an apply that has started finish and be recorded.
                    with anyio.CancelScope(shield=True):
                        await self._process_one(work)
                finally:
                    self._in_flight -= 1
                    APPLY_DURATION.labels(self.cluster).observe(anyio.current_time() - started)
        finally:
            if self._held.get(work.id) == work.version:
                del self._held[work.id]
            del self._active[key]
            done.set()

    async def _process_one(self, work: ClaimedWork) -> None:
        key = _object_key(work.desired)
        self._unstarted.discard(work.id)  # started: recorded or retried, never just dropped
        writes_before = self.applier.writes
        RECONCILE_ID.set(f"work-{work.id}-v{work.version}")
        with span("apply", cluster=self.cluster, kind=key.kind, namespace=key.namespace, name=key.name,
                  state=work.state.value):  # fmt: skip
            try:
                outcome = await self._outcome(work)
            except Exception:
                # A bug on one work is contained to it, as `federation.runtime` does for a key:
                # logged with its traceback, and retried with backoff like a transient error.
                log.exception("%s: applying crashed", key, extra=self._extra)
                outcome = Outcome(Result.RETRY, "the controller failed on this work (a bug, see its log)")
        if self.secrecy is not None and outcome.result in (Result.FAILED, Result.RETRY, Result.CONFLICT):
            # A member's error may quote what it refused (a schema check echoes the value): it
            # goes to last_error, events and the API, so never with a sensitive value in it.
            outcome = dataclasses.replace(
                outcome, message=self.secrecy.fields.scrub(outcome.message, work.desired)
            )
        MEMBER_WRITES.labels(self.cluster).inc(self.applier.writes - writes_before)
        APPLY_RESULTS.labels(self.cluster, outcome.result.value).inc()
        log.debug("%s: %s (%s)", key, outcome.result.value, outcome.message, extra=self._extra)
        try:
            await self._record(work, key, outcome)
        except VersionConflictError as exc:
            # The work changed (or our lease expired and someone else took it) while we applied:
            # the newer version will be claimed and applied; ours is not recorded.
            log.info("%s: result not recorded: %s", key, exc, extra=self._extra)
            self.wake()
        except StoreError as exc:
            log.error("%s: recording the result failed: %s", key, exc, extra=self._extra)

    async def _outcome(self, work: ClaimedWork) -> Outcome:
        ref = work.template
        expected = None if ref is None else Identity(ref.api_group, ref.kind, ref.namespace, ref.name)
        if work.sealing_error is not None and work.state not in (WorkState.DELETING, WorkState.ORPHANING):
            # Applying what is left would write placeholders over the member's values.
            return Outcome(Result.RETRY, work.sealing_error)
        if work.state == WorkState.DELETING:
            return await self.applier.delete(work.desired, expected=expected)
        if work.state == WorkState.ORPHANING:
            return await self.applier.orphan(work.desired, expected=expected)
        return await self.applier.apply(
            work.desired, overwrite=work.overwrite, baseline=work.baseline, expected=expected
        )

    async def _record(self, work: ClaimedWork, key: ResourceKey, outcome: Outcome) -> None:
        """Turn an outcome into its row update (batched with others) and its follow-ups."""
        # The member's apiserver (or a webhook a member admin installed) writes these messages.
        outcome = dataclasses.replace(outcome, message=cut(outcome.message, ERROR_LIMIT))
        ref = _ref(key)
        entry = self._index.get(key)
        now = datetime.now(UTC)
        if outcome.result == Result.DELETED and work.state == WorkState.DELETING:
            await self.store.finish_deletion(work.id, work.version)
            if outcome.wrote:
                self._event(EventType.DELETED, f"{key}: deleted from the member", ref)
            self._index.pop(key, None)
            return
        if outcome.result == Result.ORPHANED and work.state == WorkState.ORPHANING:
            self._submit(ApplyResult(work.id, work.version, WorkState.ORPHANED))
            self._event(EventType.ORPHANED, f"{key}: {outcome.message}", ref)
            self._index.pop(key, None)
            return
        if outcome.result == Result.APPLIED:
            queued_at = entry.queued_at if entry is not None else None

            def applied(version: int) -> None:
                if entry is not None:
                    entry.state, entry.baseline, entry.version = WorkState.APPLIED, outcome.baseline, version
                if queued_at is not None and outcome.wrote:
                    PROPAGATION_LATENCY.labels(self.cluster).observe(anyio.current_time() - queued_at)

            self._submit(
                ApplyResult(
                    work.id,
                    work.version,
                    WorkState.APPLIED,
                    applied_hash=work.desired_hash,
                    member_resource_version=outcome.member_resource_version,
                    baseline=outcome.baseline,
                ),
                applied,
            )
            if outcome.drift:
                DRIFT_EVENTS.labels(self.cluster).inc()
                self._event(
                    EventType.DRIFT_CORRECTED,
                    f"{key}: {len(outcome.drift)} managed field(s) edited in the member were restored",
                    ref,
                    {"diff": outcome.drift},
                )
            if outcome.adopted:
                self._event(EventType.ADOPTED, f"{key}: adopted the existing member object", ref)
            return
        if outcome.result == Result.CONFLICT:
            self._submit(
                ApplyResult(
                    work.id,
                    work.version,
                    WorkState.CONFLICT,
                    error=outcome.message,
                    next_attempt_at=now + timedelta(seconds=self.settings.conflict_recheck),
                )
            )
            if work.state != WorkState.CONFLICT:
                CONFLICTS.labels(self.cluster).inc()
                self._event(EventType.CONFLICT, f"{key}: {outcome.message}", ref)
            if entry is not None:
                entry.state = WorkState.CONFLICT
            return
        if outcome.result == Result.FAILED:
            # Permanent until the desired state changes: no next attempt, no retry storm.
            self._submit(ApplyResult(work.id, work.version, WorkState.FAILED, error=outcome.message))
            if work.state != WorkState.FAILED:
                self._event(EventType.APPLY_FAILED, f"{key}: {outcome.message}", ref)
            if entry is not None:
                entry.state = WorkState.FAILED
            return
        # RETRY: the same state, again later, with per-work exponential backoff and jitter.
        delay = exponential(self.settings.retry_base, self.settings.retry_cap, work.attempts)
        delay *= 0.5 + self.rng.random() / 2
        self._submit(
            ApplyResult(
                work.id,
                work.version,
                work.state if work.state != WorkState.CONFLICT else WorkState.PENDING,
                error=outcome.message,
                next_attempt_at=now + timedelta(seconds=delay),
            )
        )

    def _submit(self, result: ApplyResult, then: Callable[[int], None] | None = None) -> None:
        self._results.append((result, then))
        self._results_ready.set()

    async def _record_loop(self) -> None:
        """Write results in batches: one statement for everything finished since the last one."""
        while True:
            await self._results_ready.wait()
            self._results_ready = anyio.Event()
            await self._write_results()

    async def _write_results(self) -> None:
        batch, self._results = self._results, []
        if not batch:
            return
        batch, superseded = _latest_per_work(batch)
        try:
            versions = await self.store.record_apply_results([r for r, _ in batch])
        except StoreError as exc:
            # The claims will expire and the works be retried; nothing is lost, only delayed.
            log.error("recording %d results failed: %s", len(batch), exc, extra=self._extra)
            return
        stale = superseded
        for result, then in batch:
            version = versions.get(result.work_id)
            if version is None:
                stale += 1  # the work changed (or was re-claimed) while we applied: not recorded
            elif then is not None:
                then(version)
        if stale:
            log.info("%d results were stale and not recorded; their newer versions will be applied", stale)
            self.wake()

    # -- what the member informers see -------------------------------------------------

    def _seen(self, obj: Obj) -> None:
        key = _object_key(obj)
        entry = self._index.get(key)
        if entry is None or owner_hub(obj) != self.hub_id:
            return
        self.statuses.seen(entry.resource_id, key, obj)
        self._flush.set()
        if entry.state != WorkState.APPLIED or entry.baseline is None or entry.unreadable:
            return
        if (
            desired_hash(obj) != entry.desired_hash
            or self.applier.baseline(obj, entry.desired) != entry.baseline
        ):
            self._defer_requeue(entry, key, why="managed fields changed in the member (drift)")

    def _gone(self, obj: Obj) -> None:
        key = _object_key(obj)
        entry = self._index.get(key)
        if entry is not None and entry.state == WorkState.APPLIED:
            self._defer_requeue(entry, key, why="deleted in the member")
        if entry is not None:
            self.statuses.gone(key)

    def _defer_requeue(self, entry: _Entry, key: ResourceKey, *, why: str) -> None:
        """`_requeue` from an informer callback, which cannot await: the flush loop does it."""
        entry.state = WorkState.PENDING  # until the claim brings the real row
        self._requeues.append((entry, key, why))
        self._flush.set()

    async def _requeue(self, entry: _Entry, key: ResourceKey, *, why: str) -> None:
        log.info("%s: %s; re-applying", key, why, extra=self._extra)
        try:
            await self.store.requeue_work(entry.resource_id, self.cluster)
        except StoreError as exc:
            log.warning("%s: requeue failed: %s", key, exc, extra=self._extra)
        entry.state = WorkState.PENDING
        entry.queued_at = anyio.current_time()
        self.wake()

    def _event(
        self, kind: EventType, message: str, ref: ObjectRef, details: dict[str, Any] | None = None
    ) -> None:
        self._events.append(
            EventRow(type=kind, message=message, cluster=self.cluster, ref=ref, details=details or {})
        )
        self._flush.set()

    async def _flush_loop(self) -> None:
        """Batch what the informers and workers produced: statuses, events, requeues."""
        while True:
            await self._flush.wait()
            self._flush = anyio.Event()
            await anyio.sleep(self.settings.status_flush)  # a batching window, not a wait on state
            requeues, self._requeues = self._requeues, []
            for entry, key, why in requeues:
                await self._requeue(entry, key, why=why)
            statuses = self.statuses.take()
            events, self._events = self._events, []
            try:
                if statuses:
                    await self.store.upsert_member_statuses(statuses)
                if events:
                    await self.store.append_events(events)
            except StoreError as exc:
                log.warning("writing %d statuses and %d events failed: %s", len(statuses), len(events), exc)
            WORKS_BACKLOG.labels(self.cluster).set(self._in_flight)

    # -- reads for others --------------------------------------------------------------

    def member_object(self, key: ResourceKey) -> Obj | None:
        """Our copy of `key` in this member, from the informer cache."""
        entry = self._index.get(key)
        if entry is None:
            return None
        return self._lookup(GVK.of(entry.desired), key.namespace or None, key.name)
