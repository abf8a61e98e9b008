"""The read-only JSON API for dashboards: `/api/v1/...`, served from the store's dashboard views.

Routes (the OpenAPI document at ``/api/v1/openapi.json`` is generated from the table below):

    GET /api/v1/clusters                                         every member cluster
    GET /api/v1/clusters/{name}                                  one (404 names it)
    GET /api/v1/resources?group=&kind=&namespace=&health=&limit=&offset=
    GET /api/v1/resources/{group}/{kind}/{namespace}/{name}      one resource across the fleet
    GET /api/v1/resources/{group}/{kind}/{namespace}/{name}/clusters   its per-cluster works
    GET /api/v1/events?cluster=&namespace=&kind=&name=&type=&since=&limit=
    GET /api/v1/rollouts?namespace=&complete=&limit=
    GET /api/v1/watch?since=&kind=&namespace=&cluster=&type=   (a stream: federation.server.watch)
    GET /api/v1/matrix?group=&kind=&namespace=&health=&limit=    resources × clusters for the status page
    GET /api/v1/openapi.json

Only the controller's own process serves it, and every answer is read from Postgres at request
time (no cache to go stale; the views are what Grafana reads too). Query parameters are
validated by the pydantic models of `federation.server.models`, path segments by the patterns
the document declares; a bad one is a 400 naming it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from federation.server.access import ApiError, json_response
from federation.server.matrix import build_matrix, work_model
from federation.server.models import (
    API_PREFIX,
    NO_NAMESPACE,
    PATH_PATTERNS,
    Cluster,
    ClusterList,
    EventList,
    EventQuery,
    Matrix,
    MatrixQuery,
    Resource,
    ResourceFilters,
    ResourceList,
    ResourceQuery,
    RolloutList,
    RolloutQuery,
    WorkList,
    cluster_model,
    event_model,
    group_of_segment,
    namespace_of_segment,
    resource_model,
    rollout_model,
)
from federation.server.openapi import (
    CLUSTER_NAME,
    GROUP,
    KIND,
    NAME,
    NAMESPACE,
    Operation,
    build_document,
)
from federation.server.query import parse_query
from federation.server.watch import WATCH_PATH, add_watch_route, watch_document
from federation.store import ObjectRef, ResourceId, Store

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_path(params: Mapping[str, str]) -> None:
    for name, value in params.items():
        pattern = PATH_PATTERNS.get(name)
        if pattern is not None and (len(value) > 253 or not pattern.match(value)):
            raise ApiError(
                400, f"path parameter {name}: {value!r} does not match {pattern.pattern}", field=name
            )


def _filters(q: ResourceFilters) -> dict[str, Any]:
    return {
        "api_group": None if q.group is None else group_of_segment(q.group),
        "kind": q.kind,
        "namespace": None if q.namespace is None else namespace_of_segment(q.namespace),
        "worst_health": q.health,
    }


class Api:
    """The handlers, over one `Store`; `clock` is injectable for tests."""

    def __init__(self, store: Store, *, clock: Clock = _utcnow) -> None:
        self.store = store
        self.clock = clock

    async def clusters(self, _r: web.Request, _q: None, _p: Mapping[str, str]) -> ClusterList:
        statuses = await self.store.cluster_statuses()
        registry = {c.name: c for c in await self.store.list_clusters()}
        return ClusterList(items=[cluster_model(s, registry.get(s.cluster)) for s in statuses])

    async def cluster(self, _r: web.Request, _q: None, path: Mapping[str, str]) -> Cluster:
        name = path["name"]
        status = await self.store.cluster_status(name)
        if status is None:
            raise ApiError(404, f"no cluster named {name!r} is registered", field="name")
        registry = next((c for c in await self.store.list_clusters() if c.name == name), None)
        return cluster_model(status, registry)

    async def resources(self, _r: web.Request, q: ResourceQuery, _p: Mapping[str, str]) -> ResourceList:
        rows, total = await self.store.resource_status_page(
            **_filters(q), limit=q.limit, offset=q.offset, order="name"
        )
        return ResourceList(
            items=[resource_model(r) for r in rows], total=total, limit=q.limit, offset=q.offset
        )

    async def _resource_id(self, path: Mapping[str, str]) -> tuple[ObjectRef, ResourceId]:
        ref = ObjectRef(
            api_group=group_of_segment(path["group"]),
            kind=path["kind"],
            namespace=namespace_of_segment(path["namespace"]),
            name=path["name"],
        )
        rid = await self.store.resource_id_of(ref)
        if rid is None:
            raise ApiError(404, f"no resource {ref} on this hub", field="name")
        return ref, rid

    async def resource(self, _r: web.Request, _q: None, path: Mapping[str, str]) -> Resource:
        ref, rid = await self._resource_id(path)
        row = await self.store.resource_status(rid)
        if row is None:  # purged between the two reads
            raise ApiError(404, f"no resource {ref} on this hub", field="name")
        return resource_model(row)

    async def resource_clusters(self, _r: web.Request, _q: None, path: Mapping[str, str]) -> WorkList:
        ref, rid = await self._resource_id(path)
        row = await self.store.resource_status(rid)
        if row is None:
            raise ApiError(404, f"no resource {ref} on this hub", field="name")
        works = await self.store.works_of_resource(rid)
        return WorkList(resource=resource_model(row), items=[work_model(w) for w in works])

    async def events(self, _r: web.Request, q: EventQuery, _p: Mapping[str, str]) -> EventList:
        rows = await self.store.list_events(
            cluster=q.cluster,
            namespace=None if q.namespace is None else ("" if q.namespace == NO_NAMESPACE else q.namespace),
            kind=q.kind,
            name=q.name,
            type_=None if q.type is None else q.type.value,
            since=q.since,
            limit=q.limit,
        )
        return EventList(items=[event_model(e) for e in rows])

    async def rollouts(self, _r: web.Request, q: RolloutQuery, _p: Mapping[str, str]) -> RolloutList:
        rows = await self.store.list_rollouts(namespace=q.namespace, complete=q.complete, limit=q.limit)
        return RolloutList(items=[rollout_model(r) for r in rows])

    async def matrix(self, _r: web.Request, q: MatrixQuery, _p: Mapping[str, str]) -> Matrix:
        rows, total = await self.store.resource_status_page(
            **_filters(q), limit=q.limit, offset=0, order="attention"
        )
        works = await self.store.works_of_resources([r.resource_id for r in rows])
        clusters = await self.store.cluster_statuses()
        return build_matrix(
            resources=rows, works=works, clusters=clusters, total=total, limit=q.limit, now=self.clock()
        )


def operations(api: Api, document: Callable[[], Mapping[str, Any]]) -> list[Operation]:
    """The route table: the handlers and the OpenAPI document are both made from it."""
    resource_params = (GROUP, KIND, NAMESPACE, NAME)
    resource_path = API_PREFIX + "/resources/{group}/{kind}/{namespace}/{name}"

    async def openapi(_r: web.Request, _q: None, _p: Mapping[str, str]) -> Mapping[str, Any]:
        return document()

    return [
        Operation(
            API_PREFIX + "/clusters",
            "listClusters",
            "Member clusters",
            "Every registered member cluster: readiness, works by state, drift in the last hour "
            "(`fleet_cluster_status`), plus the registry's taints and allocatable.",
            ClusterList,
            api.clusters,
            tags=("clusters",),
        ),
        Operation(
            API_PREFIX + "/clusters/{name}",
            "getCluster",
            "One member cluster",
            "404 when no cluster of that name is registered.",
            Cluster,
            api.cluster,
            path_params=(CLUSTER_NAME,),
            tags=("clusters",),
        ),
        Operation(
            API_PREFIX + "/resources",
            "listResources",
            "Resources (hub templates) across the fleet",
            "A page of `fleet_resource_status` rows by group, kind, namespace and name; `total` counts "
            "every match.",
            ResourceList,
            api.resources,
            query=ResourceQuery,
            tags=("resources",),
        ),
        Operation(
            resource_path,
            "getResource",
            "One resource across the fleet",
            "`core` is the core group's segment and `_` a cluster-scoped object's namespace.",
            Resource,
            api.resource,
            path_params=resource_params,
            tags=("resources",),
        ),
        Operation(
            resource_path + "/clusters",
            "listResourceClusters",
            "One resource, per member cluster",
            "Its works (`fleet_work_status`): state, health, replicas, last error, timestamps, and the "
            "phase/reason the status page shows.",
            WorkList,
            api.resource_clusters,
            path_params=resource_params,
            tags=("resources",),
        ),
        Operation(
            API_PREFIX + "/events",
            "listEvents",
            "Events, newest first",
            "Applied, DriftCorrected, Conflict, ApplyFailed, Failover, ... with their details.",
            EventList,
            api.events,
            query=EventQuery,
            tags=("events",),
        ),
        Operation(
            API_PREFIX + "/rollouts",
            "listRollouts",
            "Staged rollouts",
            "The templates part-way through a staged rollout (`complete=true`: all under a policy "
            "with `spec.rollout`): phase, stage, why it waits, and per cluster the revision it runs.",
            RolloutList,
            api.rollouts,
            query=RolloutQuery,
            tags=("rollouts",),
        ),
        Operation(
            API_PREFIX + "/matrix",
            "getMatrix",
            "The fleet matrix: resources × clusters",
            "At most `limit` resources, those needing attention first (conflicted or failed works, then "
            "worst health, then the latest change), each with a cell per cluster it is placed on; "
            "`total` counts every match.",
            Matrix,
            api.matrix,
            query=MatrixQuery,
            tags=("matrix",),
        ),
        Operation(
            API_PREFIX + "/openapi.json",
            "getOpenApi",
            "This document",
            "The OpenAPI 3.1 description of this API.",
            None,
            openapi,
            tags=("meta",),
        ),
    ]


def _version() -> str:
    try:
        return importlib.metadata.version("federation")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def add_api_routes(
    app: web.Application, store: Store, *, bearer: bool, mutual_tls: bool, clock: Clock = _utcnow
) -> dict[str, Any]:
    """Mount the API on `app`; returns the OpenAPI document it serves."""
    api = Api(store, clock=clock)
    holder: dict[str, Any] = {}
    ops = operations(api, lambda: holder)
    holder.update(build_document(ops, bearer=bearer, mutual_tls=mutual_tls, version=_version()))
    holder["paths"][WATCH_PATH] = watch_document(holder["paths"])
    encoded = orjson.dumps(holder)

    for op in ops:
        app.router.add_get(op.path, _endpoint(op, api.clock, encoded if op.response is None else None))
    add_watch_route(app, store)
    return holder


def _endpoint(op: Operation, clock: Clock, fixed: bytes | None) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        if fixed is not None:
            return web.Response(body=fixed, content_type="application/json")
        params = dict(request.match_info)
        check_path(params)
        query = parse_query(op.query, request.query, now=clock()) if op.query is not None else None
        result = await op.handler(request, query, params)
        body = result.model_dump() if isinstance(result, BaseModel) else result
        return json_response(body)

    handle.__name__ = op.operation_id
    return handle
