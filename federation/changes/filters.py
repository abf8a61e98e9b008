"""Which changes a reader wants: the same filter for the CLI, the watch API and the sinks."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.store import ChangeRow


def _set(values: Iterable[str] | str | None) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = values.split(",")
    return frozenset(v.strip() for v in values if v and v.strip())


@dataclass(frozen=True)
class ChangeFilter:
    """Every field optional (empty: anything); a change passes when it matches every field
    given, and a field with several values when it matches any of them.

    ``clusters`` are globs (``eu-*``, ``member-?``); ``types`` change types (``CopyApplied``,
    ``HealthChanged``, ``DriftCorrected``, …).
    """

    types: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    clusters: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        types: Iterable[str] | str | None = None,
        namespace: Iterable[str] | str | None = None,
        kind: Iterable[str] | str | None = None,
        cluster: Iterable[str] | str | None = None,
    ) -> ChangeFilter:
        return cls(_set(types), _set(namespace), _set(kind), _set(cluster))

    def matches(self, change: ChangeRow) -> bool:
        if self.types and change.type not in self.types:
            return False
        ref = change.ref
        if self.namespaces and (ref is None or ref.namespace not in self.namespaces):
            return False
        if self.kinds and (ref is None or ref.kind not in self.kinds):
            return False
        return not self.clusters or (
            change.cluster is not None and any(fnmatch.fnmatchcase(change.cluster, g) for g in self.clusters)
        )

    def query(self) -> Mapping[str, Any]:
        """As much of the filter as `Store.changes_after` takes (the rest: `matches`, after)."""
        return {
            "types": sorted(self.types) or None,
            "namespace": next(iter(self.namespaces)) if len(self.namespaces) == 1 else None,
            "kind": next(iter(self.kinds)) if len(self.kinds) == 1 else None,
            "cluster": next(iter(self.clusters)) if len(self.clusters) == 1 else None,
        }
