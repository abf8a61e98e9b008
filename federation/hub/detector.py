"""The detector: hub events in, template keys out (Karmada's resource detector, without the rest).

It never reconciles; it only says which keys may have changed, and the binder reads the
current state of each. A template event queues the template and the dependencies it references
or stopped referencing; a policy event queues every template of the kinds either version
selects; a fleet change queues every template, except a failover, which queues only the placed
ones, spread out at ``failover_rate`` per second (a dying cluster must not become a stampede).

Priorities (`federation.informers.Priority`): an event about one template is queued at the
priority the watcher gives it (an initial list is low); a fan-out over many templates — a
policy or the fleet changed, so every template they touch *may* have — is queued low, so an
edit of one template made meanwhile goes first. A failover keeps the normal priority: moving
workloads off a dead cluster is urgent, and its rate limit already spreads it out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from federation.clusters.changes import FleetChange
from federation.hub.dependencies import DependencyTracker
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.policies import AnyPolicy, selector_gvks
from federation.informers import Priority
from federation.kube import GVK, Obj


class Queue(Protocol):
    """The part of a `WorkQueue` the detector uses."""

    def add(self, key: ResourceKey, priority: Priority = Priority.NORMAL) -> None: ...
    def add_after(self, key: ResourceKey, delay: float, priority: Priority | None = None) -> None: ...


class Detector:
    def __init__(
        self,
        *,
        queue: Queue,
        template: Callable[[ResourceKey], Obj | None],
        keys_of: Callable[[set[GVK]], Iterable[ResourceKey]],
        all_keys: Callable[[], Iterable[ResourceKey]],
        placed: Callable[[], Iterable[ResourceKey]],
        tracker: DependencyTracker,
        policy_changed: Callable[[PolicyKey], None] = lambda _pkey: None,
        fleet_changed: Callable[[], None] = lambda: None,
        failover_rate: float = 50.0,
    ) -> None:
        """`keys_of(gvks)`: every template of those kinds in the hub cache; `all_keys`: every
        template; `placed`: every template placed somewhere (a failover moves only those)."""
        self.queue = queue
        self.template = template
        self.keys_of = keys_of
        self.placed = placed
        self.tracker = tracker
        self.policy_changed = policy_changed
        self.fleet_changed = fleet_changed
        self.failover_rate = failover_rate
        self.all_keys = all_keys

    def template_event(self, key: ResourceKey, priority: Priority = Priority.NORMAL) -> None:
        self.queue.add(key, priority)
        for dependency in sorted(self.tracker.template_changed(key, self.template(key))):
            self.queue.add(dependency, priority)

    def policy_event(self, old: AnyPolicy | None, new: AnyPolicy | None) -> None:
        """Re-evaluate every template either version selects."""
        gvks: set[GVK] = set()
        for p in (old, new):
            if p is not None:
                gvks |= selector_gvks(p)
                self.policy_changed(PolicyKey(p.kind, p.metadata.namespace or "", p.metadata.name))
        for key in self.keys_of(gvks):
            self.queue.add(key, Priority.LOW)

    def fleet_event(self, change: FleetChange) -> None:
        """The fleet changed: every placement may change. A failover is rate limited."""
        self.fleet_changed()
        if not change.failover:
            for key in self.all_keys():
                self.queue.add(key, Priority.LOW)
            return
        for i, key in enumerate(sorted(self.placed())):
            self.queue.add_after(key, i / self.failover_rate, Priority.NORMAL)
