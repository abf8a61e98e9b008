"""The OpenAPI 3.1 document of the dashboard API, generated from the route table and the models.

Nothing here is written by hand twice: every operation's parameters come from the same pydantic
query model (and path patterns) its handler validates with, and every response schema from the
model its handler returns. Pydantic emits JSON Schema 2020-12, which OpenAPI 3.1 uses as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from federation.server.models import (
    CORE_GROUP,
    GROUP_PATTERN,
    KIND_PATTERN,
    MAX_NAME,
    NAME_PATTERN,
    NAMESPACE_PATTERN,
    NO_NAMESPACE,
    Error,
)

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class PathParam:
    name: str
    description: str
    pattern: str
    max_length: int = MAX_NAME

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": self.max_length, "pattern": self.pattern}


GROUP = PathParam("group", f"API group; `{CORE_GROUP}` for the core group (e.g. ConfigMap).", GROUP_PATTERN)
KIND = PathParam("kind", "Kind, e.g. Deployment.", KIND_PATTERN, 63)
NAMESPACE = PathParam(
    "namespace", f"Namespace; `{NO_NAMESPACE}` for a cluster-scoped object.", NAMESPACE_PATTERN, 63
)
NAME = PathParam("name", "Object name.", NAME_PATTERN)
CLUSTER_NAME = PathParam("name", "Member cluster name.", NAME_PATTERN)

#: What a handler gets: the request, its validated query model (or None), its path parameters.
Handler = Callable[[web.Request, Any, Mapping[str, str]], Awaitable[BaseModel | Mapping[str, Any]]]


@dataclass(frozen=True)
class Operation:
    """One GET route of the API: what it takes, what it returns, and the function that serves it."""

    path: str
    operation_id: str
    summary: str
    description: str
    response: type[BaseModel] | None
    handler: Handler
    query: type[BaseModel] | None = None
    path_params: Sequence[PathParam] = ()
    not_found: bool = False
    tags: Sequence[str] = field(default_factory=tuple)


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value, never JSON null: drop the null branch."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(kept) == 1:
            return {**kept[0], **rest}
        return {**rest, "anyOf": kept}
    return schema


def _query_parameters(model: type[BaseModel], schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    params = []
    for name, prop in schema["properties"].items():
        prop = _strip_null(dict(prop))
        description = prop.pop("description", "")
        prop.pop("title", None)
        if prop.get("default") is None:
            prop.pop("default", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": prop,
        }
        if prop.get("type") == "array":
            # health=Degraded,Unknown (repeating the parameter works too).
            param["style"] = "form"
            param["explode"] = False
        params.append(param)
    return params


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def build_document(
    operations: Sequence[Operation], *, bearer: bool, mutual_tls: bool, version: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document; `bearer`/`mutual_tls` say which credentials this server takes."""
    models: list[tuple[type[BaseModel], Any]] = [(Error, "serialization")]
    for op in operations:
        if op.response is not None:
            models.append((op.response, "serialization"))
        if op.query is not None:
            models.append((op.query, "validation"))
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema(unique, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    query_models = {op.query for op in operations if op.query is not None}
    query_schemas = {m: schemas.pop(m.__name__) for m in query_models}

    secured = bearer or mutual_tls
    paths: dict[str, Any] = {}
    for op in operations:
        responses: dict[str, Any] = {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": {"$ref": REF.format(model=op.response.__name__)}
                        if op.response is not None
                        else {"type": "object"}
                    }
                },
            }
        }
        parameters = [
            {
                "name": p.name,
                "in": "path",
                "required": True,
                "description": p.description,
                "schema": p.schema(),
            }
            for p in op.path_params
        ]
        if op.query is not None:
            parameters += _query_parameters(op.query, query_schemas[op.query])
        if parameters:
            responses["400"] = _error("A parameter is invalid; `field` names it.")
        if secured:
            responses["401"] = _error("No valid credentials (bearer token or client certificate).")
        if op.not_found or op.path_params:
            responses["404"] = _error("No such object; the error names it.")
        responses["503"] = _error("The state store (Postgres) cannot be reached right now.")
        paths[op.path] = {
            "get": {
                "operationId": op.operation_id,
                "summary": op.summary,
                "description": op.description,
                "tags": list(op.tags),
                "parameters": parameters,
                "responses": responses,
            }
        }

    components: dict[str, Any] = {"schemas": schemas}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "federation dashboard API",
            "version": version,
            "description": "Read-only view of a federation hub's fleet: clusters, resources, their "
            "per-cluster works, events and the status page's matrix. Field names are the columns of "
            "the store's dashboard views (docs/store.md). Every error is "
            '`{"error": ..., "field": ...}`; every method but GET and HEAD is refused with 405.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": components,
    }
    if secured:
        schemes: dict[str, Any] = {}
        if bearer:
            schemes["bearer"] = {"type": "http", "scheme": "bearer", "description": "--api-token"}
        if mutual_tls:
            schemes["mutualTLS"] = {"type": "mutualTLS", "description": "a client certificate of --client-ca"}
        components["securitySchemes"] = schemes
        # Either credential is enough (a list of alternatives).
        document["security"] = [{name: []} for name in schemes]
    return document
