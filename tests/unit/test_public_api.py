"""The public API is what the package __init__ files re-export; this pins it."""

from __future__ import annotations

import federation
import federation.devfleet
import federation.errors


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
            "QueueShutDown",
            "RateLimiter",
            "RealClock",
            "Reflector",
            "ReflectorSink",
            "Store",
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
