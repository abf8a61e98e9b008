"""Which policy governs a resource: precedence, namespaces, and reasons for the losers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api import ClusterPropagationPolicy, PolicyLike, PropagationPolicy
from federation.placement import match_policies, policy_selects

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
}
CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "viewer"},
}


def policy(
    name: str,
    *,
    namespace: str | None = "shop",
    priority: int = 0,
    created: str | None = None,
    selector: dict[str, Any] | None = None,
) -> PolicyLike:
    meta: dict[str, Any] = {"name": name}
    if created:
        meta["creationTimestamp"] = created
    spec = {
        "priority": priority,
        "resourceSelectors": [selector or {"apiVersion": "apps/v1", "kind": "Deployment"}],
    }
    if namespace is None:
        return ClusterPropagationPolicy.model_validate(
            {"kind": "ClusterPropagationPolicy", "metadata": meta, "spec": spec}
        )
    meta["namespace"] = namespace
    return PropagationPolicy.model_validate({"kind": "PropagationPolicy", "metadata": meta, "spec": spec})


def test_higher_priority_wins_and_losers_say_why() -> None:
    low, high = policy("a", priority=1), policy("b", priority=5)
    match = match_policies(DEPLOYMENT, [low, high])
    assert match.winner is high
    assert match.losers == ((low, "overridden by PropagationPolicy shop/b: priority 1 < 5"),)


def test_ties_go_to_the_older_policy_then_the_name() -> None:
    old = policy("z", created="2024-01-01T00:00:00Z")
    new = policy("a", created="2025-01-01T00:00:00Z")
    match = match_policies(DEPLOYMENT, [new, old])
    assert match.winner is old
    assert "it is older" in match.losers[0][1]
    b, a = policy("b"), policy("a")
    match = match_policies(DEPLOYMENT, [b, a])
    assert match.winner is a
    assert "its name sorts first" in match.losers[0][1]


def test_namespaced_policies_select_only_their_namespace() -> None:
    other = policy("p", namespace="other")
    assert not policy_selects(other, DEPLOYMENT)
    assert policy_selects(policy("p"), DEPLOYMENT)
    # A cluster-scoped resource is only for ClusterPropagationPolicies.
    any_kind = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}
    assert not policy_selects(policy("p", selector=any_kind), CLUSTER_ROLE)
    assert policy_selects(policy("c", namespace=None, selector=any_kind), CLUSTER_ROLE)
    assert policy_selects(policy("c", namespace=None), DEPLOYMENT)


def test_selector_fields_must_all_match() -> None:
    by_labels = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    assert policy_selects(policy("p", selector=by_labels), DEPLOYMENT)
    assert not policy_selects(policy("p", selector={**by_labels, "name": "api"}), DEPLOYMENT)
    assert not policy_selects(
        policy("p", selector={"apiVersion": "apps/v1beta1", "kind": "Deployment"}), DEPLOYMENT
    )
    assert not policy_selects(
        policy(
            "c", namespace=None, selector={"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "x"}
        ),
        DEPLOYMENT,
    )


def test_no_policy_selects() -> None:
    match = match_policies(DEPLOYMENT, [policy("p", namespace="other")])
    assert match.winner is None and match.losers == ()


policies = st.lists(
    st.builds(
        policy,
        name=st.sampled_from(["a", "b", "c", "d"]),
        namespace=st.sampled_from(["shop", None]),
        priority=st.integers(-2, 2),
        created=st.sampled_from([None, "2024-01-01T00:00:00Z", "2025-06-01T12:00:00Z"]),
    ),
    max_size=6,
)


@settings(deadline=None)
@given(ps=policies, data=st.data())
def test_precedence_does_not_depend_on_listing_order(ps: list[PolicyLike], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(ps))
    a, b = match_policies(DEPLOYMENT, ps), match_policies(DEPLOYMENT, shuffled)
    if a.winner is None:
        assert b.winner is None
        return
    assert b.winner is not None
    assert (
        a.winner.kind,
        a.winner.metadata.name,
        a.winner.spec.priority,
        a.winner.metadata.creation_timestamp,
    ) == (
        b.winner.kind,
        b.winner.metadata.name,
        b.winner.spec.priority,
        b.winner.metadata.creation_timestamp,
    )
    assert a.winner.spec.priority == max(p.spec.priority for p in ps)
    assert len(a.losers) == len(ps) - 1
