"""RFC 6902 JSON Patch on plain dicts/lists, with errors that say which operation failed and why.

Written here rather than taken from a package: it is short, it lets every failure name the
operation index, op and path (what an override error must show), and it never mutates its input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from federation.translate.pointer import PointerError, join_pointer, list_index, parse_pointer, resolve


class PatchError(ValueError):
    """A patch operation that cannot be applied; ``index`` is its position in the patch."""

    def __init__(self, message: str, *, index: int, op: str) -> None:
        super().__init__(message)
        self.index = index
        self.op = op


def _container(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    if not tokens:
        raise PointerError("the whole document cannot be the target here")
    return resolve(doc, tokens[:-1]), tokens[-1]


def _add(doc: Any, tokens: list[str], *, value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _container(doc, tokens)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(list_index(parent, last, allow_end=True), value)
    else:
        raise PointerError(f"path {join_pointer(list(tokens[:-1]))} is not an object or array")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    parent, last = _container(doc, tokens)
    if isinstance(parent, dict):
        if last not in parent:
            raise PointerError(f"path {join_pointer(list(tokens))} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(list_index(parent, last, allow_end=False))
    raise PointerError(f"path {join_pointer(list(tokens))} does not exist")


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0 but True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and (isinstance(a, int | float) == isinstance(b, int | float))


def apply_patch(doc: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """The patched copy of ``doc``; the input is never modified."""
    result = copy.deepcopy(doc)
    for index, op in enumerate(operations):
        name = str(op.get("op", ""))
        try:
            path = parse_pointer(str(op.get("path", "")))
            if name == "add":
                result = _add(result, path, value=copy.deepcopy(op["value"]))
            elif name == "remove":
                result, _ = _remove(result, path)
            elif name == "replace":
                resolve(result, path)
                if path:
                    result, _ = _remove(result, path)
                result = _add(result, path, value=copy.deepcopy(op["value"]))
            elif name == "move":
                source = parse_pointer(str(op["from"]))
                if path[: len(source)] == source and path != source:
                    raise PointerError(f"cannot move {op['from']} into its own child {op['path']}")
                result, value = _remove(result, source)
                result = _add(result, path, value=value)
            elif name == "copy":
                value = copy.deepcopy(resolve(result, parse_pointer(str(op["from"]))))
                result = _add(result, path, value=value)
            elif name == "test":
                actual = resolve(result, path)
                if not _equal(actual, op["value"]):
                    # A sensitive field's value never gets here: the overrider checks those itself
                    # (`federation.translate.overrides`), and messages are scrubbed.
                    raise PointerError(f"test failed: {op['path']} is {actual!r}, not {op['value']!r}")
            else:
                raise PointerError(f"unknown op {name!r}")
        except PointerError as exc:
            raise PatchError(str(exc), index=index, op=name) from None
        except KeyError as exc:
            raise PatchError(f"operation is missing {exc.args[0]!r}", index=index, op=name) from None
    return result
