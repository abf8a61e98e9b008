"""Cluster health as a small state machine, fed by probes, in injected time.

A cluster is Ready when its last `/readyz` probe answered ok. A NotReady cluster receives no
*new* placements at once, but keeps what it has: a blip must not reshuffle the fleet. Only after
`grace_period` of continuous NotReady does it get the `federation.io/unreachable:NoExecute`
taint, which the placement engine honours by moving workloads whose policy does not tolerate it
(failover). When the cluster answers again the taint goes away; copies that were moved away
meanwhile are cleaned up by propagation, and nothing is placed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from federation.api import Taint
from federation.api.taints import TaintEffect
from federation.informers.clock import Clock, RealClock

UNREACHABLE_TAINT_KEY = "federation.io/unreachable"
UNREACHABLE_TAINT = Taint(key=UNREACHABLE_TAINT_KEY, effect=TaintEffect.NO_EXECUTE)

#: A cluster whose nodes all stopped reporting (its apiserver may answer: nothing it runs is
#: running). NoSchedule at once — nothing new would run there — and NoExecute past the grace
#: period, which moves what policies do not tolerate it (failover, as for an unreachable
#: cluster). A policy that would rather wait for the nodes tolerates the key.
NO_READY_NODES_TAINT_KEY = "federation.io/no-ready-nodes"
NO_READY_NODES = Taint(key=NO_READY_NODES_TAINT_KEY, effect=TaintEffect.NO_SCHEDULE)
NO_READY_NODES_FAILOVER = Taint(key=NO_READY_NODES_TAINT_KEY, effect=TaintEffect.NO_EXECUTE)


@dataclass
class ClusterHealth:
    """What we know about one cluster's health."""

    ready: bool | None = None  # None: never probed
    reason: str = "not probed yet"
    since: float = 0.0  # when `ready` last changed
    last_probe: float | None = None
    version: str | None = None
    failures: int = 0


@dataclass(frozen=True)
class Transition:
    cluster: str
    ready: bool
    reason: str


@dataclass
class HealthTracker:
    grace_period: float = 60.0
    clock: Clock = field(default_factory=RealClock)
    _health: dict[str, ClusterHealth] = field(default_factory=dict)

    def observe(
        self, cluster: str, *, ok: bool, reason: str, version: str | None = None
    ) -> Transition | None:
        """Record one probe; return the transition if readiness changed."""
        now = self.clock.now()
        h = self._health.setdefault(cluster, ClusterHealth(since=now))
        h.last_probe = now
        if version:
            h.version = version
        h.failures = 0 if ok else h.failures + 1
        changed = h.ready is not ok
        if changed:
            h.since = now
        h.ready, h.reason = ok, reason
        return Transition(cluster, ok, reason) if changed else None

    def forget(self, cluster: str) -> None:
        self._health.pop(cluster, None)

    def get(self, cluster: str) -> ClusterHealth:
        return self._health.get(cluster) or ClusterHealth(since=self.clock.now())

    def is_ready(self, cluster: str) -> bool:
        return self.get(cluster).ready is True

    def unreachable(self, cluster: str) -> bool:
        """NotReady for longer than the grace period: time to fail over."""
        h = self._health.get(cluster)
        if h is None or h.ready is not False:
            return False
        return self.clock.now() - h.since >= self.grace_period

    def seconds_until_unreachable(self, cluster: str) -> float | None:
        """How long until a NotReady cluster crosses the grace period (None if not NotReady)."""
        h = self._health.get(cluster)
        if h is None or h.ready is not False:
            return None
        return max(0.0, self.grace_period - (self.clock.now() - h.since))
