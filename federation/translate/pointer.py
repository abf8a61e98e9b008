"""RFC 6901 JSON pointers over plain dicts and lists."""

from __future__ import annotations

import copy
from typing import Any, TypeVar, cast

import orjson

T = TypeVar("T")


class PointerError(ValueError):
    """A pointer that is malformed or does not resolve; the message says which part failed."""


def parse_pointer(pointer: str) -> list[str]:
    """``/a/b~1c/0`` → ``["a", "b/c", "0"]``; ``""`` is the whole document."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"{pointer!r} is not a JSON pointer (it must start with '/')")
    parts = pointer[1:].split("/")
    for p in parts:
        rest = p.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PointerError(f"{pointer!r}: '~' must be followed by 0 or 1")
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def join_pointer(tokens: list[str | int]) -> str:
    return "".join(f"/{escape(str(t))}" for t in tokens)


def list_index(container: list[Any], token: str, *, allow_end: bool) -> int:
    """The index a token names in a list (``-`` is one past the end, only where allowed)."""
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PointerError(f"{token!r} is not an array index")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PointerError(f"array index {index} is out of range (length {len(container)})")
    return index


def resolve(doc: Any, tokens: list[str]) -> Any:
    """The value the tokens point at; PointerError naming the first missing part otherwise."""
    node = doc
    for depth, token in enumerate(tokens):
        where = join_pointer(list(tokens[: depth + 1]))
        if isinstance(node, dict):
            if token not in node:
                raise PointerError(f"path {where} does not exist")
            node = node[token]
        elif isinstance(node, list):
            try:
                node = node[list_index(node, token, allow_end=False)]
            except PointerError as exc:
                raise PointerError(f"path {where}: {exc}") from None
        else:
            raise PointerError(f"path {where} does not exist (parent is a {type(node).__name__})")
    return node


def json_copy(value: T) -> T:
    """A deep copy of a JSON document, several times faster than `copy.deepcopy`.

    Templates and manifests are parsed JSON; translation copies each one once per cluster, so
    this is on the controller's hot path. Anything that is not JSON falls back to deepcopy.
    """
    try:
        return cast(T, orjson.loads(orjson.dumps(value)))
    except TypeError:
        return copy.deepcopy(value)
