"""The informer cache: objects by key, with named indexes, all lookups O(1).

Like client-go's `cache.Indexer`, minus the locks: everything runs on one event loop and no
method awaits, so each call is atomic. Objects are the parsed JSON dicts from the apiserver;
callers must treat them as read-only (copy before mutating), as client-go asks of its cache.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from federation.kube.resources import Obj, object_key, resource_version

#: Maps an object to the index values it is found under (may be several, or none).
IndexFunc = Callable[[Obj], Iterable[str]]
KeyFunc = Callable[[Obj], str]

NAMESPACE_INDEX = "namespace"


def by_namespace(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def by_label(label: str) -> IndexFunc:
    """An index on one label's value (objects without the label are not indexed)."""

    def index(obj: Obj) -> list[str]:
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(label)
        return [value] if value is not None else []

    return index


class Indexer:
    """A keyed cache with named indexes: client-go's `cache.Indexer`, by that name rather than
    `Store` so that it is never taken for the state store (`federation.store.Store`)."""

    def __init__(
        self, *, key_func: KeyFunc = object_key, indexers: Mapping[str, IndexFunc] | None = None
    ) -> None:
        self.key_func = key_func
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: by_namespace}
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        for name, func in (indexers or {}).items():
            self.add_indexer(name, func)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index; existing objects are indexed right away."""
        self._indexers[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indices[name] = index

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self._items.values()))

    def objects(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def estimated_bytes(self, *, sample: int = 32) -> int:
        """The memory the cached objects hold, estimated from a sample (for a gauge at scrape
        time: sizing all of them would cost a walk of every object on each scrape).

        Counted by `deep_size`, so strings shared by the sample's objects (orjson's cached
        keys) count once, as they are held once."""
        n = len(self._items)
        if not n:
            return 0
        taken = list(itertools.islice(self._items.values(), sample))
        return deep_size(taken) * n // len(taken)

    def by_index(self, index: str, value: str) -> list[Obj]:
        return [self._items[k] for k in self._index(index).get(value, ())]

    def index_keys(self, index: str, value: str) -> set[str]:
        return set(self._index(index).get(value, ()))

    def index_values(self, index: str) -> list[str]:
        return list(self._index(index))

    def _index(self, name: str) -> dict[str, set[str]]:
        try:
            return self._indices[name]
        except KeyError:
            raise KeyError(f"no index named {name!r} (have: {', '.join(sorted(self._indices))})") from None

    # -- writes -------------------------------------------------------------------------

    def upsert(self, obj: Obj) -> Obj | None:
        """Insert or replace; returns the previous object under the same key, if any."""
        key = self.key_func(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index_obj(key, obj)
        return old

    def remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Obj]) -> tuple[list[Obj], list[tuple[Obj, Obj]], list[Obj]]:
        """Make the cache exactly `objs` (after a list). Returns (added, updated as (old, new),
        deleted): what changed, so an informer can tell its handlers exactly that.

        An object counts as updated only when its resourceVersion differs: a relist after a
        short disconnect reports only what really changed meanwhile.
        """
        fresh: dict[str, Obj] = {}
        for obj in objs:
            fresh[self.key_func(obj)] = obj
        added: list[Obj] = []
        updated: list[tuple[Obj, Obj]] = []
        deleted = [self._items[k] for k in self._items.keys() - fresh.keys()]
        for key in [self.key_func(o) for o in deleted]:
            self.remove(key)
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is None:
                added.append(obj)
                self.upsert(obj)
            elif resource_version(old) != resource_version(obj):
                updated.append((old, obj))
                self.upsert(obj)
        return added, updated, deleted

    def _index_obj(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


def deep_size(objs: Iterable[Any]) -> int:
    """Bytes of the Python objects reachable from parsed JSON values (dicts, lists, scalars),
    each object counted once however often it is shared."""
    seen: set[int] = set()
    total = 0
    stack: list[Any] = list(objs)
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        total += sys.getsizeof(value)
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return total


def copy_obj(obj: Obj) -> dict[str, Any]:
    """A deep copy for callers that need to mutate a cached object."""
    import copy

    return copy.deepcopy(obj)
