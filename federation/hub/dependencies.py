"""Which workloads a dependency (ConfigMap, Secret, ...) follows, kept as a function of now.

Under ``propagateDependencies`` a dependency goes wherever a workload that references it is
placed. Two facts decide it, and both are *replaced* on every change, never accumulated:

- what each workload's last save placed (`record`): its clusters, its policy and the
  dependencies its saved copies reference. When a workload is deleted, unplaced or stops
  referencing something, its record changes and every dependency of the old or new record is
  returned to be re-queued: a dependency leaves the clusters no placed workload references it
  on, and never one where one still does.
- what the templates in the hub cache reference (`template_changed`), so that a dependency
  reconciled before a workload that references it (at start, every key is queued at once, in
  no order) waits for that workload (`pending`) instead of being removed from its members and
  re-created a moment later.

A restart does not know what the saved copies of a workload reference until it reconciles it:
until every workload listed at the start has been reconciled once (`seal` marks the end of
the listing), a dependency no policy selects waits instead of leaving any cluster.

A save is bracketed: `widen` before it (the union of the old and the new record, so a
dependency reconciled meanwhile keeps every cluster either may hold) and `record` after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.hub.keys import PolicyKey, ResourceKey
from federation.kube import GVK
from federation.translate import DependencyRef, dependencies_of
from federation.translate.dependencies import CONFIG_MAP, PERSISTENT_VOLUME_CLAIM, SECRET, SERVICE_ACCOUNT
from federation.translate.podspec import pod_spec


@dataclass(frozen=True)
class Placed:
    """What a workload's save placed: where, under which policy, referencing what."""

    policy: PolicyKey
    clusters: frozenset[str]
    dependencies: frozenset[ResourceKey]

    def union(self, other: Placed) -> Placed:
        return Placed(self.policy, self.clusters | other.clusters, self.dependencies | other.dependencies)


#: The kinds a workload can reference (`federation.translate.dependencies`), all core v1.
DEPENDENCY_KINDS = frozenset({CONFIG_MAP, SECRET, SERVICE_ACCOUNT, PERSISTENT_VOLUME_CLAIM})


def could_be_dependency(key: ResourceKey) -> bool:
    return key.group == "" and key.kind in DEPENDENCY_KINDS


def dependency_key(dep: DependencyRef) -> ResourceKey:
    return ResourceKey(GVK.parse(dep.api_version, dep.kind).group, dep.kind, dep.namespace or "", dep.name)


def references(template: Mapping[str, Any]) -> frozenset[ResourceKey]:
    """The keys of the objects a workload template references (empty for anything else)."""
    return frozenset(map(dependency_key, dependencies_of(template)))


