"""Parse YAML documents into our models, with errors that give file, line, object and field."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from federation.api.refs import ref_of
from federation.api.validation import describe_errors
from federation.api.yamlsource import YamlDocument
from federation.errors import InvalidObjectError

M = TypeVar("M", bound=BaseModel)


def parse_document(model: type[M], doc: YamlDocument, *, what: str | None = None) -> M:
    """``model`` from ``doc.data``; on failure InvalidObjectError ``file:line: Kind ns/name: field: problem``.

    ``what`` names the object in the message when the document is not a Kubernetes object.
    """
    try:
        return model.__pydantic_validator__.validate_python(doc.data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]["loc"] if exc.errors() else ()
        name = what or (
            ref_of(doc.data, default_kind=model.__name__) if isinstance(doc.data, dict) else model.__name__
        )
        raise InvalidObjectError(f"{doc.where(first)}: {name}: {describe_errors(exc)}") from None
