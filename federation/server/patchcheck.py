"""Does a JSON patch fail on *every* template a selector can select? Decided without a template.

An override's JSON patch is applied to each selected template (pruned of hub-only fields, see
``federation.translate.prune``) on each cluster. Whether it applies depends on the template,
which does not exist yet when the policy is admitted; but some patches fail whatever the
template is: ``remove /status/x`` (status never reaches a member), ``replace /spec/replicas`` on
a ConfigMap (a ConfigMap has no spec), ``remove /metadata/nme`` (metadata has a fixed set of
fields), a ``test`` of ``/metadata/name`` against another name than the selector's, or an op
on a path an earlier op of the same patch removed. Those are refused at admission, where the
author is; the rest is left to the controller, which reports a failing override per template
and cluster.

How: the patch runs on a *partial document*, the representative template of the selected
kind, in which every location is known present (with a known or unknown value), known absent,
or unknown. An op that fails on it is a definite failure only if it fails for every document
the partial one stands for, so each step keeps the partial document an over-approximation:

- What every template of a kind has, after the apiserver's defaulting and our pruning: the
  selector's apiVersion and kind (and name, namespace, matchLabels when it pins them); metadata
  limited to ObjectMeta's fields, minus the hub-only ones; no ``status``; and for the built-in
  kinds below, their required and defaulted fields (an integration test checks each one against
  a minimal object stored by a real apiserver). Any other kind (a CRD) is an open object.
- What may have changed it before this rule: earlier rules of the same policy, and the override
  policies ordered before it that select the same kind (the caller passes them). Every location
  those may write becomes unknown; their effects are never guessed.
- Ops are followed assuming every earlier op succeeded (if one did not, the patch failed anyway),
  so ``add /a/b`` makes ``/a/b`` known for the ops after it.
- A path or value with ``${CLUSTER_NAME}`` is unknown until a cluster is chosen: such an op is
  never judged, and what it touches becomes unknown.

What it costs: time linear in the policies' size (`patch_check_cost` counts it in work units
before anything runs). Selectors that yield the same representative template are judged once;
each distinct template is built once, what the earlier policies may write is forgotten once,
and the rules are walked in order, each judged in a trial that is undone afterwards (an undo
log, not a copy) before its own effects are forgotten: no rule's effects are applied twice. A
`Meter` counts the work as it goes and stops it at a limit or a deadline, since the check runs
in a worker thread that nothing else can interrupt.

What is not decided: anything that depends on a template's content beyond the fields above
(``replace /spec/template/spec/containers/1/image`` works for templates with two containers),
on which clusters a rule targets, or on override policies created after this one. A property
test (tests/unit/test_webhook.py) holds every refusal against the real `apply_patch` on concrete
templates the representative stands for, with and without an earlier rule applied.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from federation.api import (
    ClusterOverridePolicy,
    OverridePolicy,
    OverridePolicyLike,
    Overriders,
    ResourceSelector,
    SelectorOperator,
)
from federation.errors import CheckTimedOutError, CheckTooLargeError
from federation.translate import CLUSTER_NAME_VARIABLE, HUB_ONLY_METADATA, OWNERSHIP
from federation.translate.identity import HUB_OWNED_METADATA
from federation.translate.pointer import PointerError, join_pointer, parse_pointer

# -- the partial document ----------------------------------------------------------------------


class Node:
    """A location known to be present; subclasses say what is known of its value."""


class Unknown(Node):
    """Present, with any value (of any type)."""

    def __repr__(self) -> str:
        return "Unknown()"


@dataclass
class Scalar(Node):
    """Present, with this string, number, boolean or null."""

    value: Any


@dataclass
class Obj(Node):
    """An object. ``fields`` are present; a key not in them is absent when it is in ``absent``,
    or when the object is ``closed`` and the key is not in ``maybe``; otherwise unknown."""

    fields: dict[str, Node] = field(default_factory=dict)
    closed: bool = False
    maybe: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)

    def state(self, key: str) -> str:
        if key in self.fields:
            return "present"
        if key in self.absent or (self.closed and key not in self.maybe):
            return "absent"
        return "unknown"

    def put(self, key: str, node: Node) -> None:
        self.fields[key] = node
        self.absent.discard(key)

    def delete(self, key: str) -> None:
        self.fields.pop(key, None)
        self.maybe.discard(key)
        if not self.closed:
            self.absent.add(key)

    def forget(self, key: str) -> None:
        """The key may now be absent or hold anything."""
        self.fields.pop(key, None)
        self.absent.discard(key)
        if self.closed:
            self.maybe.add(key)


@dataclass
class Arr(Node):
    """An array whose first ``len(items)`` elements are known; exactly those when ``exact``."""

    items: list[Node] = field(default_factory=list)
    exact: bool = False


def from_json(value: Any) -> Node:
    """A fully known value (strings with ``${CLUSTER_NAME}`` are not known until a cluster is)."""
    if isinstance(value, Mapping):
        return Obj({str(k): from_json(v) for k, v in value.items()}, closed=True)
    if isinstance(value, list | tuple):
        return Arr([from_json(v) for v in value], exact=True)
    if isinstance(value, str) and CLUSTER_NAME_VARIABLE in value:
        return Unknown()
    return Scalar(value)


def _same_json(a: Any, b: Any) -> bool:
    # JSON equality, as the patch's `test` compares: 1 == 1.0, but True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _kind_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _differs(node: Node, value: Any) -> str | None:
    """How ``node`` certainly differs from ``value`` (None: it may be equal)."""
    if isinstance(node, Unknown):
        return None
    if isinstance(value, str) and CLUSTER_NAME_VARIABLE in value:
        return None
    if isinstance(node, Scalar):
        return None if _same_json(node.value, value) else repr(node.value)
    if isinstance(node, Obj):
        if not isinstance(value, Mapping):
            return "an object"
        for key, child in node.fields.items():
            if key not in value:
                return f"an object with {key!r}"
            if _differs(child, value[key]) is not None:
                return f"an object whose {key!r} differs"
        for key in value:
            if node.state(str(key)) == "absent":
                return f"an object without {key!r}"
        return None
    if isinstance(node, Arr):
        if not isinstance(value, list):
            return "an array"
        if len(node.items) > len(value) or (node.exact and len(node.items) != len(value)):
            return "an array of another length"
        for i, item in enumerate(node.items):
            if _differs(item, value[i]) is not None:
                return f"an array whose item {i} differs"
        return None
    return None


def contradictions(node: Node, value: Any, where: str = "") -> list[str]:
    """Where a concrete document contradicts what ``node`` claims of every document (empty: it
    is one of them). The tests hold real stored objects against `representative` with it."""
    out: list[str] = []
    if isinstance(node, Scalar):
        if not _same_json(node.value, value):
            out.append(f"{where or '/'}: {value!r}, not {node.value!r}")
    elif isinstance(node, Obj):
        if not isinstance(value, Mapping):
            return [f"{where or '/'}: not an object"]
        for key, child in node.fields.items():
            if key not in value:
                out.append(f"{where}/{key}: missing")
            else:
                out += contradictions(child, value[key], f"{where}/{key}")
        out += [
            f"{where}/{key}: present, but assumed absent" for key in value if node.state(str(key)) == "absent"
        ]
    elif isinstance(node, Arr):
        if (
            not isinstance(value, list)
            or len(value) < len(node.items)
            or (node.exact and len(value) != len(node.items))
        ):
            return [f"{where}: not an array of {'exactly' if node.exact else 'at least'} {len(node.items)}"]
        for i, child in enumerate(node.items):
            out += contradictions(child, value[i], f"{where}/{i}")
    return out


# -- reading and writing locations -------------------------------------------------------------


@dataclass
class _Found:
    node: Node


@dataclass
class _Missing:
    """Certainly not there: the op fails, for this reason."""

    reason: str


class _Unsure:
    """Depends on the template."""


_Located = _Found | _Missing | _Unsure
_UNSURE = _Unsure()


def _index(token: str) -> int | None:
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        return None
    return int(token)


def _is_key(token: str) -> bool:
    """Whether only an object can hold ``token`` (an array takes indexes and ``-``)."""
    return _index(token) is None and token != "-"


def _resolve(root: Obj, tokens: Sequence[str]) -> _Located:
    node: Node = root
    for depth, token in enumerate(tokens):
        if isinstance(node, Obj):
            if token in node.fields:
                node = node.fields[token]
                continue
            if token in node.absent or (node.closed and token not in node.maybe):
                return _Missing(f"path {_where(tokens, depth)} does not exist")
            return _UNSURE
        if isinstance(node, Arr):
            i = _index(token)
            if i is None:
                return _Missing(f"path {_where(tokens, depth)}: {token!r} is not an array index")
            if i < len(node.items):
                node = node.items[i]
            elif node.exact:
                where, length = _where(tokens, depth), len(node.items)
                return _Missing(f"path {where}: array index {i} is out of range (length {length})")
            else:
                return _UNSURE
        elif isinstance(node, Scalar):
            return _Missing(
                f"path {_where(tokens, depth)} does not exist (parent is a {type(node.value).__name__})"
            )
        else:
            return _UNSURE
    return _Found(node)


def _where(tokens: Sequence[str], depth: int) -> str:
    """The pointer of ``tokens`` up to ``depth``, for a message (only built when one is)."""
    return join_pointer(list(tokens[: depth + 1]))


# -- what a check may cost ---------------------------------------------------------------------


class Meter:
    """The work one check has done, in units, against a limit and a deadline.

    A unit is one patch operation applied to (or forgotten on) one representative template, one
    node copied by a ``copy`` op, or one node saved before a trial changes it. The check runs in
    a worker thread, which nothing can interrupt from outside: the meter is how it stops itself,
    at the limit (`CheckTooLargeError`) or past the deadline (`CheckTimedOutError`, read from
    ``clock`` every `_CLOCK_EVERY` units so the clock costs nothing measurable).

    It is also how that thread leaves the GIL to the event loop: every `YIELD_EVERY` seconds of
    work it sleeps `YIELD_FOR` (`check`). Without that, the loop waits for the interpreter's
    5 ms switch interval behind every other busy thread, and a loaded machine stretches each
    of those waits; measured under a flood of worst-case reviews, the loop's worst stall went
    from 0.17–0.38 s to 0.09–0.22 s, for about a tenth of the checks' throughput.
    """

    _CLOCK_EVERY = 512
    YIELD_EVERY = 0.002
    YIELD_FOR = 0.0002

    def __init__(
        self,
        *,
        limit: int | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.deadline = deadline
        self.clock = clock
        self.spent = 0
        self._next_clock = self._CLOCK_EVERY
        self._yielded = time.perf_counter()

    def spend(self, units: int = 1) -> None:
        self.spent += units
        if self.limit is not None and self.spent > self.limit:
            raise CheckTooLargeError(f"the check needs more than {self.limit} work units")
        if self.spent >= self._next_clock:
            self._next_clock = self.spent + self._CLOCK_EVERY
            self.check()

    def check(self) -> None:
        """Raise `CheckTimedOutError` when the deadline has passed; leave the GIL to others
        for a moment when this thread has held it for `YIELD_EVERY`."""
        if self.deadline is not None and self.clock() > self.deadline:
            raise CheckTimedOutError(f"the check ran past its deadline after {self.spent} work units")
        if time.perf_counter() - self._yielded > self.YIELD_EVERY:
            time.sleep(self.YIELD_FOR)
            self._yielded = time.perf_counter()


# -- operations, parsed once -------------------------------------------------------------------


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
                    self._touch_unknown(pointer)
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
            moved = _resolve(self.root, source)
            if isinstance(moved, _Missing):
                return moved.reason
            failed = self._remove(source)
            if failed:
                return failed
            return self._add(path, moved.node if isinstance(moved, _Found) else Unknown())
        if name == "copy":
            copied = _resolve(self.root, source)
            if isinstance(copied, _Missing):
                return copied.reason
            if isinstance(copied, _Found):
                self.meter.spend(_count(copied.node))
                return self._add(path, copy.deepcopy(copied.node))
            return self._add(path, Unknown())
        if name == "test":
            return self._test(path, op.value, op.pointer)
        return f"unknown op {name!r}"

    def _add(self, path: list[str], value: Node) -> str | None:
        parent_tokens, last = path[:-1], path[-1]
        parent = _resolve(self.root, parent_tokens)
        if isinstance(parent, _Missing):
            return parent.reason
        container = parent.node if isinstance(parent, _Found) else None
        if isinstance(container, Obj):
            self._put(container, last, value)
        elif isinstance(container, Arr):
            if last == "-":
                self._items(container).append(value if container.exact else Unknown())
                return None
            i = _index(last)
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
        target = _resolve(self.root, path)
        if isinstance(target, _Missing):
            return target.reason
        parent_tokens, last = path[:-1], path[-1]
        parent = _resolve(self.root, parent_tokens)
        container = parent.node if isinstance(parent, _Found) else None
        if isinstance(container, Obj):
            self._touch(container)
            container.delete(last)
        elif isinstance(container, Arr):
            i = _index(last)
            if i is not None and i < len(container.items):
                del self._items(container)[i]
            # else: an element past the known ones went; the known ones stay where they are
        elif _is_key(last):
            self._set(parent_tokens, Obj(absent={last}))  # it was an object, and is one without it
        else:
            self._make_present(parent_tokens)
        return None

    def _replace(self, path: list[str], value: Node) -> str | None:
        target = _resolve(self.root, path)
        if isinstance(target, _Missing):
            return target.reason
        self._set(path, value)
        return None

    def _test(self, path: list[str], value: Any, pointer: str) -> str | None:
        target = _resolve(self.root, path)
        if isinstance(target, _Missing):
            return target.reason
        if isinstance(target, _Found):
            differs = _differs(target.node, value)
            if differs is not None:
                return f"test failed: {pointer} is {differs}, not {value!r}"
        self._set(path, from_json(value))  # it passed: now we know the value
        return None

    # -- updating what is known -----------------------------------------------------------------

    def _set(self, path: Sequence[str], value: Node) -> None:
        """``path`` now holds ``value`` (an op there just succeeded, so its parent exists)."""
        if not path:
            self.root = value if isinstance(value, Obj) else Obj()
            return
        parent_tokens, last = path[:-1], path[-1]
        parent = _resolve(self.root, parent_tokens)
        container = parent.node if isinstance(parent, _Found) else None
        if isinstance(container, Obj):
            self._put(container, last, value)
        elif isinstance(container, Arr):
            i = _index(last)
            if i is not None:
                items = self._items(container)
                items.extend(Unknown() for _ in range(i + 1 - len(items)))
                items[i] = value
        elif isinstance(container, Scalar):
            return  # the op cannot have succeeded: nothing to learn
        elif _is_key(last):
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
                i = _index(token)
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
            self._touch_unknown(pointer)
            return
        try:
            tokens = parse_pointer(pointer)
        except PointerError:
            return  # the models admit only valid pointers
        self._forget(tokens)

    def _forget(self, tokens: Sequence[str]) -> None:
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
            located = _resolve(self.root, where)
            node = located.node if isinstance(located, _Found) else None
            if not isinstance(node, Obj):
                continue  # unknown already (or an array, which a merge patch replaces whole: not under)
            for key, value in current.items():
                self.meter.spend()
                if isinstance(value, Mapping) and isinstance(node.fields.get(key), Obj):
                    pending.append((value, [*where, str(key)]))
                else:
                    self._touch(node)
                    node.forget(str(key))

    def _touch_unknown(self, pointer: str) -> None:
        """An op on a pointer with ``${CLUSTER_NAME}``: what is under its fixed prefix changes."""
        prefix = pointer.split(CLUSTER_NAME_VARIABLE, 1)[0].rsplit("/", 1)[0]
        if prefix:
            self.forget(prefix)
        else:
            self._make_present([])


# -- the representative template of a kind -------------------------------------------------------

_U = Unknown
#: ObjectMeta's fields: the identity, labels and annotations, and what the hub or the apiserver owns.
_OBJECT_META_FIELDS = {"name", "namespace", "labels", "annotations", *HUB_OWNED_METADATA}


def _o(**fields: Node) -> Obj:
    return Obj(dict(fields))


def _containers() -> Arr:
    return Arr([_o(name=_U())])


def _pod_spec() -> Obj:
    return _o(
        containers=_containers(),
        restartPolicy=_U(),
        dnsPolicy=_U(),
        schedulerName=_U(),
        terminationGracePeriodSeconds=_U(),
        securityContext=_U(),
    )


def _pod_template(*, labels: bool) -> Obj:
    return _o(metadata=_o(labels=_U()), spec=_pod_spec()) if labels else _o(spec=_pod_spec())


def _deployment() -> dict[str, Node]:
    return {
        "spec": _o(
            replicas=_U(),
            selector=_U(),
            template=_pod_template(labels=True),
            strategy=_U(),
            revisionHistoryLimit=_U(),
            progressDeadlineSeconds=_U(),
        )
    }


def _statefulset() -> dict[str, Node]:
    return {
        "spec": _o(
            replicas=_U(),
            selector=_U(),
            template=_pod_template(labels=True),
            podManagementPolicy=_U(),
            updateStrategy=_U(),
            revisionHistoryLimit=_U(),
        )
    }


def _daemonset() -> dict[str, Node]:
    return {
        "spec": _o(
            selector=_U(),
            template=_pod_template(labels=True),
            updateStrategy=_U(),
            revisionHistoryLimit=_U(),
        )
    }


def _replicaset() -> dict[str, Node]:
    return {"spec": _o(replicas=_U(), selector=_U(), template=_pod_template(labels=True))}


def _job_spec() -> Obj:
    # The selector and the controller-uid labels are dropped by pruning: not listed.
    return _o(template=_pod_template(labels=False), backoffLimit=_U(), completionMode=_U(), suspend=_U())


def _job() -> dict[str, Node]:
    return {"spec": _job_spec()}


def _cronjob() -> dict[str, Node]:
    return {
        "spec": _o(
            schedule=_U(),
            jobTemplate=_o(spec=_o(template=_pod_template(labels=False))),
            concurrencyPolicy=_U(),
            suspend=_U(),
            successfulJobsHistoryLimit=_U(),
            failedJobsHistoryLimit=_U(),
        )
    }


def _pod() -> dict[str, Node]:
    return {"spec": _pod_spec()}


def _service() -> dict[str, Node]:
    return {"spec": _o(type=_U(), sessionAffinity=_U())}


def _secret() -> dict[str, Node]:
    return {"type": _U()}


@dataclass(frozen=True)
class _KindShape:
    build: Callable[[], dict[str, Node]]
    maybe: frozenset[str] = frozenset()
    """Top-level fields a template of the kind may have besides the built ones: given for the
    built-in kinds, whose top level the apiserver prunes to their schema (closed)."""


KIND_SHAPES: Mapping[tuple[str, str], _KindShape] = {
    ("apps/v1", "Deployment"): _KindShape(_deployment),
    ("apps/v1", "StatefulSet"): _KindShape(_statefulset),
    ("apps/v1", "DaemonSet"): _KindShape(_daemonset),
    ("apps/v1", "ReplicaSet"): _KindShape(_replicaset),
    ("batch/v1", "Job"): _KindShape(_job),
    ("batch/v1", "CronJob"): _KindShape(_cronjob),
    ("v1", "Pod"): _KindShape(_pod),
    ("v1", "Service"): _KindShape(_service),
    ("v1", "ConfigMap"): _KindShape(dict, frozenset({"data", "binaryData", "immutable"})),
    ("v1", "Secret"): _KindShape(_secret, frozenset({"data", "stringData", "immutable"})),
    ("v1", "ServiceAccount"): _KindShape(
        dict, frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"})
    ),
}
"""The built-in kinds whose stored shape is known: what the apiserver requires or defaults,
after our pruning (``status`` never; a Job's selector not). Checked against a real apiserver by
``tests/integration/test_webhook.py``."""


def _known_labels(selector: ResourceSelector) -> dict[str, str | None]:
    """The labels every template the selector selects has: the value when it is pinned (None:
    present, any value), minus our own ownership labels (pruned)."""
    labels: dict[str, str | None] = {}
    if selector.label_selector is not None:
        for key, value in selector.label_selector.match_labels.items():
            labels[key] = value
        for req in selector.label_selector.match_expressions:
            if req.operator in (SelectorOperator.IN, SelectorOperator.EXISTS):
                labels.setdefault(
                    req.key,
                    req.values[0] if req.operator is SelectorOperator.IN and len(req.values) == 1 else None,
                )
    return {k: v for k, v in labels.items() if not k.startswith(OWNERSHIP.prefix)}


def representative_key(selector: ResourceSelector, *, namespace: str | None) -> Hashable:
    """Everything `representative` reads of its arguments: equal keys, equal templates."""
    labels = tuple(sorted(_known_labels(selector).items(), key=lambda kv: kv[0]))
    return (selector.api_version, selector.kind, selector.name, namespace, labels)


def representative(selector: ResourceSelector, *, namespace: str | None) -> Obj:
    """What every template ``selector`` can select holds, as the override sees it (pruned).

    ``namespace`` is the template's namespace when it is known (an OverridePolicy's own, or
    the selector's).
    """
    labels: dict[str, Node] = {
        k: Scalar(v) if v is not None else Unknown() for k, v in _known_labels(selector).items()
    }
    meta = Obj(
        {"name": Scalar(selector.name) if selector.name is not None else Unknown()},
        closed=True,
        maybe=_OBJECT_META_FIELDS - set(HUB_ONLY_METADATA) - {"name"},
    )
    if namespace is not None:
        meta.put("namespace", Scalar(namespace))
    if labels:
        meta.put("labels", Obj(labels))
    root = Obj({"apiVersion": Scalar(selector.api_version), "kind": Scalar(selector.kind), "metadata": meta})
    shape = KIND_SHAPES.get((selector.api_version, selector.kind))
    if shape is None:
        root.absent.add("status")  # pruned from every template
        return root
    root.fields.update(shape.build())
    root.closed = True
    root.maybe = set(shape.maybe)
    return root


# -- a policy's rules ------------------------------------------------------------------------------


def _effect_pointers(overriders: Overriders) -> list[str]:
    """The pointers ``overriders`` may write at (besides a merge patch's keys)."""
    pointers: list[str] = []
    for op in overriders.json_patch or ():
        pointers.append(op.path)
        if op.from_ is not None:
            pointers.append(op.from_)
    # An image overrider without a path changes only container image strings: never known in a
    # representative template, so nothing to forget.
    pointers += [image.path for image in overriders.image or () if image.path is not None]
    if overriders.labels is not None:
        pointers.append("/metadata/labels")
    if overriders.annotations is not None:
        pointers.append("/metadata/annotations")
    if overriders.replicas is not None:
        pointers.append("/spec/replicas")
    return pointers


class Effects:
    """What one rule's overriders may write, parsed once for every representative template."""

    __slots__ = ("merge_patch", "pointers")

    def __init__(self, overriders: Overriders) -> None:
        self.pointers: list[tuple[str, list[str] | None]] = []
        for pointer in _effect_pointers(overriders):
            tokens: list[str] | None = None
            if CLUSTER_NAME_VARIABLE not in pointer:
                try:
                    tokens = parse_pointer(pointer)
                except PointerError:
                    continue  # the models admit only valid pointers
            self.pointers.append((pointer, tokens))
        self.merge_patch = overriders.merge_patch


def forget_effects(doc: Document, overriders: Overriders | Effects) -> None:
    """Make unknown whatever ``overriders`` (of an earlier rule or policy) may have written."""
    effects = overriders if isinstance(overriders, Effects) else Effects(overriders)
    for pointer, tokens in effects.pointers:
        doc.meter.spend()
        if tokens is None:
            doc._touch_unknown(pointer)
        else:
            doc._forget(tokens)
    if effects.merge_patch is not None:
        doc.forget_merge(effects.merge_patch)


def _merge_keys(patch: Mapping[str, Any]) -> int:
    """Keys of a merge patch at every depth (what `Document.forget_merge` may visit)."""
    total, pending = 0, [patch]
    while pending:
        current = pending.pop()
        total += len(current)
        pending.extend(v for v in current.values() if isinstance(v, Mapping))
    return total


def _forget_cost(overriders: Overriders) -> int:
    """Work units of `forget_effects` for these overriders (an upper bound)."""
    merge = _merge_keys(overriders.merge_patch) if overriders.merge_patch is not None else 0
    return len(_effect_pointers(overriders)) + merge


@dataclass(frozen=True)
class PatchFailure:
    """A JSON patch operation that fails on every template one selector can select."""

    rule: int
    operation: int
    selector: int
    reason: str


def _selects_kind(policy: OverridePolicyLike, selector: ResourceSelector) -> bool:
    return any(
        s.api_version == selector.api_version and s.kind == selector.kind
        for s in policy.spec.resource_selectors
    )


def _precedes(other: OverridePolicyLike, policy: OverridePolicyLike) -> bool:
    """Whether ``other`` applies before ``policy`` on a template both select (the order of
    ``federation.translate.resolve_overrides``: cluster-scoped first, then by name)."""
    if other.kind == policy.kind and other.metadata.name == policy.metadata.name:
        return False
    if isinstance(other, ClusterOverridePolicy):
        return isinstance(policy, OverridePolicy) or other.metadata.name < policy.metadata.name
    return (
        isinstance(policy, OverridePolicy)
        and other.metadata.namespace == policy.metadata.namespace
        and other.metadata.name < policy.metadata.name
    )


def _template_namespace(policy: OverridePolicyLike, selector: ResourceSelector) -> str | None:
    own = policy.metadata.namespace if isinstance(policy, OverridePolicy) else None
    return own or selector.namespace


def _groups(policy: OverridePolicyLike) -> list[list[int]]:
    """The policy's selector indexes grouped by the representative template they yield, in the
    order of each group's first selector: selectors of one group get the same verdicts."""
    groups: dict[Hashable, list[int]] = {}
    for index, selector in enumerate(policy.spec.resource_selectors):
        key = representative_key(selector, namespace=_template_namespace(policy, selector))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def patch_check_cost(policy: OverridePolicyLike, *, others: Sequence[OverridePolicyLike] = ()) -> int:
    """Work units `failing_patches` spends at most on this policy, bar copies and trial saves
    (which its `Meter` counts as they happen): per distinct representative template, every
    operation of every rule applied once and forgotten once, and what the policies ordered
    before it may write forgotten once. Linear in the size of the policies."""
    own = sum(
        len(rule.overriders.json_patch or ()) + _forget_cost(rule.overriders) for rule in policy.spec.rules
    )
    before = [other for other in others if _precedes(other, policy)]
    total = 0
    for group in _groups(policy):
        selector = policy.spec.resource_selectors[group[0]]
        total += own + sum(
            _forget_cost(rule.overriders)
            for other in before
            if _selects_kind(other, selector)
            for rule in other.spec.rules
        )
    return total


def failing_patches(
    policy: OverridePolicyLike,
    *,
    others: Sequence[OverridePolicyLike] = (),
    meter: Meter | None = None,
) -> list[PatchFailure]:
    """Every rule's first JSON patch operation that fails on all templates of a selector (the
    first such selector).

    ``others`` are the hub's other override policies: those applied before ``policy`` on the
    same kind are taken into account (whatever they may write is unknown).

    Linear in the policies' size (`patch_check_cost`): per distinct representative template,
    the document is built once and what the earlier policies may write is forgotten once; then
    the rules are walked in order, each judged in a `Document.trial` of the document as the
    rules before it leave it, and then its own effects forgotten, so no rule's effects are ever
    forgotten twice. ``meter`` stops the walk at its limit or deadline (raising).
    """
    meter = meter or Meter()
    rules = policy.spec.rules
    prepared = [[PreparedOp(op.to_rfc6902()) for op in rule.overriders.json_patch or ()] for rule in rules]
    effects = [Effects(rule.overriders) for rule in rules]
    before = [other for other in others if _precedes(other, policy)]
    before_effects = {id(other): [Effects(rule.overriders) for rule in other.spec.rules] for other in before}
    found: dict[int, tuple[int, int, str]] = {}  # rule -> (selector, operation, reason)
    for group in _groups(policy):
        first = group[0]
        selector = policy.spec.resource_selectors[first]
        doc = Document(representative(selector, namespace=_template_namespace(policy, selector)), meter=meter)
        for other in before:
            if _selects_kind(other, selector):
                for other_effects in before_effects[id(other)]:
                    forget_effects(doc, other_effects)
        for rule_index, (ops, rule_effects) in enumerate(zip(prepared, effects, strict=True)):
            # Groups come in the order of their first selector: a rule that failed on an
            # earlier one is reported for that one, and needs no trial here.
            if ops and rule_index not in found:
                with doc.trial():
                    failure = next(
                        ((i, reason) for i, op in enumerate(ops) if (reason := doc.apply(op)) is not None),
                        None,
                    )
                if failure is not None:
                    found[rule_index] = (first, *failure)
            forget_effects(doc, rule_effects)
    return [
        PatchFailure(rule, op, selector, reason) for rule, (selector, op, reason) in sorted(found.items())
    ]
