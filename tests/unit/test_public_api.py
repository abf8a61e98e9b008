"""The public API is what the package __init__ files re-export; this pins it."""

from __future__ import annotations

import federation
import federation.api
import federation.devfleet
import federation.errors
import federation.placement
import federation.plan
import federation.store
import federation.translate


def test_top_level_api() -> None:
    assert federation.__all__ == ["FederationError", "__version__"]


def test_devfleet_api() -> None:
    assert sorted(federation.devfleet.__all__) == sorted(
        [
            "HUB",
            "ClusterInfo",
            "ControlPlaneBackend",
            "EmbeddedPostgres",
            "FleetBackend",
            "FleetInfo",
            "KindBackend",
            "LocalFleet",
            "UnsupportedOperationError",
            "default_state_dir",
            "ensure_binary",
            "member_names",
            "read_state",
            "state_dir_busy",
        ]
    )
    for name in federation.devfleet.__all__:
        assert hasattr(federation.devfleet, name), name


def test_store_api() -> None:
    assert sorted(federation.store.__all__) == sorted(
        [
            "CHANGES_CHANNEL",
            "ApplyResult",
            "ChangeRow",
            "Checkpoint",
            "ClaimedWork",
            "ClusterRow",
            "ClusterStatus",
            "ClusterDecision",
            "DesiredWork",
            "EventRow",
            "EventType",
            "IndexedWork",
            "Health",
            "HealthListener",
            "MemberStatusRow",
            "ObjectRef",
            "PlacementChange",
            "PolicyId",
            "PolicyKind",
            "PolicyRow",
            "PolicySummary",
            "ResourceId",
            "ResourceRow",
            "ResourceStatus",
            "ResourceWork",
            "RetryPolicy",
            "Revisions",
            "RolloutCopy",
            "RolloutListing",
            "RolloutRow",
            "SealedRow",
            "Sealer",
            "Store",
            "StoreSettings",
            "StoreStats",
            "StoredEvent",
            "WorkId",
            "WorkState",
            "WorkStatus",
            "give_up_after",
            "head_revision",
            "retrying",
        ]
    )
    for name in federation.store.__all__:
        assert hasattr(federation.store, name), name


def test_every_error_descends_from_federation_error() -> None:
    errors = [
        obj
        for obj in vars(federation.errors).values()
        if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == "federation.errors"
    ]
    assert len(errors) >= 15
    for cls in errors:
        assert issubclass(cls, federation.FederationError), cls
        # The tree is drawn in the module docstring; every class must appear in it.
        assert cls.__name__ in (federation.errors.__doc__ or ""), cls


def test_kube_and_informers_api() -> None:
    import federation.informers
    import federation.kube

    assert sorted(federation.kube.__all__) == sorted(
        [
            "GVK",
            "ConnectionConfig",
            "Discovery",
            "KubeClient",
            "Obj",
            "ResourceInfo",
            "api_error",
            "describe",
            "load_config",
            "object_key",
            "resource_version",
            "split_key",
        ]
    )
    assert sorted(federation.informers.__all__) == sorted(
        [
            "NAMESPACE_INDEX",
            "Backoff",
            "Clock",
            "EventHandler",
            "FakeClock",
            "Handlers",
            "IndexFunc",
            "Informer",
            "InformerFactory",
            "InformerKey",
            "ItemExponentialLimiter",
            "MaxOfLimiter",
            "Priority",
            "QueueShutDown",
            "RateLimiter",
            "RealClock",
            "Reflector",
            "ReflectorSink",
            "Indexer",
            "TokenBucketLimiter",
            "WorkQueue",
            "by_label",
            "by_namespace",
            "default_rate_limiter",
        ]
    )
    for mod in (federation.kube, federation.informers):
        for name in mod.__all__:
            assert hasattr(mod, name), name


