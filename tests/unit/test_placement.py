"""The placement engine: filters and their reasons, taint and readiness semantics, spread,
maxClusters, replica division, and the stability properties the controller relies on."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api import Placement, Taint, TaintEffect
from federation.errors import ConfigError
from federation.placement import (
    Allocatable,
    ClusterSnapshot,
    Decision,
    PlacementRequest,
    Placer,
    Target,
    decide,
)
from tests.unit.placement_strategies import clusters, placements


def placement(**spec: Any) -> Placement:
    return Placement.model_validate(spec)


def cluster(name: str, region: str = "eu", **kw: Any) -> ClusterSnapshot:
    return ClusterSnapshot(name=name, labels={"region": region, **kw.pop("labels", {})}, **kw)


def taint(key: str, effect: TaintEffect, value: str = "true") -> Taint:
    return Taint(key=key, value=value, effect=effect)


FLEET = [
    cluster("eu-1"),
    cluster("eu-2", taints=(taint("maintenance", TaintEffect.NO_SCHEDULE),)),
    cluster("us-1", "us"),
    cluster("ap-1", "ap", ready=False),
]


def targets(d: Decision) -> dict[str, int | None]:
    return {t.cluster: t.replicas for t in d.targets}


# -- filters and reasons -----------------------------------------------------------------------


def test_every_cluster_left_out_has_a_reason() -> None:
    p = placement(clusterSelector={"matchLabels": {"region": "eu"}}, excludeClusters=["eu-1"])
    d = decide(placement=p, clusters=[*FLEET, cluster("eu-3")], replicas=2, previous=None)
    assert targets(d) == {"eu-3": 2}
    assert dict(d.excluded) == {
        "eu-1": "listed in excludeClusters",
        "eu-2": "excluded by taint maintenance=true:NoSchedule",
        "us-1": "not matched by clusterSelector region=eu",
        "ap-1": "not matched by clusterSelector region=eu",
    }


def test_cluster_names_and_not_ready() -> None:
    d = decide(
        placement=placement(clusterNames=["eu-1", "ap-1"]),
        clusters=FLEET,
        replicas=None,
        previous=None,
    )
    assert targets(d) == {"eu-1": None}
    assert d.excluded["ap-1"] == "not ready"
    assert d.excluded["us-1"] == "not in clusterNames"


def test_empty_fleet_and_nothing_matching_are_unschedulable() -> None:
    assert (
        decide(placement=placement(), clusters=[], replicas=1, previous=None).unschedulable
        == "no cluster passed the filters"
    )
    d = decide(
        placement=placement(clusterNames=["nope"]),
        clusters=FLEET,
        replicas=1,
        previous=None,
    )
    assert d.targets == ()
    assert d.unschedulable == "no cluster passed the filters"
    assert set(d.excluded) == {c.name for c in FLEET}


def test_duplicate_cluster_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        Placer([cluster("a"), cluster("a")])


def test_negative_replicas_are_refused() -> None:
    with pytest.raises(ConfigError, match="negative"):
        decide(placement=placement(), clusters=FLEET, replicas=-1, previous=None)


# -- taints, tolerations and readiness -----------------------------------------------------------


def test_no_schedule_blocks_new_placement_but_keeps_existing() -> None:
    fresh = decide(placement=placement(), clusters=FLEET, replicas=1, previous=None)
    assert "eu-2" not in targets(fresh)
    previous = Decision(targets=(Target("eu-1", 1), Target("eu-2", 1)))
    kept = decide(placement=placement(), clusters=FLEET, replicas=1, previous=previous)
    assert targets(kept) == {"eu-1": 1, "eu-2": 1, "us-1": 1}
    assert "eu-2" not in kept.excluded


def test_no_execute_evicts_existing_placements_unless_tolerated() -> None:
    fleet = [cluster("eu-1"), cluster("eu-2", taints=(taint("broken", TaintEffect.NO_EXECUTE),))]
    previous = Decision(targets=(Target("eu-1", 1), Target("eu-2", 1)))
    d = decide(placement=placement(), clusters=fleet, replicas=1, previous=previous)
    assert targets(d) == {"eu-1": 1}
    assert d.excluded["eu-2"] == "excluded by taint broken=true:NoExecute"
    tolerant = placement(tolerations=[{"key": "broken", "operator": "Exists", "effect": "NoExecute"}])
    assert targets(decide(placement=tolerant, clusters=fleet, replicas=1, previous=previous)) == {
        "eu-1": 1,
        "eu-2": 1,
    }


def test_toleration_semantics() -> None:
    fleet = [cluster("a", taints=(taint("k", TaintEffect.NO_SCHEDULE, "v"),))]
    cases = [
        ({"key": "k", "value": "v"}, True),  # Equal, any effect
        ({"key": "k", "value": "w"}, False),
        ({"key": "k", "operator": "Exists"}, True),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),  # empty key + Exists tolerates everything
        ({"key": "other", "operator": "Exists"}, False),
    ]
    for toleration, tolerated in cases:
        d = decide(
            placement=placement(tolerations=[toleration]), clusters=fleet, replicas=None, previous=None
        )
        assert (d.targets != ()) is tolerated, toleration


def test_not_ready_is_kept_where_already_placed() -> None:
    previous = Decision(targets=(Target("ap-1", 2),))
    d = decide(placement=placement(), clusters=FLEET, replicas=2, previous=previous)
    assert targets(d) == {"ap-1": 2, "eu-1": 2, "us-1": 2}
    fresh = decide(placement=placement(), clusters=FLEET, replicas=2, previous=None)
    assert fresh.excluded["ap-1"] == "not ready"


def test_prefer_no_schedule_lowers_the_score() -> None:
    fleet = [cluster("a", taints=(taint("spot", TaintEffect.PREFER_NO_SCHEDULE),)), cluster("b")]
    d = decide(placement=placement(maxClusters=1), clusters=fleet, replicas=1, previous=None)
    assert targets(d) == {"b": 1}
    assert d.excluded["a"] == "dropped by maxClusters=1 (score 0.50 < 1.00)"


# -- picking: maxClusters and spread -------------------------------------------------------------


def roomy_fleet() -> list[ClusterSnapshot]:
    return [
        cluster("eu-1", allocatable=Allocatable(cpu_millicores=8000)),
        cluster("eu-2", allocatable=Allocatable(cpu_millicores=4000)),
        cluster("us-1", "us", allocatable=Allocatable(cpu_millicores=2000)),
        cluster("us-2", "us", allocatable=Allocatable(cpu_millicores=1000)),
        cluster("ap-1", "ap", allocatable=Allocatable(cpu_millicores=500)),
    ]


def test_max_clusters_prefers_free_capacity_then_keeps_existing() -> None:
    p = placement(maxClusters=2)
    d = decide(placement=p, clusters=roomy_fleet(), replicas=3, previous=None)
    assert targets(d) == {"eu-1": 3, "eu-2": 3}
    assert d.excluded["us-1"] == "dropped by maxClusters=2 (score 0.25 < 0.50)"
    previous = Decision(targets=(Target("us-2", 3), Target("eu-1", 3)))
    stable = decide(placement=p, clusters=roomy_fleet(), replicas=3, previous=previous)
    assert targets(stable) == {"eu-1": 3, "us-2": 3}
    assert "kept first" in stable.excluded["eu-2"]


def test_spread_min_groups_with_max_clusters() -> None:
    p = placement(maxClusters=3, spreadConstraints=[{"topologyKey": "region", "minGroups": 3}])
    d = decide(placement=p, clusters=roomy_fleet(), replicas=1, previous=None)
    assert set(targets(d)) == {"eu-1", "us-1", "ap-1"}


def test_spread_max_groups_drops_whole_groups_with_a_reason() -> None:
    p = placement(spreadConstraints=[{"topologyKey": "region", "maxGroups": 2}])
    d = decide(placement=p, clusters=roomy_fleet(), replicas=1, previous=None)
    assert set(targets(d)) == {"eu-1", "eu-2", "us-1", "us-2"}
    assert (
        d.excluded["ap-1"]
        == "dropped by spreadConstraints[0] (region maxGroups=2): group region=ap not chosen"
    )


def test_spread_unsatisfiable_and_missing_label() -> None:
    fleet = [*roomy_fleet(), ClusterSnapshot("bare")]
    p = placement(spreadConstraints=[{"topologyKey": "region", "minGroups": 4}])
    d = decide(placement=p, clusters=fleet, replicas=1, previous=None)
    assert d.targets == ()
    assert d.unschedulable == (
        "spreadConstraints[0] needs at least 4 groups of label region, "
        "but the eligible clusters span 3 (ap, eu, us)"
    )
    assert d.excluded["bare"] == "has no label region (spreadConstraints[0].topologyKey)"
    assert d.excluded["eu-1"].startswith("unschedulable: ")


# -- replica division ----------------------------------------------------------------------------


def test_divided_static_weights_two_to_one() -> None:
    p = placement(
        replicaScheduling={
            "type": "Divided",
            "weights": [
                {"clusterSelector": {"matchLabels": {"region": "eu"}}, "weight": 2},
                {"clusterNames": ["us-1"], "weight": 1},
            ],
        }
    )
    d = decide(placement=p, clusters=FLEET, replicas=6, previous=None)
    assert targets(d) == {"eu-1": 4, "us-1": 2}
    assert d.excluded["ap-1"] == "matched by no replicaScheduling.weights entry"


def test_a_cluster_matched_by_several_weights_takes_the_highest() -> None:
    p = placement(
        replicaScheduling={
            "type": "Divided",
            "weights": [
                {"clusterSelector": {"matchLabels": {"region": "eu"}}, "weight": 1},
                {"clusterNames": ["eu-1"], "weight": 3},
            ],
        }
    )
    fleet = [cluster("eu-1"), cluster("eu-3")]
    assert targets(decide(placement=p, clusters=fleet, replicas=8, previous=None)) == {"eu-1": 6, "eu-3": 2}


def test_names_selector_and_exclusions_must_all_hold() -> None:
    p = placement(
        clusterNames=["eu-1", "eu-3", "us-1"],
        clusterSelector={"matchLabels": {"region": "eu"}},
        excludeClusters=["eu-3"],
    )
    d = decide(
        placement=p,
        clusters=[cluster("eu-1"), cluster("eu-3"), cluster("us-1", "us")],
        replicas=1,
        previous=None,
    )
    assert targets(d) == {"eu-1": 1}
    assert dict(d.excluded) == {
        "eu-3": "listed in excludeClusters",
        "us-1": "not matched by clusterSelector region=eu",
    }


def test_divided_zero_shares_are_explained_and_scale_to_zero_keeps_targets() -> None:
    p = placement(replicaScheduling={"type": "Divided"})
    d = decide(placement=p, clusters=roomy_fleet(), replicas=2, previous=None)
    assert targets(d) == {"ap-1": 1, "eu-1": 1}
    assert d.excluded["us-2"] == "Divided share is 0 of 2 replicas (weight 1 of 5)"
    zero = decide(placement=p, clusters=roomy_fleet(), replicas=0, previous=None)
    assert targets(zero) == dict.fromkeys(["ap-1", "eu-1", "eu-2", "us-1", "us-2"], 0)


def test_divided_dynamic_by_available_replicas() -> None:
    fleet = [
        cluster("a", available_replicas=30),
        cluster("b", available_replicas=10),
        cluster("c", available_replicas=None),
    ]
    p = placement(replicaScheduling={"type": "Divided", "dynamic": "AvailableReplicas"})
    d = decide(placement=p, clusters=fleet, replicas=8, previous=None)
    assert targets(d) == {"a": 6, "b": 2}
    assert "weight 0 of 40" in d.excluded["c"]
    empty = decide(placement=p, clusters=[cluster("c")], replicas=8, previous=None)
    assert empty.unschedulable is not None and "room for a replica" in empty.unschedulable


def test_non_workloads_get_no_replicas() -> None:
    d = decide(
        placement=placement(replicaScheduling={"type": "Divided"}),
        clusters=FLEET,
        replicas=None,
        previous=None,
    )
    assert targets(d) == {"eu-1": None, "us-1": None}


# -- the Placer's memo ---------------------------------------------------------------------------


def test_placer_returns_the_same_decision_object_for_the_same_question() -> None:
    placer = Placer(roomy_fleet())
    p = placement(maxClusters=2)
    first = placer.decide(placement=p, replicas=3, previous=None)
    again = placer.decide(placement=Placement.model_validate(p.to_dict()), replicas=3, previous=None)
    assert again is first
    many = placer.decide_many(p, [PlacementRequest(3), PlacementRequest(3, first), PlacementRequest(4)])
    assert many[0] is first
    # With a previous decision the memo key differs (the current placements rank first), so the
    # answer is a new, equal object; asking again returns that one.
    assert many[1] == first
    assert placer.decide(placement=p, replicas=3, previous=first) is many[1]
    assert targets(many[2]) == {"eu-1": 4, "eu-2": 4}


# -- properties ----------------------------------------------------------------------------------

replicas = st.none() | st.integers(0, 40)


@given(fleet=clusters(), p=placements(), r=replicas)
@settings(max_examples=150, deadline=None)
def test_every_cluster_is_a_target_or_excluded_with_a_reason(
    fleet: list[ClusterSnapshot], p: Placement, r: int | None
) -> None:
    d = decide(placement=p, clusters=fleet, replicas=r, previous=None)
    names = [t.cluster for t in d.targets]
    assert names == sorted(names)
    assert set(names).isdisjoint(d.excluded)
    assert set(names) | set(d.excluded) == {c.name for c in fleet}
    assert all(reason for reason in d.excluded.values())
    assert (d.unschedulable is None) == bool(d.targets)


@given(fleet=clusters(), p=placements(), r=st.integers(0, 40))
@settings(max_examples=150, deadline=None)
def test_replicas_add_up(fleet: list[ClusterSnapshot], p: Placement, r: int) -> None:
    d = decide(placement=p, clusters=fleet, replicas=r, previous=None)
    if d.unschedulable:
        return
    if p.scheduling.type.value == "Duplicated":
        assert all(t.replicas == r for t in d.targets)
    else:
        assert sum(t.replicas or 0 for t in d.targets) == r
    if p.max_clusters is not None:
        assert len(d.targets) <= p.max_clusters


@given(fleet=clusters(), p=placements(), r=replicas, data=st.data())
@settings(max_examples=100, deadline=None)
def test_input_order_never_matters(
    fleet: list[ClusterSnapshot], p: Placement, r: int | None, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(fleet))
    prev_names = data.draw(st.lists(st.sampled_from([c.name for c in fleet]), unique=True)) if fleet else []
    previous = Decision(targets=tuple(Target(n, 1) for n in prev_names))
    assert decide(placement=p, clusters=fleet, replicas=r, previous=previous) == decide(
        placement=p, clusters=shuffled, replicas=r, previous=previous
    )


@given(fleet=clusters(), p=placements(), r=replicas)
@settings(max_examples=100, deadline=None)
def test_an_unrelated_cluster_changes_nothing(
    fleet: list[ClusterSnapshot], p: Placement, r: int | None
) -> None:
    before = decide(placement=p, clusters=fleet, replicas=r, previous=None)
    evicted = ClusterSnapshot(
        "zz-unrelated", {"region": "eu"}, taints=(taint("evict", TaintEffect.NO_EXECUTE),)
    )
    after = decide(placement=p, clusters=[*fleet, evicted], replicas=r, previous=None)
    assert after.targets == before.targets
    assert after.unschedulable == before.unschedulable
    assert {k: v for k, v in after.excluded.items() if k != "zz-unrelated"} == dict(before.excluded)


@given(fleet=clusters(), p=placements(), r=replicas, data=st.data())
@settings(max_examples=100, deadline=None)
def test_cached_and_uncached_paths_agree(
    fleet: list[ClusterSnapshot], p: Placement, r: int | None, data: st.DataObject
) -> None:
    placer = Placer(fleet)
    first = placer.decide(placement=p, replicas=r, previous=None)
    assert first == decide(placement=p, clusters=fleet, replicas=r, previous=None)
    prev_names = data.draw(st.lists(st.sampled_from([c.name for c in fleet]), unique=True)) if fleet else []
    previous = Decision(targets=tuple(Target(n, 1) for n in prev_names))
    assert placer.decide(placement=p, replicas=r, previous=previous) == decide(
        placement=p, clusters=fleet, replicas=r, previous=previous
    )


@given(fleet=clusters(), p=placements(), r=replicas)
@settings(max_examples=100, deadline=None)
def test_a_decision_is_a_fixed_point(fleet: list[ClusterSnapshot], p: Placement, r: int | None) -> None:
    first = decide(placement=p, clusters=fleet, replicas=r, previous=None)
    again = decide(placement=p, clusters=fleet, replicas=r, previous=first)
    # Same clusters and replicas; a reason may now say "kept first" instead of "tie".
    assert again.targets == first.targets
    assert again.unschedulable == first.unschedulable
    assert set(again.excluded) == set(first.excluded)


@given(fleet=clusters(min_size=2), r=st.integers(0, 60), data=st.data())
@settings(max_examples=100, deadline=None)
def test_removing_a_cluster_moves_only_its_share(
    fleet: list[ClusterSnapshot], r: int, data: st.DataObject
) -> None:
    p = Placement.model_validate(
        {
            "tolerations": [{"operator": "Exists"}],
            "replicaScheduling": {
                "type": "Divided",
                "weights": [
                    {"clusterSelector": {"matchLabels": {"region": region}}, "weight": w}
                    for region, w in (("eu", 3), ("us", 2), ("ap", 1))
                ],
            },
        }
    )
    before = decide(placement=p, clusters=fleet, replicas=r, previous=None)
    if not before.targets:
        return
    gone = data.draw(st.sampled_from([t.cluster for t in before.targets]))
    after = decide(placement=p, clusters=[c for c in fleet if c.name != gone], replicas=r, previous=before)
    if not after.targets:
        return
    old = targets(before)
    for t in after.targets:
        assert (t.replicas or 0) >= (old.get(t.cluster) or 0), (gone, before, after)


@given(fleet=clusters(min_size=1), lo=st.integers(1, 3), hi=st.integers(1, 3), r=replicas)
@settings(max_examples=100, deadline=None)
def test_spread_constraints_hold(fleet: list[ClusterSnapshot], lo: int, hi: int, r: int | None) -> None:
    if hi < lo:
        lo, hi = hi, lo
    p = placement(
        tolerations=[{"operator": "Exists"}],
        spreadConstraints=[{"topologyKey": "region", "minGroups": lo, "maxGroups": hi}],
    )
    d = decide(placement=p, clusters=fleet, replicas=r, previous=None)
    groups = {c.labels["region"] for c in fleet if c.ready}
    if len(groups) < lo:
        assert d.unschedulable is not None and "needs at least" in d.unschedulable
        return
    chosen_groups = {c.labels["region"] for c in fleet if c.name in targets(d)}
    assert lo <= len(chosen_groups) <= hi


def _reference_tolerates(tol: dict[str, Any], t: Taint) -> bool:
    """The Kubernetes rule, written independently of federation.api.taints."""
    if tol.get("effect") and tol["effect"] != t.effect.value:
        return False
    if tol.get("operator", "Equal") == "Exists":
        return not tol.get("key") or tol["key"] == t.key
    return tol.get("key") == t.key and tol.get("value", "") == t.value


tolerations = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"key": st.sampled_from(["maintenance", "spot"]), "value": st.sampled_from(["", "true"])},
            optional={"effect": st.sampled_from([e.value for e in TaintEffect])},
        ),
        st.fixed_dictionaries(
            {"operator": st.just("Exists")},
            optional={
                "key": st.sampled_from(["maintenance", "gpu-only"]),
                "effect": st.sampled_from([e.value for e in TaintEffect]),
            },
        ),
    ),
    max_size=3,
)


@given(fleet=clusters(), tols=tolerations, data=st.data())
@settings(max_examples=150, deadline=None)
def test_taint_effects_follow_kubernetes(
    fleet: list[ClusterSnapshot], tols: list[dict[str, Any]], data: st.DataObject
) -> None:
    p = placement(tolerations=tols)
    prev_names = data.draw(st.lists(st.sampled_from([c.name for c in fleet]), unique=True)) if fleet else []
    previous = Decision(targets=tuple(Target(n, None) for n in sorted(prev_names)))
    d = decide(placement=p, clusters=fleet, replicas=None, previous=previous)
    chosen = targets(d)
    for c in fleet:
        effects = {t.effect for t in c.taints if not any(_reference_tolerates(tol, t) for tol in tols)}
        if TaintEffect.NO_EXECUTE in effects:
            assert c.name not in chosen, c  # evicted even where already placed
            assert "NoExecute" in d.excluded[c.name]
        elif TaintEffect.NO_SCHEDULE in effects or not c.ready:
            assert (c.name in chosen) is (c.name in prev_names), c  # only kept, never added
        else:
            assert c.name in chosen, c  # PreferNoSchedule alone never excludes without maxClusters


def test_snapshot_from_member_cluster() -> None:
    from federation.api import MemberCluster
    from federation.errors import InvalidObjectError
    from federation.placement import snapshot_from_member_cluster

    mc = MemberCluster.model_validate(
        {
            "kind": "MemberCluster",
            "metadata": {"name": "eu-1", "labels": {"region": "eu"}},
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "allocatable": {"cpu": "7500m", "memory": "2Gi", "pods": "110"},
                "availableReplicas": 12,
            },
        }
    )
    snap = snapshot_from_member_cluster(mc)
    assert snap.ready and snap.labels == {"region": "eu"} and snap.available_replicas == 12
    assert snap.allocatable == Allocatable(cpu_millicores=7500, memory_bytes=2 * 2**30, pods=110)
    assert snap.taints[0].key == "a"
    broken = MemberCluster.model_validate({**mc.to_dict(), "status": {"allocatable": {"cpu": "lots"}}})
    with pytest.raises(InvalidObjectError, match=r"MemberCluster eu-1: status\.allocatable: 'lots' is not"):
        snapshot_from_member_cluster(broken)


def test_every_exclusion_carries_a_code_and_keeps_its_words() -> None:
    """Code decides on `.code`; the words (stored, shown) are the same as ever."""
    from federation.placement import Reason, ReasonCode

    d = decide(
        placement=placement(clusterNames=["eu-1", "ap-1"]),
        clusters=FLEET,
        replicas=None,
        previous=None,
    )
    assert all(isinstance(r, Reason) for r in d.excluded.values())
    assert d.excluded["us-1"].code is ReasonCode.NOT_IN_CLUSTER_NAMES
    assert d.excluded["us-1"] == "not in clusterNames"
    nothing = decide(
        placement=placement(clusterNames=["nowhere"]), clusters=FLEET, replicas=None, previous=None
    )
    assert nothing.unschedulable is not None and nothing.unschedulable.code is ReasonCode.NO_CLUSTER
