"""The public API is what the package __init__ files re-export; this pins it."""

from __future__ import annotations

import federation
import federation.devfleet
import federation.errors
import federation.store


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
            "Checkpoint",
            "ClaimedWork",
            "ClusterRow",
            "ClusterStatus",
            "Decision",
            "DesiredWork",
            "EventRow",
            "EventType",
            "Health",
            "HealthListener",
            "MemberStatusRow",
            "ObjectRef",
            "PlacementChange",
            "PolicyId",
            "PolicyKind",
            "PolicyRow",
            "ResourceId",
            "ResourceRow",
            "ResourceStatus",
            "ResourceWork",
            "RetryPolicy",
            "Revisions",
            "Store",
            "StoreSettings",
            "StoreStats",
            "WorkId",
            "WorkState",
            "WorkStatus",
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
