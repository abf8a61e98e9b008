"""The partial document: what is known of every template a selector can select.

Every location is known present (with a known or `Unknown` value), known absent, or unknown
(the module docstring of `federation.validation.patchcheck` says why the check needs this).
`resolve` reads a location with three outcomes (`Found`, `Missing` with the reason an op there
fails on every template, `Unsure`); `contradictions` holds a concrete object against the partial
one, which is how the tests check the representative templates against a real apiserver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation.translate import CLUSTER_NAME_VARIABLE
from federation.translate.pointer import join_pointer


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


def differs(node: Node, value: Any) -> str | None:
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
            if differs(child, value[key]) is not None:
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
            if differs(item, value[i]) is not None:
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
class Found:
    node: Node


@dataclass
class Missing:
    """Certainly not there: the op fails, for this reason."""

    reason: str


class Unsure:
    """Depends on the template."""


Located = Found | Missing | Unsure
UNSURE = Unsure()


def array_index(token: str) -> int | None:
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        return None
    return int(token)


def is_key(token: str) -> bool:
    """Whether only an object can hold ``token`` (an array takes indexes and ``-``)."""
    return array_index(token) is None and token != "-"


def resolve(root: Obj, tokens: Sequence[str]) -> Located:
    node: Node = root
    for depth, token in enumerate(tokens):
        if isinstance(node, Obj):
            if token in node.fields:
                node = node.fields[token]
                continue
            if token in node.absent or (node.closed and token not in node.maybe):
                return Missing(f"path {_where(tokens, depth)} does not exist")
            return UNSURE
        if isinstance(node, Arr):
            i = array_index(token)
            if i is None:
                return Missing(f"path {_where(tokens, depth)}: {token!r} is not an array index")
            if i < len(node.items):
                node = node.items[i]
            elif node.exact:
                where, length = _where(tokens, depth), len(node.items)
                return Missing(f"path {where}: array index {i} is out of range (length {length})")
            else:
                return UNSURE
        elif isinstance(node, Scalar):
            return Missing(
                f"path {_where(tokens, depth)} does not exist (parent is a {type(node.value).__name__})"
            )
        else:
            return UNSURE
    return Found(node)


def _where(tokens: Sequence[str], depth: int) -> str:
    """The pointer of ``tokens`` up to ``depth``, for a message (only built when one is)."""
    return join_pointer(list(tokens[: depth + 1]))
