"""A short, readable list of what differs between two manifests (for ``federation plan``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from federation.translate.pointer import join_pointer


class ChangeKind(StrEnum):
    ADDED = "+"
    REMOVED = "-"
    CHANGED = "~"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str
    before: Any = None
    after: Any = None

    def describe(self, *, width: int = 60) -> str:
        def short(v: Any) -> str:
            text = repr(v) if not isinstance(v, str) else v
            return text if len(text) <= width else text[: width - 1] + "…"

        if self.kind is ChangeKind.ADDED:
            return f"+ {self.path}: {short(self.after)}"
        if self.kind is ChangeKind.REMOVED:
            return f"- {self.path}"
        return f"~ {self.path}: {short(self.before)} → {short(self.after)}"


def diff(before: Any, after: Any, *, _path: tuple[str | int, ...] = ()) -> list[Change]:
    """Leaf-level changes from ``before`` to ``after``, paths as JSON pointers, in key order."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[Change] = []
        for key in sorted(set(before) | set(after), key=str):
            path = (*_path, key)
            if key not in after:
                out.append(Change(ChangeKind.REMOVED, join_pointer(list(path)), before=before[key]))
            elif key not in before:
                out.append(Change(ChangeKind.ADDED, join_pointer(list(path)), after=after[key]))
            else:
                out.extend(diff(before[key], after[key], _path=path))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            c
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for c in diff(b, a, _path=(*_path, i))
        ]
    if before == after and type(before) is type(after):
        return []
    return [Change(ChangeKind.CHANGED, join_pointer(list(_path)), before=before, after=after)]
