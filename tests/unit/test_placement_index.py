"""The fleet index: each selector operator, names, taints of every effect, and the property
that the indexed Placer decides exactly as the reference scan (``decide()``) does.

"Exactly" is stricter than `Decision.__eq__` (which compares reasons as words and the excluded
map as an unordered dict): the same targets, the same unschedulable words, code and subject,
and the same excluded clusters in the same order with the same words, codes and subjects,
because the order is the order rows are stored and `federation plan` prints them, and codes are
what the controller decides on.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api import LabelSelector, Placement, Taint, TaintEffect
from federation.placement import ClusterSnapshot, Decision, Placer, Reason, ReasonCode, Target, decide
from federation.placement.filters import Filtered, filter_clusters
from federation.placement.index import FleetIndex, filter_indexed
from tests.unit.placement_strategies import label_selectors, rich_clusters, rich_placements

FLEET = [
    ClusterSnapshot("a", {"region": "eu", "tier": "prod"}),
    ClusterSnapshot("b", {"region": "us", "tier": "staging"}),
    ClusterSnapshot("c", {"region": "eu"}),
    ClusterSnapshot("d", {}),
    ClusterSnapshot("e", {"region": "ap", "gpu": ""}),
]


def selected(selector: dict[str, Any], fleet: list[ClusterSnapshot] = FLEET) -> list[str]:
    index = FleetIndex(sorted(fleet, key=lambda c: c.name))
    return index.names_of(index.selected(LabelSelector.model_validate(selector)))


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "operator": op}
    if values:
        body["values"] = list(values)
    return {"matchExpressions": [body]}


# -- the index itself --------------------------------------------------------------------------


def test_match_labels_and_every_operator() -> None:
    assert selected({"matchLabels": {"region": "eu"}}) == ["a", "c"]
    assert selected({"matchLabels": {"region": "eu", "tier": "prod"}}) == ["a"]
    assert selected(expr("region", "In", "eu", "ap")) == ["a", "c", "e"]
    assert selected(expr("region", "NotIn", "eu")) == ["b", "d", "e"]  # d has no region: NotIn matches
    assert selected(expr("tier", "Exists")) == ["a", "b"]
    assert selected(expr("tier", "DoesNotExist")) == ["c", "d", "e"]
    assert selected({"matchLabels": {"gpu": ""}}) == ["e"]  # an empty value is a value


def test_empty_selector_matches_every_cluster_and_absent_keys_match_nothing_positive() -> None:
    assert selected({}) == ["a", "b", "c", "d", "e"]
    assert selected({"matchLabels": {"absent": "x"}}) == []
    assert selected(expr("absent", "In", "x")) == []
    assert selected(expr("region", "In", "nowhere")) == []
    assert selected(expr("absent", "NotIn", "x")) == ["a", "b", "c", "d", "e"]
    assert selected(expr("absent", "Exists")) == []
    assert selected(expr("absent", "DoesNotExist")) == ["a", "b", "c", "d", "e"]


def test_requirements_intersect() -> None:
    both = {
        "matchLabels": {"region": "eu"},
        "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
    }
    assert selected(both) == ["c"]


def test_an_empty_fleet() -> None:
    index = FleetIndex([])
    assert index.everyone == 0 and index.names_of(index.everyone) == []
    assert index.selected(LabelSelector()) == 0
    assert filter_indexed(Placement(), index) == filter_clusters(Placement(), [])


def test_names_of_keeps_cluster_order_past_a_machine_word() -> None:
    fleet = [ClusterSnapshot(f"c{i:03d}", {"n": str(i % 7)}) for i in range(200)]
    index = FleetIndex(fleet)
    mask = index.selected(LabelSelector.model_validate({"matchLabels": {"n": "3"}}))
    assert index.names_of(mask) == [c.name for c in fleet if c.labels["n"] == "3"]
    assert index.named(["c150", "c003", "nope"]) == (1 << 150) | (1 << 3)


def test_clusters_with_the_same_taints_share_a_group() -> None:
    def taint(key: str, effect: TaintEffect, when: str | None = None) -> Taint:
        return Taint(key=key, value="true", effect=effect, time_added=when)

    fleet = [
        ClusterSnapshot("a", taints=(taint("x", TaintEffect.NO_SCHEDULE, "2026-01-01T00:00:00Z"),)),
        ClusterSnapshot("b", taints=(taint("x", TaintEffect.NO_SCHEDULE, "2026-02-01T00:00:00Z"),)),
        ClusterSnapshot("c", taints=(taint("x", TaintEffect.NO_EXECUTE),)),
        ClusterSnapshot("d"),
    ]
    index = FleetIndex(fleet)
    # timeAdded does not change how a taint is judged or described, so it does not split a group.
    assert sorted(index.names_of(g.members) for g in index.taint_groups) == [["a", "b"], ["c"]]


def test_taints_of_every_effect() -> None:
    def tainted(name: str, *effects: TaintEffect) -> ClusterSnapshot:
        return ClusterSnapshot(
            name, taints=tuple(Taint(key=f"k{i}", effect=e) for i, e in enumerate(effects))
        )

    fleet = [
        tainted("exec", TaintEffect.NO_EXECUTE),
        tainted("sched", TaintEffect.NO_SCHEDULE),
        tainted("prefer", TaintEffect.PREFER_NO_SCHEDULE, TaintEffect.PREFER_NO_SCHEDULE),
        tainted("both", TaintEffect.PREFER_NO_SCHEDULE, TaintEffect.NO_SCHEDULE),
        tainted("worst", TaintEffect.NO_SCHEDULE, TaintEffect.NO_EXECUTE),
        ClusterSnapshot("down", ready=False),
        ClusterSnapshot("down-sched", taints=(Taint(key="k0", effect=TaintEffect.NO_SCHEDULE),), ready=False),
        ClusterSnapshot("plain"),
    ]
    fleet.sort(key=lambda c: c.name)
    f = filter_indexed(Placement(), FleetIndex(fleet))
    assert f == filter_clusters(Placement(), fleet)
    assert list(f.hard) == ["exec", "worst"]
    assert f.hard["worst"].code is ReasonCode.TAINT_NO_EXECUTE and f.hard["worst"].subject == "k1"
    assert {n: r.code for n, r in f.soft.items()} == {
        "both": ReasonCode.TAINT_NO_SCHEDULE,
        "down": ReasonCode.NOT_READY,
        "down-sched": ReasonCode.TAINT_NO_SCHEDULE,  # the taint is reported before readiness
        "sched": ReasonCode.TAINT_NO_SCHEDULE,
    }
    assert f.fresh == ("plain", "prefer")
    assert f.prefer_no_schedule == {"prefer": 2, "both": 1}
    tolerant = Placement.model_validate({"tolerations": [{"operator": "Exists"}]})
    g = filter_indexed(tolerant, FleetIndex(fleet))
    assert g == filter_clusters(tolerant, fleet)
    assert list(g.soft) == ["down", "down-sched"] and g.prefer_no_schedule == {}


# -- the indexed filter equals the scan, field by field ----------------------------------------


def assert_same_reasons(got: Any, want: Any) -> None:
    """Same keys in the same order, same words, codes and subjects."""
    assert list(got) == list(want)
    for name, reason in want.items():
        other = got[name]
        assert isinstance(other, Reason) and isinstance(reason, Reason)
        assert (str(other), other.code, other.subject) == (str(reason), reason.code, reason.subject), name


def assert_same_filtered(got: Filtered, want: Filtered) -> None:
    assert_same_reasons(got.hard, want.hard)
    assert_same_reasons(got.soft, want.soft)
    assert got.fresh == want.fresh
    assert got.weights == want.weights
    if want.weights is not None:
        assert got.weights is not None and list(got.weights) == list(want.weights)
    assert dict(got.prefer_no_schedule) == dict(want.prefer_no_schedule)


@st.composite
def fleet_and_placements(draw: st.DrawFn, *, count: int = 1) -> tuple[list[ClusterSnapshot], list[Placement]]:
    fleet = draw(rich_clusters())
    names = [c.name for c in fleet]
    return fleet, [draw(rich_placements(names=names)) for _ in range(count)]


@given(case=fleet_and_placements())
@settings(max_examples=200)
def test_indexed_filter_is_the_scan(case: tuple[list[ClusterSnapshot], list[Placement]]) -> None:
    fleet, (p,) = case
    assert_same_filtered(filter_indexed(p, FleetIndex(fleet)), filter_clusters(p, fleet))


@given(fleet=rich_clusters(max_size=70), selector=label_selectors())
@settings(max_examples=100)
def test_indexed_selector_is_label_selector_matches(
    fleet: list[ClusterSnapshot], selector: dict[str, Any]
) -> None:
    parsed = LabelSelector.model_validate(selector)
    index = FleetIndex(fleet)
    assert index.names_of(index.selected(parsed)) == [c.name for c in fleet if parsed.matches(c.labels)]


# -- the indexed Placer decides exactly as the reference ---------------------------------------


def assert_same_decision(got: Decision, want: Decision) -> None:
    assert got.targets == want.targets
    if want.unschedulable is None:
        assert got.unschedulable is None
    else:
        assert got.unschedulable is not None
        assert (str(got.unschedulable), got.unschedulable.code, got.unschedulable.subject) == (
            str(want.unschedulable),
            want.unschedulable.code,
            want.unschedulable.subject,
        )
    assert_same_reasons(got.excluded, want.excluded)


replicas = st.none() | st.integers(0, 40)


@given(case=fleet_and_placements(count=4), data=st.data())
@settings(max_examples=120)
def test_indexed_placer_decides_as_the_reference(
    case: tuple[list[ClusterSnapshot], list[Placement]], data: st.DataObject
) -> None:
    """Several specs on one Placer (so its memos, shared between specs, are exercised), each
    first without and then with a previous decision, against a fresh reference every time."""
    fleet, specs = case
    placer = Placer(data.draw(st.permutations(fleet)))
    names = [c.name for c in fleet]
    for p in specs:
        r = data.draw(replicas)
        assert_same_decision(
            placer.decide(placement=p, replicas=r, previous=None),
            decide(placement=p, clusters=fleet, replicas=r, previous=None),
        )
        prev_names = sorted(data.draw(st.lists(st.sampled_from(names), unique=True))) if names else []
        previous = Decision(targets=tuple(Target(n, 1) for n in prev_names))
        assert_same_decision(
            placer.decide(placement=p, replicas=r, previous=previous),
            decide(placement=p, clusters=fleet, replicas=r, previous=previous),
        )
