"""Turn pydantic's validation errors into one line a person can act on.

Pydantic reports locations as tuples mixing field names and list indexes; Kubernetes users
read paths like ``spec.placement.spreadConstraints[0].maxGroups``. We render that form, keep
the first few problems, and say how many more there were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from federation.api.refs import ref_of

_MAX_SHOWN = 3


def field_path(loc: Sequence[int | str]) -> str:
    """``("spec", "rules", 1, "path")`` → ``spec.rules[1].path``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "union")) or part in {
            "json-or-python",
            "lax-or-strict",
        }:
            continue  # pydantic's internal validator names, not fields
        else:
            out += f".{part}" if out else part
    return out or "<root>"


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    if (
        "input" in err
        and kind not in {"model_type", "dict_type"}
        and not isinstance(err["input"], Mapping | list)
    ):
        msg += f" (got {err['input']!r})"
    return msg


def describe_errors(exc: ValidationError, *, prefix: Sequence[int | str] = ()) -> str:
    """The problems of one validation error as ``path: message; path: message (and N more)``."""
    errors = exc.errors(include_url=False)
    # A list whose only item failed also reports "too short" for itself: noise, drop it.
    locs = [tuple(e["loc"]) for e in errors]
    errors = [
        e
        for e in errors
        if not (
            e["type"] == "too_short"
            and any(
                len(other) > len(e["loc"]) and other[: len(e["loc"])] == tuple(e["loc"]) for other in locs
            )
        )
    ]
    parts = [f"{field_path([*prefix, *e['loc']])}: {_message(e)}" for e in errors[:_MAX_SHOWN]]
    more = len(errors) - _MAX_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def describe_validation_error(exc: ValidationError, *, obj: Any, default_kind: str) -> str:
    """``Kind namespace/name: field.path: problem`` for a top-level object."""
    ref = ref_of(obj, default_kind=default_kind) if isinstance(obj, Mapping) else default_kind
    return f"{ref}: {describe_errors(exc)}"