def test_api_package() -> None:
    assert sorted(federation.api.__all__) == sorted(
        [
            "API_VERSION",
            "ClusterEntry",
            "ClusterOverridePolicy",
            "ClusterPropagationPolicy",
            "ClusterWeight",
            "Condition",
            "ConditionStatus",
            "ConflictResolution",
            "DeletionPolicy",
            "DynamicWeight",
            "GROUP",
            "ImageComponent",
            "ImageOperator",
            "ImageOverrider",
            "JsonPatchOperation",
            "KINDS",
            "KubeModel",
            "LabelSelector",
            "LabelSelectorRequirement",
            "MemberCluster",
            "MemberClusterSpec",
            "MemberClusterStatus",
            "MetadataOverrider",
            "ObjectMeta",
            "OverridePolicy",
            "OverridePolicyLike",
            "OverrideRule",
            "Overriders",
            "PatchOp",
            "Placement",
            "PolicyLike",
            "PropagationPolicy",
            "ReplicaScheduling",
            "ReplicaSchedulingType",
            "ResourceList",
            "ResourceSelector",
            "SecretKeyRef",
            "SelectorOperator",
            "SpreadConstraint",
            "Taint",
            "TaintEffect",
            "TargetClusters",
            "Toleration",
            "TolerationOperator",
            "TopLevelObject",
            "VERSION",
            "YamlDocument",
            "crd_manifest",
            "is_federation_object",
            "load_clusters_file",
            "object_ref",
            "parse_document",
            "parse_object",
            "parse_quantity",
            "parse_yaml",
            "read_yaml_file",
            "ref_of",
            "render_crds",
        ]
    )
    for name in federation.api.__all__:
        assert hasattr(federation.api, name), name


def test_placement_package() -> None:
    assert sorted(federation.placement.__all__) == sorted(
        [
            "Allocatable",
            "ClusterSnapshot",
            "Decision",
            "OVERRIDDEN_CONDITION",
            "PerReplica",
            "PlacementRequest",
            "Placer",
            "PolicyMatch",
            "Reason",
            "ReasonCode",
            "TRANSIENT",
            "Target",
            "as_reason",
            "decide",
            "divide",
            "match_policies",
            "policy_selects",
            "room",
            "snapshot_from_entry",
            "snapshot_from_member_cluster",
        ]
    )
    for name in federation.placement.__all__:
        assert hasattr(federation.placement, name), name


def test_translate_package() -> None:
    assert sorted(federation.translate.__all__) == sorted(
        [
            "CLUSTER_NAME_VARIABLE",
            "DEFAULT_FIELDS",
            "Change",
            "ChangeKind",
            "DependencyRef",
            "HUB_ONLY_ANNOTATIONS",
            "HUB_ONLY_METADATA",
            "HubId",
            "ImageRef",
            "ImageRefError",
            "OWNERSHIP",
            "Ownership",
            "OwnershipKeys",
            "PatchError",
            "ResolvedOverride",
            "Secrecy",
            "SensitiveField",
            "SensitiveFields",
            "SourceRef",
            "Translated",
            "apply_merge_patch",
            "apply_override",
            "apply_patch",
            "canonical_json",
            "content_hash",
            "dependencies_of",
            "diff",
            "format_policy",
            "format_source",
            "hub_id",
            "keyed_digest",
            "override_image",
            "parse_image",
            "parse_source",
            "prune_template",
            "resolve_overrides",
            "strip_fields",
            "translate",
        ]
    )
    for name in federation.translate.__all__:
        assert hasattr(federation.translate, name), name


def test_plan_package() -> None:
    assert sorted(federation.plan.__all__) == sorted(
        [
            "ClusterRow",
            "PlanInputs",
            "PlanReport",
            "ResourcePlan",
            "build_plan",
            "load_plan_inputs",
            "render_json",
            "render_text",
        ]
    )
    for name in federation.plan.__all__:
        assert hasattr(federation.plan, name), name


def test_server_package() -> None:
    import federation.server

    assert sorted(federation.server.__all__) == sorted(
        [
            "WEBHOOK_NAME",
            "AccessPolicy",
            "ApiError",
            "CertPaths",
            "HubReader",
            "KubeHubReader",
            "Phase",
            "ReadyCheck",
            "ServerConfig",
            "Timeouts",
            "ValidatingWebhook",
            "Verdict",
            "WebhookSettings",
            "add_api_routes",
            "build_app",
            "build_document",
            "build_matrix",
            "generate_certs",
            "parse_query",
            "phase_of",
            "reason_of",
            "resource_path",
            "serve",
            "server_ssl_context",
            "webhook_configuration",
        ]
    )
    for name in federation.server.__all__:
        assert hasattr(federation.server, name), name
