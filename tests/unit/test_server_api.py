"""The dashboard API's pure parts: query parsing, path checks, phases and reasons, the matrix,
the OpenAPI document (validated with openapi-spec-validator), and the access policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from multidict import MultiDict
from openapi_spec_validator import validate

from federation.errors import ConfigError
from federation.server import (
    AccessPolicy,
    ApiError,
    Phase,
    ServerConfig,
    add_api_routes,
    build_matrix,
    parse_query,
    phase_of,
    reason_of,
    resource_path,
)
from federation.server.api import check_path
from federation.server.models import EventQuery, MatrixQuery, ResourceQuery
from federation.store import (
    ClusterStatus,
    EventType,
    Health,
    ObjectRef,
    ResourceId,
    ResourceStatus,
    WorkId,
    WorkState,
    WorkStatus,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def q(**params: str | list[str]) -> MultiDict[str]:
    out: MultiDict[str] = MultiDict()
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            out.add(key, v)
    return out


# -- query parameters ----------------------------------------------------------------------------


def test_defaults_and_filters() -> None:
    assert parse_query(ResourceQuery, q()) == ResourceQuery(limit=100, offset=0)
    got = parse_query(
        ResourceQuery, q(kind="Deployment", namespace="_", group="core", limit="5", offset="10")
    )
    assert (got.kind, got.namespace, got.group, got.limit, got.offset) == ("Deployment", "_", "core", 5, 10)
    assert parse_query(MatrixQuery, q()).limit == 50


def test_health_is_one_value_a_comma_list_or_repeated() -> None:
    assert parse_query(ResourceQuery, q(health="Degraded")).health == [Health.DEGRADED]
    both = [Health.DEGRADED, Health.UNKNOWN]
    assert parse_query(ResourceQuery, q(health="Degraded, Unknown")).health == both
    assert parse_query(ResourceQuery, q(health=["Degraded", "Unknown"])).health == both
    assert parse_query(ResourceQuery, q(health="")).health is None


def test_empty_text_filters_are_absent_but_empty_numbers_are_not() -> None:
    got = parse_query(ResourceQuery, q(kind="", namespace=""))
    assert (got.kind, got.namespace) == (None, None)
    with pytest.raises(ApiError) as info:
        parse_query(ResourceQuery, q(limit=""))
    assert (info.value.status, info.value.field) == (400, "limit")
    with pytest.raises(ApiError) as info:
        parse_query(EventQuery, q(since=""))
    assert info.value.field == "since"


@pytest.mark.parametrize(
    ("model", "params", "field", "words"),
    [
        (ResourceQuery, {"health": "Sick"}, "health", "'Healthy', 'Progressing', 'Unknown' or 'Degraded'"),
        (ResourceQuery, {"health": "Healthy,Sick"}, "health", "Sick"),
        (ResourceQuery, {"limit": "abc"}, "limit", "expected an integer, not 'abc'"),
        (ResourceQuery, {"limit": "2.0"}, "limit", "expected an integer"),
        (ResourceQuery, {"limit": "+2"}, "limit", "expected an integer"),
        (ResourceQuery, {"limit": "1_000"}, "limit", "expected an integer"),
        (ResourceQuery, {"limit": "0"}, "limit", "greater than or equal to 1"),
        (ResourceQuery, {"limit": "1001"}, "limit", "less than or equal to 1000"),
        (ResourceQuery, {"offset": "-1"}, "offset", "greater than or equal to 0"),
        (ResourceQuery, {"kind": "a\x00b"}, "kind", "pattern"),
        (ResourceQuery, {"namespace": "x" * 300}, "namespace", "at most 253"),
        (MatrixQuery, {"limit": "501"}, "limit", "less than or equal to 500"),
        (EventQuery, {"type": "Boom"}, "type", "Boom"),
        (EventQuery, {"since": "yesterday"}, "since", "RFC 3339"),
        (EventQuery, {"since": "2026-01-01T00:00:00"}, "since", "UTC offset"),
        (EventQuery, {"since": "10w"}, "since", "duration"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(
    model: type[Any], params: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(ApiError) as info:
        parse_query(model, q(**params), now=NOW)
    assert info.value.status == 400
    assert info.value.field == field
    assert info.value.message.startswith(f"query parameter {field}: ")
    assert words in info.value.message, info.value.message


def test_since_takes_a_time_or_a_duration_back_from_now() -> None:
    def since(value: str) -> datetime | None:
        return parse_query(EventQuery, q(since=value), now=NOW).since

    assert since("90s") == NOW - timedelta(seconds=90)
    assert since("15m") == NOW - timedelta(minutes=15)
    assert since("2h") == NOW - timedelta(hours=2)
    assert since("7d") == NOW - timedelta(days=7)
    assert since("2026-02-01T10:00:00Z") == datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert since("2026-02-01T10:00:00+02:00") == datetime(2026, 2, 1, 8, tzinfo=UTC)
    # Beyond what a datetime holds: clamped (the document allows any date-time), never a 500.
    assert since("999999d") == datetime.min.replace(tzinfo=UTC)
    assert since("0001-01-01T00:00:00+23:59") == datetime.min.replace(tzinfo=UTC)
    assert since("9999-12-31T23:59:59-23:59") == datetime.max.replace(tzinfo=UTC)


def test_event_type_and_unknown_parameters() -> None:
    got = parse_query(EventQuery, q(type="DriftCorrected", whatever="x", limit="3"))
    assert (got.type, got.limit) == (EventType.DRIFT_CORRECTED, 3)


def test_path_segments_follow_the_documented_patterns() -> None:
    check_path({"group": "core", "kind": "Deployment", "namespace": "_", "name": "web.v2:x"})
    check_path({"group": "apps", "kind": "ConfigMap", "namespace": "team-a", "name": "a"})
    check_path({"group": "llm.example.com", "kind": "LLMGatewayConfig", "namespace": "ns", "name": "g"})
    for params, field in [
        ({"group": "Apps"}, "group"),
        ({"kind": "Deploy-ment"}, "kind"),
        ({"namespace": "Team"}, "namespace"),
        ({"name": ".."}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "a%b"}, "name"),
        ({"name": "x" * 254}, "name"),
    ]:
        with pytest.raises(ApiError) as info:
            check_path(params)
        assert (info.value.status, info.value.field) == (400, field)


def test_resource_paths_spell_core_and_cluster_scope() -> None:
    assert (
        resource_path(ObjectRef("apps", "Deployment", "ns", "web"))
        == "/api/v1/resources/apps/Deployment/ns/web"
    )
    assert resource_path(ObjectRef("", "ConfigMap", "ns", "c")) == "/api/v1/resources/core/ConfigMap/ns/c"
    assert resource_path(ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "system:x")) == (
        "/api/v1/resources/rbac.authorization.k8s.io/ClusterRole/_/system%3Ax"
    )


# -- phases, reasons, the matrix -----------------------------------------------------------------


def work(cluster: str = "member-1", state: WorkState = WorkState.APPLIED, **kw: Any) -> WorkStatus:
    base = WorkStatus(
        work_id=WorkId(1),
        resource_id=ResourceId(1),
        ref=ObjectRef("apps", "Deployment", "ns", "web"),
        api_version="apps/v1",
        cluster=cluster,
        state=state,
        desired_here=state not in (WorkState.DELETING, WorkState.ORPHANING, WorkState.ORPHANED),
        health=Health.HEALTHY,
        health_reason=None,  # rows written before member_status had it
        in_sync=state == WorkState.APPLIED,
        replicas_desired=3,
        replicas_ready=3,
        replicas_available=3,
        replicas_updated=3,
        observed_generation=1,
        desired_hash="h1",
        applied_hash="h1",
        member_resource_version="10",
        last_error=None,
        attempts=0,
        next_attempt_at=None,
        claimed_by=None,
        claimed_until=None,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        applied_at=NOW,
        status_collected_at=NOW,
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("w", "phase", "reason"),
    [
        (work(), Phase.HEALTHY, "applied, Healthy; 3/3 replicas ready"),
        (
            work(health=Health.PROGRESSING, replicas_ready=1),
            Phase.PROGRESSING,
            "applied, Progressing; 1/3 replicas ready",
        ),
        (
            work(health=Health.DEGRADED, replicas_ready=0),
            Phase.DEGRADED,
            "applied, Degraded; 0/3 replicas ready",
        ),
        (
            work(health=Health.UNKNOWN, status_collected_at=None),
            Phase.UNKNOWN,
            "applied; no status collected from the member yet",
        ),
        (work(replicas_desired=None, replicas_ready=None), Phase.HEALTHY, "applied, Healthy"),
        (
            # The member's health interpreter's words win over the replica count.
            work(health=Health.DEGRADED, health_reason="not Ready: ImagePullBackOff", replicas_ready=0),
            Phase.DEGRADED,
            "applied, Degraded; not Ready: ImagePullBackOff",
        ),
        (
            work(state=WorkState.CONFLICT, last_error="ConfigMap ns/x exists, not created by this hub"),
            Phase.CONFLICT,
            "conflict: ConfigMap ns/x exists, not created by this hub",
        ),
        (
            work(state=WorkState.FAILED, last_error="422: selector does not match"),
            Phase.FAILED,
            "apply failed: 422: selector does not match",
        ),
        (
            work(state=WorkState.FAILED, last_error="timeout", next_attempt_at=NOW),
            Phase.FAILED,
            "apply failed: timeout, will retry",
        ),
        (work(state=WorkState.PENDING), Phase.PENDING, "waiting to be applied"),
        (
            work(state=WorkState.PENDING, attempts=2, last_error="unreachable"),
            Phase.PENDING,
            "waiting to be applied (attempt 3; last error: unreachable)",
        ),
        (work(state=WorkState.DELETING), Phase.DELETING, "no longer placed here: deleting the member copy"),
        (work(state=WorkState.ORPHANING), Phase.ORPHANING, "no longer placed here: releasing"),
        (work(state=WorkState.ORPHANED), Phase.ORPHANED, "released: the member copy stays"),
        (work(in_sync=False), Phase.HEALTHY, "a newer version is waiting to be applied"),
    ],
)
def test_phase_and_reason(w: WorkStatus, phase: Phase, reason: str) -> None:
    assert phase_of(w) == phase
    assert reason in reason_of(w)


def test_every_state_and_health_has_a_phase() -> None:
    for state in WorkState:
        for health in Health:
            assert isinstance(phase_of(work(state=state, health=health)), Phase)


def resource(rid: int, name: str, *, worst: Health | None = Health.HEALTHY) -> ResourceStatus:
    return ResourceStatus(
        resource_id=ResourceId(rid),
        ref=ObjectRef("apps", "Deployment", "ns", name),
        api_version="apps/v1",
        uid=f"uid-{rid}",
        generation=1,
        deleted_at=None,
        placement_revision=1,
        unschedulable=None,
        clusters_desired=2,
        clusters_applied=2,
        clusters_healthy=2,
        clusters_conflicted=0,
        clusters_failed=0,
        clusters_removing=0,
        replicas_desired=6,
        replicas_ready=6,
        replicas_available=6,
        replicas_updated=6,
        worst_health=worst,
        last_change=NOW,
    )


def cluster(name: str, *, ready: bool = True) -> ClusterStatus:
    return ClusterStatus(
        cluster=name,
        ready=ready,
        ready_reason="" if ready else "probe timed out",
        last_probe_at=NOW,
        kubernetes_version="v1.36.3",
        endpoint=None,
        labels={},
        lease_holder=None,
        lease_expires_at=None,
        works_total=0,
        works_pending=0,
        works_applied=0,
        works_conflict=0,
        works_failed=0,
        works_deleting=0,
        works_orphaning=0,
        works_orphaned=0,
        works_due=0,
        drift_events_last_hour=0,
        updated_at=NOW,
    )


def test_the_matrix_keeps_row_order_and_shows_unregistered_clusters_last() -> None:
    resources = [resource(2, "bad", worst=Health.DEGRADED), resource(1, "web")]
    works = [
        work("member-1", resource_id=ResourceId(1)),
        work("member-2", WorkState.CONFLICT, resource_id=ResourceId(1), last_error="exists"),
        work("member-2", resource_id=ResourceId(2), health=Health.DEGRADED, replicas_ready=0),
        work("gone-cluster", WorkState.DELETING, resource_id=ResourceId(2)),
        work("member-1", resource_id=ResourceId(99)),  # not a shown resource: ignored
    ]
    clusters = [cluster("member-2", ready=False), cluster("member-1")]
    m = build_matrix(resources=resources, works=works, clusters=clusters, total=7, limit=2, now=NOW)
    assert [(c.name, c.ready, c.registered) for c in m.clusters] == [
        ("member-1", True, True),
        ("member-2", False, True),
        ("gone-cluster", False, False),
    ]
    assert [r.name for r in m.resources] == ["bad", "web"]
    assert {c: cell.phase for c, cell in m.resources[0].cells.items()} == {
        "member-2": Phase.DEGRADED,
        "gone-cluster": Phase.DELETING,
    }
    assert {c: cell.phase for c, cell in m.resources[1].cells.items()} == {
        "member-1": Phase.HEALTHY,
        "member-2": Phase.CONFLICT,
    }
    assert m.resources[1].cells["member-2"].reason == "conflict: exists"
    assert m.resources[1].path == "/api/v1/resources/apps/Deployment/ns/web"
    assert (m.total, m.limit, m.generated_at) == (7, 2, NOW)
    # It serializes to what the document says (no extra fields, enums as their values).
    dumped = m.model_dump(mode="json")
    assert dumped["resources"][0]["cells"]["member-2"]["phase"] == "degraded"


def test_an_empty_fleet_is_an_empty_matrix() -> None:
    m = build_matrix(resources=[], works=[], clusters=[], total=0, limit=50, now=NOW)
    assert (m.clusters, m.resources, m.total) == ([], [], 0)


# -- the document --------------------------------------------------------------------------------


def document(*, bearer: bool = False, mutual_tls: bool = False) -> dict[str, Any]:
    app = web.Application()
    return add_api_routes(app, None, bearer=bearer, mutual_tls=mutual_tls)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bearer", "mutual_tls"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_the_openapi_document_is_valid(bearer: bool, mutual_tls: bool) -> None:
    doc = document(bearer=bearer, mutual_tls=mutual_tls)
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1 and JSON Schema 2020-12
    assert doc["openapi"] == "3.1.0"
    secured = bearer or mutual_tls
    for path, item in doc["paths"].items():
        responses = item["get"]["responses"]
        assert ("401" in responses) is secured, path
        assert "503" in responses and "200" in responses
    if not secured:
        assert "security" not in doc


def test_the_document_describes_every_route_and_parameter() -> None:
    doc = document()
    assert sorted(doc["paths"]) == [
        "/api/v1/clusters",
        "/api/v1/clusters/{name}",
        "/api/v1/events",
        "/api/v1/matrix",
        "/api/v1/openapi.json",
        "/api/v1/resources",
        "/api/v1/resources/{group}/{kind}/{namespace}/{name}",
        "/api/v1/resources/{group}/{kind}/{namespace}/{name}/clusters",
        "/api/v1/rollouts",
        "/api/v1/watch",
    ]

    def params(path: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}

    assert sorted(params("/api/v1/resources")) == ["group", "health", "kind", "limit", "namespace", "offset"]
    assert sorted(params("/api/v1/rollouts")) == ["complete", "limit", "namespace"]
    assert sorted(params("/api/v1/watch")) == ["cluster", "kind", "namespace", "since", "type"]
    assert sorted(params("/api/v1/events")) == [
        "cluster",
        "kind",
        "limit",
        "name",
        "namespace",
        "since",
        "type",
    ]
    assert sorted(params("/api/v1/matrix")) == ["group", "health", "kind", "limit", "namespace"]
    health = params("/api/v1/resources")["health"]
    assert (health["style"], health["explode"]) == ("form", False)
    assert health["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Health"}}
    assert params("/api/v1/resources")["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 100,
    }
    detail = params("/api/v1/resources/{group}/{kind}/{namespace}/{name}")
    assert all(p["in"] == "path" and p["required"] for p in detail.values())
    assert "404" in doc["paths"]["/api/v1/clusters/{name}"]["get"]["responses"]
    assert "400" in doc["paths"]["/api/v1/resources"]["get"]["responses"]


def test_response_schemas_are_the_models() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["Health"]["enum"] == [h.value for h in Health]
    assert schemas["WorkState"]["enum"] == [s.value for s in WorkState]
    assert schemas["Phase"]["enum"] == [p.value for p in Phase]
    # Every column of the views is there, by its SQL name (docs/store.md).
    assert {"clusters_conflicted", "worst_health", "last_change", "path"} <= set(
        schemas["Resource"]["properties"]
    )
    assert {"works_due", "drift_events_last_hour", "taints"} <= set(schemas["Cluster"]["properties"])
    assert {"phase", "reason", "last_error", "applied_at"} <= set(schemas["Work"]["properties"])
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["Matrix"]["additionalProperties"] is False


# -- access --------------------------------------------------------------------------------------


def test_what_the_access_policy_guards() -> None:
    open_policy = AccessPolicy()
    assert not open_policy.guards("/api/v1/clusters")
    token = AccessPolicy(token="t")
    assert token.guards("/api/v1/clusters") and token.guards("/api") and token.guards("/api/v1/openapi.json")
    for path in ("/healthz", "/readyz", "/", "/static/app.js", "/metrics", "/apis"):
        assert not token.guards(path), path
    assert AccessPolicy(token="t", protect_metrics=True).guards("/metrics")
    assert AccessPolicy(client_certificates=True).guards("/api/v1/events")


def test_server_config_pairs_its_tls_flags(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        ServerConfig(tls_key=tmp_path / "k")
    with pytest.raises(ConfigError, match="--client-ca needs TLS"):
        ServerConfig(client_ca=tmp_path / "ca")
    assert ServerConfig(api_token="").access() == AccessPolicy()
    assert ServerConfig(api_token="t", protect_metrics=True).access() == AccessPolicy(
        token="t", protect_metrics=True
    )
