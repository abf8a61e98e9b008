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


@dataclass(frozen=True)
class Placed:
    """What a workload's save placed: where, under which policy, referencing what."""

    policy: PolicyKey
    clusters: frozenset[str]
    dependencies: frozenset[ResourceKey]

    def union(self, other: Placed) -> Placed:
        return Placed(self.policy, self.clusters | other.clusters, self.dependencies | other.dependencies)


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
        self._referrers: dict[ResourceKey, set[ResourceKey]] = {}

    # -- the hub's templates -------------------------------------------------------------------

    def template_changed(self, workload: ResourceKey, template: Mapping[str, Any] | None) -> set[ResourceKey]:
        """The template of `workload` is now `template` (None: gone). Returns the dependencies
        it referenced before or references now, if that changed."""
        new = references(template) if template is not None else frozenset()
        old = self._refs.get(workload, frozenset())
        if new == old:
            return set()
        _reindex(self._referrers, workload, old, new)
        if new:
            self._refs[workload] = new
        else:
            self._refs.pop(workload, None)
        return set(old ^ new)

    def pending(self, dependency: ResourceKey) -> list[ResourceKey]:
        """Workloads whose templates reference `dependency` but which this process has not
        reconciled yet: until they are, nobody knows where the dependency must stay."""
        return sorted(w for w in self._referrers.get(dependency, ()) if w not in self._recorded)

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
        if before == placed and widened is None:
            return set()
        return touched

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
