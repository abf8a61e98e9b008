"""Members sharded over controller replicas: which replica runs which member's propagator.

Every replica heartbeats its row in `controller_replicas` and, from the live ones, computes the
owner of each member cluster by rendezvous hashing (highest random weight): each replica ranks
(replica, cluster) pairs by a hash, and a cluster belongs to the replica ranking highest. Every
replica computes the same answer without talking to the others, and a replica that joins or
leaves moves only the clusters it wins or held (about 1/N of them), never reshuffles the rest.

What a replica computes is only what it *should* own; what it does own is its lease row
(`cluster_leases`). Each round (every TTL/3) the `ShardKeeper`:

- renews the leases it holds (one statement); one not renewed was taken by another replica
  after expiring: its propagator stops at once (``lost``);
- hands over those it should no longer own: the propagator is stopped first (applies in flight
  finish and are recorded), its claims are released, then the lease; the new owner takes it at
  its next round;
- takes the leases it should own that are free or expired, with any stale claim on their works.

So a joining replica gets its share as the others hand it over, one round apart, and never two
replicas at once: the lease goes only when the old owner has stopped. A replica that dies stops
renewing: its leases expire after the TTL and the owners the survivors compute take them. A
replica that cannot reach the database stops its propagators before its leases can expire (it
cannot tell whether someone took them), and takes them again when it can. The work claims
(`FOR UPDATE SKIP LOCKED` and each work's version) make any overlap harmless anyway.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio

from federation.errors import StoreError
from federation.metrics import LEASE_CHANGES, LEASE_HANDOVER, LEASES_HELD, LIVE_REPLICAS
from federation.store import Store, give_up_after

log = logging.getLogger(__name__)


def _weight(replica: str, cluster: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{replica}\x00{cluster}".encode()).digest()[:8], "big")


def owner(cluster: str, replicas: Iterable[str]) -> str | None:
    """The replica that should own `cluster` among `replicas` (None if there is none)."""
    return max(replicas, key=lambda r: (_weight(r, cluster), r), default=None)


def owned_by(replica: str, clusters: Iterable[str], replicas: Iterable[str]) -> frozenset[str]:
    """The clusters `replica` should own, `replicas` being the live ones (it counts itself)."""
    everyone = set(replicas) | {replica}
    return frozenset(c for c in clusters if owner(c, everyone) == replica)


@dataclass(frozen=True)
class Round:
    """What one round changes, from what is held, renewed and wanted."""

    lost: frozenset[str]
    """Held, but the renewal did not find them ours: another replica has them now."""
    release: frozenset[str]
    """Held and renewed, but another replica should own them: handed over."""
    take: frozenset[str]
    """Wanted and not held: taken if free or expired."""

    @staticmethod
    def plan(*, held: frozenset[str], renewed: frozenset[str], want: frozenset[str]) -> Round:
        kept = held & renewed
        return Round(lost=held - renewed, release=kept - want, take=want - kept)


@dataclass
class ShardSettings:
    lease_ttl: float = 15.0
    """Seconds a lease (and a replica's heartbeat) lasts unrenewed: how long the members of a
    replica that died wait for another (renewed every third of it)."""


#: Stops the propagator of a cluster and returns once it has (its applies in flight recorded).
StopPropagator = Callable[[str], Awaitable[None]]


class ShardKeeper:
    def __init__(
        self,
        *,
        store: Store,
        replica: str,
        clusters: Callable[[], Iterable[str]],
        stop: StopPropagator,
        on_change: Callable[[], None],
        settings: ShardSettings | None = None,
    ) -> None:
        self.store = store
        self.replica = replica
        self.clusters = clusters
        self.stop = stop
        self.on_change = on_change
        self.settings = settings or ShardSettings()
        #: The clusters whose lease we hold: the only ones our propagators run for.
        self.held: frozenset[str] = frozenset()
        self.replicas: list[str] = []
        self._wake = anyio.Event()
        self._renewed_at: float | None = None

    @property
    def interval(self) -> float:
        return self.settings.lease_ttl / 3

    def wake(self) -> None:
        """The fleet changed (a member joined or left): a round now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                # Retried no longer than a round lasts: without the database, `_check_deadline`
                # must get its turn before our leases can expire.
                with give_up_after(self.interval):
                    await self.round()
            except StoreError as exc:
                log.warning("cluster leases: a round failed: %s", exc)
                await self._check_deadline()
            with anyio.move_on_after(self.interval):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def round(self) -> None:
        ttl = self.settings.lease_ttl
        self.replicas = await self.store.heartbeat_replica(self.replica, ttl_seconds=ttl)
        LIVE_REPLICAS.set(len(self.replicas))
        renewed = frozenset(
            await self.store.renew_cluster_leases(sorted(self.held), holder=self.replica, ttl_seconds=ttl)
            if self.held
            else []
        )
        self._renewed_at = anyio.current_time()
        want = owned_by(self.replica, self.clusters(), self.replicas)
        plan = Round.plan(held=self.held, renewed=renewed, want=want)
        for cluster in sorted(plan.lost):
            log.warning(
                "lost the lease of cluster %s to another replica", cluster, extra={"cluster": cluster}
            )
            LEASE_CHANGES.labels(cluster, "lost").inc()
            await self._drop(cluster)
        for cluster in sorted(plan.release):
            await self._hand_over(cluster)
        for cluster in sorted(plan.take):
            taken, released = await self.store.take_cluster_lease(
                cluster, holder=self.replica, ttl_seconds=ttl
            )
            if not taken:
                continue  # its owner has not handed it over yet (or has not expired): next round
            log.info(
                "took the lease of cluster %s%s",
                cluster,
                f" (released {released} stale claims)" if released else "",
                extra={"cluster": cluster},
            )
            LEASE_CHANGES.labels(cluster, "taken").inc()
            self._set_held(self.held | {cluster})

    async def _hand_over(self, cluster: str) -> None:
        started = anyio.current_time()
        await self._drop(cluster)
        await self.store.release_cluster_claims(cluster, holder=self.replica)
        await self.store.release_cluster_lease(cluster, holder=self.replica)
        LEASE_CHANGES.labels(cluster, "released").inc()
        LEASE_HANDOVER.observe(anyio.current_time() - started)
        log.info("handed cluster %s over to another replica", cluster, extra={"cluster": cluster})

    async def _drop(self, cluster: str) -> None:
        self._set_held(self.held - {cluster})
        with anyio.CancelScope(shield=True):
            await self.stop(cluster)

    def _set_held(self, held: frozenset[str]) -> None:
        self.held = held
        LEASES_HELD.labels(self.replica).set(len(held))
        self.on_change()

    async def _check_deadline(self) -> None:
        """Without the database, stop working before our leases can have expired (a third of
        the TTL before): another replica may take them then, and we could not tell."""
        if not self.held or self._renewed_at is None:
            return
        if anyio.current_time() - self._renewed_at < self.settings.lease_ttl * 2 / 3:
            return
        log.error("cannot renew cluster leases: stopping the propagators of %s", ", ".join(sorted(self.held)))
        for cluster in sorted(self.held):
            LEASE_CHANGES.labels(cluster, "lost").inc()
            await self._drop(cluster)

    async def close(self) -> None:
        """A clean shutdown: every propagator stopped, then its claims and leases released and
        our replica row removed, so the others take our members at their next round."""
        with anyio.CancelScope(shield=True):
            # Our row first: the others then count us out at their next round, and take each
            # member as soon as its lease is released here.
            try:
                with anyio.fail_after(5):
                    await self.store.retire_replica(self.replica)
            except (StoreError, TimeoutError) as exc:
                log.warning("removing replica %s failed: %s", self.replica, exc)
            for cluster in sorted(self.held):
                try:
                    with anyio.fail_after(10):
                        await self._hand_over(cluster)
                except (StoreError, TimeoutError) as exc:
                    log.warning("releasing cluster %s failed: %s", cluster, exc, extra={"cluster": cluster})
