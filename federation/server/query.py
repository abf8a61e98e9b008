"""A query string validated against a model: shared by the API's routes and the watch stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, get_args, get_origin

from multidict import MultiMapping
from pydantic import BaseModel, ValidationError

from federation.server.access import ApiError

Q = TypeVar("Q", bound=BaseModel)


def parse_query(model: type[Q], query: MultiMapping[str], *, now: datetime | None = None) -> Q:
    """Validate a query string against `model`; a bad value is a 400 naming its parameter.

    Unknown parameters are ignored (as most HTTP APIs do). An empty text filter or list counts as
    absent, so a form with an empty field filters on nothing (the document allows the empty
    string there); an empty number, enum or time is refused like any other malformed value. A
    list parameter may be repeated or comma-separated (``health=Degraded,Unknown``).
    """
    raw: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        values = query.getall(name, [])
        if _empty_is_absent(info.annotation):
            values = [v for v in values if v != ""]
        if not values:
            continue
        if _is_list(info.annotation):
            raw[name] = [part.strip() for v in values for part in v.split(",") if part.strip()]
        else:
            raw[name] = values[-1]
    try:
        return model.model_validate(raw, context={"now": now or datetime.now(UTC)})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        message = first["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        given = raw.get(field) if field else None
        if isinstance(given, list) and len(first["loc"]) > 1 and isinstance(first["loc"][1], int):
            given = given[first["loc"][1]]
        suffix = f" (got {given!r})" if given is not None and repr(given) not in message else ""
        raise ApiError(400, f"query parameter {field}: {message}{suffix}", field=field) from None


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(_is_list(arg) for arg in get_args(annotation))


def _empty_is_absent(annotation: Any) -> bool:
    """Text filters and lists: what the document lets be empty."""
    if annotation is str or get_origin(annotation) is list:
        return True
    return any(_empty_is_absent(arg) for arg in get_args(annotation) if arg is not type(None))
