"""Which changes a reader wants: the same filter for the CLI, the watch API and the sinks."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.store import ChangeRow


@dataclass(frozen=True)
class ChangeFilter:
    """Every field optional; a change passes when it matches every field given.

    ``cluster`` is a glob (``eu-*``, ``member-?``); ``types`` a set of change types
    (``CopyApplied``, ``HealthChanged``, ``DriftCorrected``, …).
    """

    types: frozenset[str] = frozenset()
    namespace: str | None = None
    kind: str | None = None
    cluster: str | None = None

    @classmethod
    def of(
        cls,
        *,
        types: Iterable[str] = (),
        namespace: str | None = None,
        kind: str | None = None,
        cluster: str | None = None,
    ) -> ChangeFilter:
        return cls(frozenset(t for t in types if t), namespace or None, kind or None, cluster or None)

    def matches(self, change: ChangeRow) -> bool:
        if self.types and change.type not in self.types:
            return False
        ref = change.ref
        if self.namespace is not None and (ref is None or ref.namespace != self.namespace):
            return False
        if self.kind is not None and (ref is None or ref.kind != self.kind):
            return False
        return self.cluster is None or (
            change.cluster is not None and fnmatch.fnmatchcase(change.cluster, self.cluster)
        )

    def query(self) -> Mapping[str, Any]:
        """The same filter as `Store.changes_after`'s keyword arguments (done by Postgres)."""
        return {
            "types": sorted(self.types) or None,
            "namespace": self.namespace,
            "kind": self.kind,
            "cluster": self.cluster,
        }
