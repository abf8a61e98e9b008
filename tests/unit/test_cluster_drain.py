"""The drain finalizer's patches: others' finalizers kept, ours added or removed, conditional on
the resourceVersion seen; the force mark."""

from __future__ import annotations

from federation.clusters.drain import (
    DRAIN_FINALIZER,
    FORCE_ANNOTATION,
    finalizer_patch,
    force_patch,
    forced,
    has_finalizer,
)


def member(*finalizers: str, annotations: dict[str, str] | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": "eu", "resourceVersion": "42", "finalizers": list(finalizers)}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "federation.io/v1alpha1", "kind": "MemberCluster", "metadata": meta}


def test_adding_keeps_other_finalizers_and_is_conditional() -> None:
    patch = finalizer_patch(member("example.com/keep"), present=True)
    want = ["example.com/keep", DRAIN_FINALIZER]
    assert patch == {"metadata": {"finalizers": want, "resourceVersion": "42"}}
    # Adding twice does not duplicate it.
    again = finalizer_patch(member(DRAIN_FINALIZER), present=True)
    assert again["metadata"]["finalizers"] == [DRAIN_FINALIZER]


def test_removing_drops_only_ours() -> None:
    patch = finalizer_patch(member(DRAIN_FINALIZER, "example.com/keep"), present=False)
    assert patch["metadata"]["finalizers"] == ["example.com/keep"]
    assert finalizer_patch(member(), present=False)["metadata"]["finalizers"] == []


def test_force_marks_and_releases_in_one_patch() -> None:
    obj = member(DRAIN_FINALIZER)
    assert has_finalizer(obj) and not forced(obj)
    patch = force_patch(obj)
    assert patch["metadata"]["finalizers"] == []
    assert patch["metadata"]["annotations"] == {FORCE_ANNOTATION: "force"}
    assert patch["metadata"]["resourceVersion"] == "42"
    assert forced(member(annotations={FORCE_ANNOTATION: "force"}))
    assert not forced(member(annotations={FORCE_ANNOTATION: "later"}))
    assert not has_finalizer({"metadata": {}})


def test_a_leaving_cluster_says_so_where_admins_look() -> None:
    """The store's cluster row (`clusters list`, the API, the page) and placement both see it."""
    from federation.clusters.registry import ClusterRegistry, Member
    from federation.manager import _cluster_row

    registry = ClusterRegistry()
    staying = Member(name="eu", labels={}, taints=(), source="MemberCluster eu", from_hub=True)
    leaving = Member(name="us", labels={}, taints=(), source="MemberCluster us", from_hub=True)
    leaving.draining = True
    registry._members.update(eu=staying, us=leaving)
    assert [s.name for s in registry.snapshots()] == ["eu"]  # nothing new is placed on it
    assert _cluster_row(leaving, registry).ready_reason.startswith("leaving the fleet: deleting its copies")
    assert not _cluster_row(staying, registry).ready_reason.startswith("leaving")
