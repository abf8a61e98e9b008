"""The JSON patch check in linear time: the rule-by-rule walk on one document per distinct
representative template (trials undone, earlier effects forgotten once) gives exactly what
judging every rule on a freshly built document gives; the work it does grows linearly with
rules and selectors (counted in work units, not timed), where judging from scratch grows
quadratically; the meter stops it at its cap and deadline; and a policy above the cap is
admitted with a warning instead of being judged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.api import OverridePolicy, OverridePolicyLike, ResourceSelector, parse_object
from federation.errors import CheckTimedOutError, CheckTooLargeError
from federation.validation.admission import override_findings, parse
from federation.validation.document import Document
from federation.validation.meter import Meter
from federation.validation.partial import Arr, Node, Obj, Scalar, Unknown
from federation.validation.patchcheck import (
    PatchFailure,
    _precedes,
    _selects_kind,
    failing_patches,
    forget_effects,
    patch_check_cost,
)
from federation.validation.shapes import representative

API = "federation.io/v1alpha1"


def policy(
    selectors: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    *,
    kind: str = "OverridePolicy",
    name: str = "o",
    namespace: str = "shop",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if kind == "OverridePolicy":
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": meta,
        "spec": {"resourceSelectors": selectors, "rules": rules},
    }


def from_scratch(
    policy: OverridePolicyLike,
    *,
    others: list[OverridePolicyLike] = (),
    meter: Meter | None = None,  # type: ignore[assignment]
) -> list[PatchFailure]:
    """The check as it was before issue 10: for every rule and every selector, a fresh
    representative template, every earlier policy's and rule's effects forgotten again."""
    failures = []
    namespace = policy.metadata.namespace if isinstance(policy, OverridePolicy) else None
    for rule_index, rule in enumerate(policy.spec.rules):
        if not rule.overriders.json_patch:
            continue
        ops = [op.to_rfc6902() for op in rule.overriders.json_patch]
        for sel_index, selector in enumerate(policy.spec.resource_selectors):
            doc = Document(representative(selector, namespace=namespace or selector.namespace), meter=meter)
            for other in others:
                if _precedes(other, policy) and _selects_kind(other, selector):
                    for other_rule in other.spec.rules:
                        forget_effects(doc, other_rule.overriders)
            for earlier in policy.spec.rules[:rule_index]:
                forget_effects(doc, earlier.overriders)
            failure = next(((i, r) for i, op in enumerate(ops) if (r := doc.apply(op)) is not None), None)
            if failure is not None:
                failures.append(PatchFailure(rule_index, failure[0], sel_index, failure[1]))
                break
    return failures


# -- the walk gives what judging from scratch gives ---------------------------------------------

_SELECTORS = st.sampled_from(
    [
        {"apiVersion": "apps/v1", "kind": "Deployment"},
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        {"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"tier": "web"}}},
        {"apiVersion": "v1", "kind": "ConfigMap"},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "namespace": "shop"},
        {"apiVersion": "example.com/v1", "kind": "Widget"},
    ]
)
_PATHS = st.sampled_from(
    [
        "/spec",
        "/spec/replicas",
        "/spec/a",
        "/spec/a/b",
        "/data",
        "/data/a",
        "/status",
        "/metadata/name",
        "/metadata/labels",
        "/metadata/labels/tier",
        "/metadata/uid",
        "/kind",
        "/spec/template/spec/containers/0",
        "/spec/template/spec/containers/1/image",
        "/spec/template/spec/containers/-",
        "/spec/${CLUSTER_NAME}",
        "/a/0",
    ]
)
_VALUES = st.one_of(
    st.integers(0, 2),
    st.sampled_from(["web", "db", True, None]),
    st.just({}),
    st.just({"a": 1}),
    st.just([1]),
)


@st.composite
def _operation(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]))
    out: dict[str, Any] = {"op": op, "path": draw(_PATHS)}
    if op in ("add", "replace", "test"):
        out["value"] = draw(_VALUES)
    if op in ("move", "copy"):
        out["from"] = draw(_PATHS)
    return out


_OVERRIDERS = st.one_of(
    st.builds(lambda ops: {"jsonPatch": ops}, st.lists(_operation(), min_size=1, max_size=3)),
    st.just({"mergePatch": {"spec": {"replicas": 1}, "data": {"a": "1"}}}),
    st.just({"labels": {"set": {"tier": "db"}}}),
    st.just({"replicas": 2}),
    st.just({"image": [{"component": "tag", "value": "v2", "path": "/spec/a"}]}),
)


@st.composite
def _policy(draw: st.DrawFn, *, kind: str = "OverridePolicy", name: str = "o") -> dict[str, Any]:
    selectors = draw(st.lists(_SELECTORS, min_size=1, max_size=4))
    rules = [{"overriders": o} for o in draw(st.lists(_OVERRIDERS, min_size=1, max_size=5))]
    return policy(selectors, rules, kind=kind, name=name)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_policy(),
    others=st.lists(
        st.tuples(st.sampled_from(["OverridePolicy", "ClusterOverridePolicy"]), st.sampled_from(["a", "z"])),
        max_size=2,
        unique=True,
    ).flatmap(lambda keys: st.tuples(*(_policy(kind=k, name=n) for k, n in keys))),
)
def test_the_walk_refuses_exactly_what_judging_from_scratch_refuses(
    subject: dict[str, Any], others: tuple[dict[str, Any], ...]
) -> None:
    parsed: Any = parse_object(subject)
    earlier: list[Any] = [parse_object(o) for o in others]
    assert failing_patches(parsed, others=earlier) == from_scratch(parsed, others=earlier)


def test_selectors_with_one_representative_are_judged_once_and_the_first_is_named() -> None:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap"}
    rules = [{"overriders": {"jsonPatch": [{"op": "replace", "path": "/spec/replicas", "value": 1}]}}]
    [failure] = failing_patches(parse_object(policy([web, configmap, web, configmap], rules)))  # type: ignore[arg-type]
    assert (failure.rule, failure.operation, failure.selector) == (0, 0, 1)
    one, eight = Meter(), Meter()
    failing_patches(parse_object(policy([web], rules)), meter=one)  # type: ignore[arg-type]
    failing_patches(parse_object(policy([web] * 8, rules)), meter=eight)  # type: ignore[arg-type]
    assert eight.spent == one.spent > 0


# -- the work grows linearly ----------------------------------------------------------------------


def worst(selectors: int, rules: int, ops: int) -> Any:
    """Issue 10's shape: distinct named selectors, rules of operations that all succeed (so no
    rule stops early) on distinct paths (so every rule's effects must be forgotten)."""
    return parse_object(
        policy(
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": f"web-{i}"} for i in range(selectors)],
            [
                {
                    "overriders": {
                        "jsonPatch": [
                            {"op": "add", "path": f"/metadata/annotations/k{r}-{j}", "value": "v"}
                            for j in range(ops)
                        ]
                    }
                }
                for r in range(rules)
            ],
            kind="ClusterOverridePolicy",
        )
    )


def spent(check: Any, subject: Any) -> int:
    meter = Meter()
    check(subject, meter=meter)
    return meter.spent


def test_the_work_grows_linearly_with_rules_and_selectors_where_from_scratch_grew_quadratically() -> None:
    base = spent(failing_patches, worst(2, 20, 16))
    assert 1.9 <= spent(failing_patches, worst(2, 40, 16)) / base <= 2.1
    assert 1.9 <= spent(failing_patches, worst(4, 20, 16)) / base <= 2.1
    # Twice the operations per rule: twice the operations' share (the saves are per rule).
    assert 1.5 <= spent(failing_patches, worst(2, 20, 32)) / base <= 2.0
    # The same counter on the old way of judging shows what was fixed: twice the rules, four
    # times the work.
    old = spent(from_scratch, worst(2, 20, 16))
    assert spent(from_scratch, worst(2, 40, 16)) / old >= 3.5


def test_the_estimate_counts_the_work_before_any_is_done() -> None:
    for shape in ((1, 1, 1), (2, 20, 16), (8, 10, 32)):
        subject = worst(*shape)
        cost = patch_check_cost(subject)
        done = spent(failing_patches, subject)
        # Operations applied and forgotten are the estimate; what the walk adds is saving the
        # nodes each trial changes (a few per rule and template).
        assert cost <= done <= cost + 10 * shape[0] * shape[1], (shape, cost, done)
    s, r, k = 8, 100, 256
    assert patch_check_cost(worst(s, r, 1)) == s * r * 2  # issue 10's review: 8 x 100 x 256 x 2 units
    assert s * r * k * 2 == 409_600


# -- trials leave the document as it was ----------------------------------------------------------


def dump(node: Node) -> Any:
    """A canonical form of a partial document (sets sorted), to compare two of them."""
    if isinstance(node, Obj):
        return {
            "fields": {k: dump(v) for k, v in sorted(node.fields.items())},
            "closed": node.closed,
            "maybe": sorted(node.maybe),
            "absent": sorted(node.absent),
        }
    if isinstance(node, Arr):
        return {"items": [dump(i) for i in node.items], "exact": node.exact}
    if isinstance(node, Scalar):
        return {"scalar": json.dumps(node.value)}
    assert isinstance(node, Unknown)
    return "unknown"


@settings(max_examples=300, deadline=None)
@given(selector=_SELECTORS, ops=st.lists(_operation(), min_size=1, max_size=6))
def test_a_trial_is_undone_whatever_its_ops_did(selector: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    doc = Document(representative(ResourceSelector.model_validate(selector), namespace="shop"))
    doc.forget("/spec/a")  # a document as an earlier rule leaves it
    before = dump(doc.root)
    with doc.trial():
        for op in ops:
            if doc.apply(op) is not None:
                break
    assert dump(doc.root) == before
    # And the ops judge the same afterwards: nothing they attached stays behind.
    with doc.trial():
        first = [doc.apply(op) for op in ops]
    with doc.trial():
        assert [doc.apply(op) for op in ops] == first


# -- the meter and the cap -------------------------------------------------------------------------


def test_the_meter_stops_at_its_limit_and_at_its_deadline() -> None:
    meter = Meter(limit=10)
    meter.spend(10)
    with pytest.raises(CheckTooLargeError):
        meter.spend()
    now = [100.0]
    timed = Meter(deadline=105.0, clock=lambda: now[0])
    timed.spend(2000)  # the clock is read every 512 units: before the deadline, no error
    now[0] = 106.0
    with pytest.raises(CheckTimedOutError):
        timed.spend(600)
    with pytest.raises(CheckTimedOutError):
        timed.check()


def test_a_walk_past_its_deadline_stops() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001  # every look at the clock costs a millisecond of fake time
        return now[0]

    with pytest.raises(CheckTimedOutError):
        failing_patches(worst(2, 50, 64), meter=Meter(deadline=0.005, clock=clock))


def test_above_the_cap_the_patch_check_is_skipped_with_a_warning() -> None:
    bad = {"overriders": {"jsonPatch": [{"op": "remove", "path": "/status"}]}}
    small = parse_object(policy([{"apiVersion": "v1", "kind": "ConfigMap"}], [bad]))
    found = override_findings(small, max_work=100)  # type: ignore[arg-type]
    assert len(found.problems) == 1 and found.warnings == []
    large = worst(8, 10, 32)
    cost = patch_check_cost(large)
    found = override_findings(large, max_work=cost - 1)
    assert found.problems == []
    [warning] = found.warnings
    assert warning.startswith(
        "federation webhook: ClusterOverridePolicy o: the JSON patches were not checked"
    )
    assert f"costs {cost} work units, more than the {cost - 1}" in warning
    assert override_findings(large, max_work=cost).warnings == []


# -- parsing a large policy rule by rule ---------------------------------------------------------


def test_parsing_rule_by_rule_gives_the_whole_object_s_result_and_messages() -> None:
    rule = {"overriders": {"jsonPatch": [{"op": "add", "path": "/spec/x", "value": 1}]}}
    obj = policy([{"apiVersion": "apps/v1", "kind": "Deployment"}], [rule] * 5)
    parsed, problems = parse(obj)
    assert problems == [] and parsed == parse_object(obj)
    for broken in (
        {"overriders": {"jsonPatch": [{"op": "add", "path": "/spec/x"}]}},  # no value
        {"overriders": {}},  # no overrider
        {"overriders": {"jsonPatch": [{"op": "add", "path": "/x", "value": 1}]}, "extra": 1},
    ):
        invalid = policy([{"apiVersion": "apps/v1", "kind": "Deployment"}], [rule, rule, broken, rule])
        parsed, problems = parse(invalid)
        with pytest.raises(Exception) as whole:  # noqa: PT011 - the message is what is compared
            parse_object(invalid)
        assert parsed is None and problems == [str(whole.value)]
        assert "spec.rules[2]" in problems[0], problems