class DependencyTracker:
    """The two facts above, with a reverse index each (dependency → workloads)."""

    def __init__(self) -> None:
        self._recorded: dict[ResourceKey, Placed | None] = {}
        self._widened: dict[ResourceKey, Placed] = {}
        self._holders: dict[ResourceKey, set[ResourceKey]] = {}
        self._refs: dict[ResourceKey, frozenset[ResourceKey]] = {}
        #: Workloads not reconciled since the start, with every dependency any version seen
        #: of their template references (and the reverse index).
        self._unsettled: dict[ResourceKey, set[ResourceKey]] = {}
        self._waiting: dict[ResourceKey, set[ResourceKey]] = {}
        #: Until `seal`: every workload listed at the start, until reconciled (what its saved
        #: copies reference is known only then); and the dependencies that waited for them.
        self._sealed = False
        self._initial: set[ResourceKey] = set()
        self._blocked: set[ResourceKey] = set()

    # -- the hub's templates -------------------------------------------------------------------

    def template_changed(self, workload: ResourceKey, template: Mapping[str, Any] | None) -> set[ResourceKey]:
        """The template of `workload` is now `template` (None: gone). Returns the dependencies
        it referenced before or references now, if that changed."""
        new = references(template) if template is not None else frozenset()
        old = self._refs.get(workload, frozenset())
        if not self._sealed and template is not None and pod_spec(template) is not None:
            self._initial.add(workload)
        if workload not in self._recorded and new:
            # Not reconciled since the start: its saved copies may reference any version's.
            seen = self._unsettled.setdefault(workload, set())
            _reindex(self._waiting, workload, seen, seen | new)
            seen |= new
        if new == old:
            return set()
        if new:
            self._refs[workload] = new
        else:
            self._refs.pop(workload, None)
        return set(old ^ new)

    def seal(self) -> None:
        """The templates listed at the start have all been seen (the hub caches synced)."""
        self._sealed = True

    def pending(self, dependency: ResourceKey) -> list[ResourceKey]:
        """The workloads `dependency` must wait for before it may leave a cluster: those not
        reconciled since the start whose template references it (in any version seen), and,
        until every workload listed at the start has been reconciled, all of those (a restart
        does not know what their saved copies reference). It is re-queued when they are."""
        if not could_be_dependency(dependency):
            return []
        waiting = set(self._waiting.get(dependency, ())) | self._initial
        if self._initial:
            self._blocked.add(dependency)
        return sorted(waiting)

    # -- what saves placed ---------------------------------------------------------------------

    def widen(self, workload: ResourceKey, placed: Placed | None) -> None:
        """Before a save: followers see the old and the new placement until `record`."""
        current = self._current(workload)
        merged = current.union(placed) if current is not None and placed is not None else current or placed
        if merged is not None:
            self._index_holders(workload, current, merged)
            self._widened[workload] = merged

    def record(self, workload: ResourceKey, placed: Placed | None) -> set[ResourceKey]:
        """After a save (or when nothing of `workload` is placed: None). Returns the
        dependencies whose followers changed, to re-queue."""
        before = self._recorded.get(workload)
        widened = self._widened.pop(workload, None)
        touched = set(_deps(before)) | set(_deps(widened)) | set(_deps(placed))
        self._recorded[workload] = placed
        self._index_holders(workload, widened or before, placed)
        waited = self._unsettled.pop(workload, set())
        _reindex(self._waiting, workload, waited, ())
        if workload in self._initial:
            self._initial.discard(workload)
            if not self._initial:
                waited |= self._blocked
                self._blocked = set()
        if before == placed and widened is None:
            return waited
        return touched | waited

    def forget(self, workload: ResourceKey) -> set[ResourceKey]:
        """`workload` is gone from the hub and from the store: its record goes too."""
        touched = self.record(workload, None) | self.template_changed(workload, None)
        self._recorded.pop(workload, None)
        return touched

    def followers(self, dependency: ResourceKey) -> list[tuple[ResourceKey, Placed]]:
        """The workloads placed somewhere whose saved copies reference `dependency`, by key."""
        out = []
        for w in sorted(self._holders.get(dependency, ())):
            placed = self._current(w)
            if placed is not None and placed.clusters and dependency in placed.dependencies:
                out.append((w, placed))
        return out

    def placed(self, workload: ResourceKey) -> Placed | None:
        return self._current(workload)

    # -- internals -------------------------------------------------------------------------------

    def _current(self, workload: ResourceKey) -> Placed | None:
        return self._widened.get(workload) or self._recorded.get(workload)

    def _index_holders(self, workload: ResourceKey, before: Placed | None, after: Placed | None) -> None:
        _reindex(self._holders, workload, _deps(before), _deps(after))


def _deps(placed: Placed | None) -> frozenset[ResourceKey]:
    return placed.dependencies if placed is not None else frozenset()


def _reindex(
    index: dict[ResourceKey, set[ResourceKey]],
    owner: ResourceKey,
    old: Iterable[ResourceKey],
    new: Iterable[ResourceKey],
) -> None:
    new = set(new)
    for key in set(old) - new:
        owners = index.get(key)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del index[key]
    for key in new:
        index.setdefault(key, set()).add(owner)
