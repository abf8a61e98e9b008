"""RFC 6902 operations followed on a partial document, each judged "may succeed" or "fails on
every template", with trials that are undone through an undo log rather than a copy.

Why one module of ~400 lines: `Document`'s ops (add, remove, replace, move, copy, test) and
what each teaches about the document (`_set`, `_make_present`, `forget`) read and write the same
undo log, so splitting them would only spread one invariant over several files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from federation.translate import CLUSTER_NAME_VARIABLE
from federation.translate.pointer import PointerError, join_pointer, parse_pointer
from federation.validation.meter import Meter
from federation.validation.partial import (
    Arr,
    Found,
    Missing,
    Node,
    Obj,
    Scalar,
    Unknown,
    array_index,
    differs,
    from_json,
    is_key,
    resolve,
)


class PreparedOp:
    """One RFC 6902 operation with its pointers parsed once, however many representative
    templates it is judged on; its ``value`` as a partial document is built on first use and
    shared by every trial (each trial's changes to it are undone with the trial's)."""

    __slots__ = ("_node", "error", "name", "path", "pointer", "source", "source_pointer", "value", "variable")

    def __init__(self, op: Mapping[str, Any]) -> None:
        self.name = str(op.get("op", ""))
        self.pointer = str(op.get("path", ""))
        self.source_pointer = str(op["from"]) if "from" in op else None
        self.value = op.get("value")
        pointers = [self.pointer] + ([self.source_pointer] if self.source_pointer is not None else [])
        self.variable = any(CLUSTER_NAME_VARIABLE in p for p in pointers)
        self.error: str | None = None
        self.path: list[str] = []
        self.source: list[str] = []
        self._node: Node | None = None
        if not self.variable:
            try:
                self.path = parse_pointer(self.pointer)
                self.source = parse_pointer(self.source_pointer) if self.source_pointer is not None else []
            except PointerError as exc:
                self.error = str(exc)

    def node(self) -> Node:
        if self._node is None:
            self._node = from_json(self.value)
        return self._node


# -- the document and the ops on it ------------------------------------------------------------

_State = tuple[Any, ...]


def _snapshot(node: Node) -> tuple[_State, int]:
    """What a trial restores of ``node``, and its size in work units."""
    if isinstance(node, Obj):
        return (dict(node.fields), node.closed, set(node.maybe), set(node.absent)), 1 + len(
            node.fields
        ) + len(node.maybe) + len(node.absent)
    if isinstance(node, Arr):
        return (list(node.items), node.exact), 1 + len(node.items)
    return (), 1


def _restore(node: Node, state: _State) -> None:
    if isinstance(node, Obj):
        node.fields, node.closed, node.maybe, node.absent = state
    elif isinstance(node, Arr):
        node.items, node.exact = state


def _count(node: Node) -> int:
    """Nodes under ``node`` (without recursion: values may be deep)."""
    total, stack = 0, [node]
    while stack:
        current = stack.pop()
        total += 1
        if isinstance(current, Obj):
            stack.extend(current.fields.values())
        elif isinstance(current, Arr):
            stack.extend(current.items)
    return total


class Document:
    """A partial document and the RFC 6902 ops on it (see the module docstring).

    Inside `trial` every change is undone at the end: each node is saved the first time the
    trial changes it, so undoing costs what the trial changed, not the document's size. That is
    what lets `failing_patches` judge each rule on the document as the rules before it leave
    it, without rebuilding it per rule.
    """

    def __init__(self, root: Obj, *, meter: Meter | None = None) -> None:
        self.root = root
        self.meter = meter or Meter()
        self._saved: dict[int, tuple[Node, _State]] | None = None

    @contextmanager
    def trial(self) -> Iterator[None]:
        """Apply ops inside; the document is as before once the block ends."""
        if self._saved is not None:
            raise RuntimeError("trials do not nest")
        root, self._saved = self.root, {}
        try:
            yield
        finally:
            saved, self._saved = self._saved, None
            for node, state in saved.values():
                _restore(node, state)
            self.root = root

    def _touch(self, node: Node) -> None:
        """``node`` is about to change: inside a trial, save it first (once)."""
        saved = self._saved
        if saved is not None and id(node) not in saved:
            state, size = _snapshot(node)
            saved[id(node)] = (node, state)
            self.meter.spend(size)

    def _put(self, container: Obj, key: str, node: Node) -> None:
        saved = self._saved
        if saved is not None and id(container) not in saved:
            self._touch(container)
        container.fields[key] = node
        container.absent.discard(key)

    def _items(self, container: Arr) -> list[Node]:
        """The array's items, to be changed in place."""
        self._touch(container)
        return container.items

    # Each op returns None (it may succeed) or the reason it fails on every template.

    def apply(self, op: Mapping[str, Any] | PreparedOp) -> str | None:
        prepared = op if isinstance(op, PreparedOp) else PreparedOp(op)
        self.meter.spend()
        return self._apply(prepared)

    def _apply(self, op: PreparedOp) -> str | None:
        if op.variable:
            for pointer in (op.pointer, op.source_pointer):
                if pointer is not None:
                    self.forget_variable(pointer)
            return None
        if op.error is not None:
            return op.error
        path, source, name = op.path, op.source, op.name
        if not path:
            return "the whole document cannot be the target here"
        if name == "add":
            return self._add(path, op.node())
        if name == "remove":
            return self._remove(path)
        if name == "replace":
            return self._replace(path, op.node())
        if name == "move":
            if path[: len(source)] == source and path != source:
                return f"cannot move {op.source_pointer} into its own child {op.pointer}"
            moved = resolve(self.root, source)
            if isinstance(moved, Missing):
                return moved.reason
            failed = self._remove(source)
            if failed:
                return failed
            return self._add(path, moved.node if isinstance(moved, Found) else Unknown())
        if name == "copy":
            copied = resolve(self.root, source)
            if isinstance(copied, Missing):
                return copied.reason
            if isinstance(copied, Found):
                self.meter.spend(_count(copied.node))
                return self._add(path, copy.deepcopy(copied.node))
            return self._add(path, Unknown())
        if name == "test":
            return self._test(path, op.value, op.pointer)
        return f"unknown op {name!r}"

    def _add(self, path: list[str], value: Node) -> str | None:
        parent_tokens, last = path[:-1], path[-1]
        parent = resolve(self.root, parent_tokens)
        if isinstance(parent, Missing):
            return parent.reason
        container = parent.node if isinstance(parent, Found) else None
        if isinstance(container, Obj):
            self._put(container, last, value)
        elif isinstance(container, Arr):
            if last == "-":
                self._items(container).append(value if container.exact else Unknown())
                return None
            i = array_index(last)
            if i is None:
                return f"{last!r} is not an array index"
            if i <= len(container.items):
                self._items(container).insert(i, value)
            elif container.exact:
                return f"array index {i} is out of range (length {len(container.items)})"
            else:
                items = self._items(container)
                items.extend(Unknown() for _ in range(i - len(items)))
                items.append(value)
        elif isinstance(container, Scalar):
            return f"path {join_pointer(list(parent_tokens))} is not an object or array"
        else:
            self._set(path, value)
        return None

    def _remove(self, path: list[str]) -> str | None:
        target = resolve(self.root, path)
        if isinstance(target, Missing):
            return target.reason
        parent_tokens, last = path[:-1], path[-1]
        parent = resolve(self.root, parent_tokens)
        container = parent.node if isinstance(parent, Found) else None
        if isinstance(container, Obj):
            self._touch(container)
            container.delete(last)
        elif isinstance(container, Arr):
            i = array_index(last)
            if i is not None and i < len(container.items):
                del self._items(container)[i]
            # else: an element past the known ones went; the known ones stay where they are
        elif is_key(last):
            self._set(parent_tokens, Obj(absent={last}))  # it was an object, and is one without it
        else:
            self._make_present(parent_tokens)
        return None

    def _replace(self, path: list[str], value: Node) -> str | None:
        target = resolve(self.root, path)
        if isinstance(target, Missing):
            return target.reason
        self._set(path, value)
        return None

    def _test(self, path: list[str], value: Any, pointer: str) -> str | None:
        target = resolve(self.root, path)
        if isinstance(target, Missing):
            return target.reason
        if isinstance(target, Found):
            found = differs(target.node, value)
            if found is not None:
                return f"test failed: {pointer} is {found}, not {value!r}"
        self._set(path, from_json(value))  # it passed: now we know the value
        return None

    # -- updating what is known -----------------------------------------------------------------

    def _set(self, path: Sequence[str], value: Node) -> None:
        """``path`` now holds ``value`` (an op there just succeeded, so its parent exists)."""
        if not path:
            self.root = value if isinstance(value, Obj) else Obj()
            return
        parent_tokens, last = path[:-1], path[-1]
        parent = resolve(self.root, parent_tokens)
        container = parent.node if isinstance(parent, Found) else None
        if isinstance(container, Obj):
            self._put(container, last, value)
        elif isinstance(container, Arr):
            i = array_index(last)
            if i is not None:
                items = self._items(container)
                items.extend(Unknown() for _ in range(i + 1 - len(items)))
                items[i] = value
        elif isinstance(container, Scalar):
            return  # the op cannot have succeeded: nothing to learn
        elif is_key(last):
            self._set(parent_tokens, Obj({last: value}))  # only an object has such a member
        else:
            self._make_present(parent_tokens)

    def _make_present(self, path: Sequence[str]) -> None:
        """``path`` exists (an op under it succeeded) but what it holds is no longer known."""
        if not path:
            self.root = Obj()
            return
        node: Node = self.root
        for depth, token in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, Obj):
                if last or node.state(token) != "present":
                    self._put(node, token, Unknown())
                    return
                node = node.fields[token]
            elif isinstance(node, Arr):
                i = array_index(token)
                if i is None or (node.exact and i >= len(node.items)):
                    return  # the op cannot have succeeded: nothing to learn
                items = self._items(node)
                items.extend(Unknown() for _ in range(i + 1 - len(items)))
                if last:
                    items[i] = Unknown()
                    return
                node = items[i]
            else:
                return  # Unknown already; a Scalar here means the op failed, so anything goes

    def forget(self, pointer: str) -> None:
        """Something may have written at ``pointer`` (an earlier rule or policy): it, and any
        absent ancestor, may now be anything or absent; array elements may have shifted."""
        self.meter.spend()
        if CLUSTER_NAME_VARIABLE in pointer:
            self.forget_variable(pointer)
            return
        try:
            tokens = parse_pointer(pointer)
        except PointerError:
            return  # the models admit only valid pointers
        self.forget_tokens(tokens)

    def forget_tokens(self, tokens: Sequence[str]) -> None:
        """`forget` of a parsed pointer, unmetered: the caller has spent the unit already."""
        if not tokens:
            self.root = Obj()
            return
        node: Node = self.root
        last = len(tokens) - 1
        for depth, token in enumerate(tokens):
            if isinstance(node, Obj):
                child = node.fields.get(token)
                if depth == last or child is None:
                    if (
                        child is None
                        and token not in node.absent
                        and (not node.closed or token in node.maybe)
                    ):
                        return  # unknown already
                    self._touch(node)
                    node.forget(token)
                    return
                node = child
            elif isinstance(node, Arr):
                self._touch(node)
                node.items, node.exact = [], False
                return
            else:
                return

    def forget_merge(self, patch: Mapping[str, Any], under: Sequence[str] = ()) -> None:
        """What a JSON merge patch may have written (walked without recursion: patches may be
        deep)."""
        pending: list[tuple[Mapping[str, Any], list[str]]] = [(patch, list(under))]
        while pending:
            current, where = pending.pop()
            located = resolve(self.root, where)
            node = located.node if isinstance(located, Found) else None
            if not isinstance(node, Obj):
                continue  # unknown already (or an array, which a merge patch replaces whole: not under)
            for key, value in current.items():
                self.meter.spend()
                if isinstance(value, Mapping) and isinstance(node.fields.get(key), Obj):
                    pending.append((value, [*where, str(key)]))
                else:
                    self._touch(node)
                    node.forget(str(key))

    def forget_variable(self, pointer: str) -> None:
        """An op on a pointer with ``${CLUSTER_NAME}``: what is under its fixed prefix changes."""
        prefix = pointer.split(CLUSTER_NAME_VARIABLE, 1)[0].rsplit("/", 1)[0]
        if prefix:
            self.forget(prefix)
        else:
            self._make_present([])
