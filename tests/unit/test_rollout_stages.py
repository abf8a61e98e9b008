"""Staged rollouts, the pure step: which clusters get the new revision, and when a stage passes,
waits, halts or rolls back. Scenarios from issue 14, then properties over random histories."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from federation.api.rollout import RolloutStrategy, seconds
from federation.placement.stages import REST, CopyState, Phase, RolloutState, assign, start, step

CLUSTERS = {
    "member-1": {"region": "eu", "canary": "true"},
    "member-2": {"region": "us"},
    "member-3": {"region": "ap"},
}


def strategy(*stages: dict[str, Any], on_failure: str = "Halt") -> RolloutStrategy:
    return RolloutStrategy.model_validate({"stages": list(stages), "onFailure": on_failure})


CANARY_THEN_REST = strategy(
    {"name": "canary", "clusterNames": ["member-1"], "waitAfter": "10s", "deadline": "60s"},
    {"name": "rest", "waitAfter": "0s", "deadline": "60s"},
)


def healthy(since: float) -> CopyState:
    return CopyState(on_new=True, healthy_since=since)


def test_durations() -> None:
    assert seconds("90s") == 90 and seconds("1h30m") == 5400 and seconds("250ms") == 0.25
    with pytest.raises(ValueError, match="not a duration"):
        seconds("10")


def test_the_canary_goes_first_and_the_rest_only_after_its_soak() -> None:
    stages = assign(CANARY_THEN_REST, CLUSTERS)
    assert [(s.name, s.clusters) for s in stages] == [
        ("canary", ("member-1",)),
        ("rest", ("member-2", "member-3")),
    ]
    s = step(CANARY_THEN_REST, start(0.0), stages, {}, now=0.0)
    assert s.released == {"member-1"} and s.phase is Phase.PROGRESSING
    assert "waiting for member-1" in s.reason
    # Applied and Healthy at 3 s: the soak runs 10 s from then; the rest waits.
    copies = {"member-1": healthy(3.0)}
    s = step(CANARY_THEN_REST, s, stages, copies, now=8.0)
    assert s.released == {"member-1"} and "soaking until 00:00:13Z (Healthy for 10s)" in s.reason
    s = step(CANARY_THEN_REST, s, stages, copies, now=13.0)
    assert s.stage == 1 and s.released == {"member-1", "member-2", "member-3"}
    copies |= {"member-2": healthy(14.0), "member-3": healthy(15.0)}
    s = step(CANARY_THEN_REST, s, stages, copies, now=15.0)
    assert s.phase is Phase.COMPLETE and s.reason == "every stage passed"


def test_a_canary_never_healthy_halts_at_its_deadline_and_the_rest_keep_the_previous_revision() -> None:
    stages = assign(CANARY_THEN_REST, CLUSTERS)
    s = step(CANARY_THEN_REST, start(0.0), stages, {}, now=0.0)
    applied_not_ready = {"member-1": CopyState(on_new=True)}
    s = step(CANARY_THEN_REST, s, stages, applied_not_ready, now=59.0)
    assert s.phase is Phase.PROGRESSING
    s = step(CANARY_THEN_REST, s, stages, applied_not_ready, now=61.0)
    assert s.phase is Phase.HALTED and s.failed_stage == "canary"
    assert s.released == {"member-1"}
    assert "member-1 (not Healthy)" in s.reason and "keep the previous revision" in s.reason
    # Final: nothing moves for this revision, whatever happens next.
    assert step(CANARY_THEN_REST, s, stages, {"member-1": healthy(62.0)}, now=100.0) == s


def test_rollback_on_failure_and_a_refused_apply_fails_at_once() -> None:
    rollback = strategy(*(s.to_dict() for s in CANARY_THEN_REST.stages), on_failure="Rollback")
    stages = assign(rollback, CLUSTERS)
    s = step(rollback, start(0.0), stages, {}, now=0.0)
    s = step(
        rollback, s, stages, {"member-1": CopyState(failure="the member refused it: bad image")}, now=1.0
    )
    assert s.phase is Phase.ROLLED_BACK and "member-1: the member refused it" in s.reason
    assert "back on the previous revision" in s.reason


def test_approval_holds_after_the_soak_until_given() -> None:
    gated = strategy(
        {
            "name": "canary",
            "clusterNames": ["member-1"],
            "waitAfter": "5s",
            "approval": True,
            "deadline": "10s",
        },
        {"name": "rest"},
    )
    stages = assign(gated, CLUSTERS)
    copies = {"member-1": healthy(1.0)}
    s = step(gated, start(0.0), stages, copies, now=7.0)
    assert s.phase is Phase.WAITING_APPROVAL and s.released == {"member-1"}
    assert "waiting for approval" in s.reason
    # Waiting for approval is not held against the deadline.
    s = step(gated, s, stages, copies, now=500.0)
    assert s.phase is Phase.WAITING_APPROVAL
    s = step(
        gated, RolloutState(**{**s.__dict__, "approved": frozenset({"canary"})}), stages, copies, now=501.0
    )
    assert s.stage == 1 and s.released == set(CLUSTERS)


def test_max_concurrent_clusters_and_the_implicit_rest() -> None:
    many = {f"c{i:02d}": {"tier": "canary" if i < 2 else "prod"} for i in range(10)}
    waves = strategy(
        {"name": "canary", "clusterSelector": {"matchLabels": {"tier": "canary"}}},
        {"name": "prod-a", "clusterNames": ["c02", "c03", "c04", "c05"], "maxConcurrentClusters": "50%"},
    )
    stages = assign(waves, many)
    assert [s.name for s in stages] == ["canary", "prod-a", REST]
    assert stages[1].concurrency == 2 and stages[2].clusters == ("c06", "c07", "c08", "c09")
    copies = {c: healthy(0.0) for c in ("c00", "c01")}
    s = step(waves, start(0.0), stages, copies, now=1.0)
    assert s.stage == 1 and s.released == {"c00", "c01", "c02", "c03"}
    copies["c02"] = healthy(2.0)  # one done: one more may start
    s = step(waves, s, stages, copies, now=2.0)
    assert s.released == {"c00", "c01", "c02", "c03", "c04"}


def test_a_copy_falling_back_holds_further_releases() -> None:
    one_at_a_time = strategy({"name": "all", "maxConcurrentClusters": 1, "waitAfter": "2s"})
    stages = assign(one_at_a_time, {"c0": {}, "c1": {}, "c2": {}})
    s = step(one_at_a_time, start(0.0), stages, {}, now=0.0)
    assert s.released == {"c0"}
    copies = {"c0": healthy(1.0)}
    s = step(one_at_a_time, s, stages, copies, now=2.0)
    assert s.released == {"c0", "c1"}  # c0 settled: the next may start
    copies["c0"] = CopyState(on_new=True)  # c0 falls back: c1 and c0 are both updating now
    s = step(one_at_a_time, s, stages, copies, now=3.0)
    assert s.released == {"c0", "c1"}, "nothing more starts while two are unsettled"
    assert "waiting for c0, c1" in s.reason


def test_a_cluster_joining_mid_rollout_gets_its_stages_revision() -> None:
    stages = assign(CANARY_THEN_REST, CLUSTERS)
    s = step(CANARY_THEN_REST, start(0.0), stages, {"member-1": healthy(0.0)}, now=20.0)
    assert s.stage == 1
    grown = assign(CANARY_THEN_REST, {**CLUSTERS, "member-4": {"canary": "true"}})
    s2 = step(CANARY_THEN_REST, s, grown, {"member-1": healthy(0.0)}, now=21.0)
    assert "member-4" in s2.released  # in the rest stage, which is under way
    early = step(CANARY_THEN_REST, start(0.0), assign(CANARY_THEN_REST, {**CLUSTERS}), {}, now=0.0)
    assert "member-4" not in early.released and "member-2" not in early.released


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"name": "a"}, {"name": "b", "clusterNames": ["x"]}], "only the last stage may"),
        ([{"name": "a", "clusterNames": ["x"]}, {"name": "a"}], "a name of its own"),
        ([{"name": "a", "clusterNames": ["x"], "clusterSelector": {}}], "or neither"),
        ([{"name": "a", "maxConcurrentClusters": 0}], "at least 1"),
        ([{"name": "a", "maxConcurrentClusters": "0%"}], "from 1% to 100%"),
        ([{"name": "a", "waitAfter": "10"}], "String should match pattern"),
    ],
)
def test_invalid_strategies_are_refused_with_the_reason(stages: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutStrategy.model_validate({"stages": stages})


# -- properties -----------------------------------------------------------------------------------

names = st.sampled_from([f"c{i}" for i in range(8)])
cluster_sets = st.dictionaries(
    names, st.fixed_dictionaries({"tier": st.sampled_from(["a", "b", "c"])}), min_size=1
)
strategies = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]), st.one_of(st.none(), st.integers(1, 3), st.sampled_from(["50%", "100%"]))
    ),
    min_size=1,
    max_size=3,
).map(
    lambda specs: strategy(
        *[
            {
                "name": f"s{i}",
                "clusterSelector": {"matchLabels": {"tier": tier}},
                "waitAfter": "2s",
                "deadline": "30s",
                **({"maxConcurrentClusters": limit} if limit is not None else {}),
            }
            for i, (tier, limit) in enumerate(specs)
        ]
    )
)
events = st.lists(st.tuples(names, st.sampled_from(["apply", "healthy", "unhealthy"])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(strategies, cluster_sets, events)
def test_released_only_grows_never_reaches_past_the_current_stage_and_respects_concurrency(
    strat: RolloutStrategy, clusters: dict[str, dict[str, str]], history: list[tuple[str, str]]
) -> None:
    stages = assign(strat, clusters)
    assert sorted(c for s in stages for c in s.clusters) == sorted(clusters)  # each cluster once
    state, copies, now = start(0.0), dict[str, CopyState](), 0.0
    for cluster, what in history:
        now += 1.0
        before = state
        state = step(strat, state, stages, copies, now)
        assert before.released <= state.released
        later = {c for s in stages[state.stage + 1 :] for c in s.clusters}
        assert not (state.released & later), (state, later)
        if state.stage < len(stages) and not state.phase.final:
            # A step that releases clusters of the current stage leaves no more of them updating
            # than its concurrency (a settled copy falling back later counts as updating again,
            # and holds further releases, but was not released beyond the limit).
            current = stages[state.stage]
            fresh = (state.released - before.released) & set(current.clusters)
            updating = [c for c in current.clusters if c in state.released and not _settled(copies.get(c))]
            if fresh:
                assert len(updating) <= current.concurrency, (fresh, updating)
        if cluster in state.released:
            old = copies.get(cluster, CopyState())
            if what == "apply":
                copies[cluster] = CopyState(on_new=True, healthy_since=old.healthy_since)
            elif what == "healthy" and old.on_new and old.healthy_since is None:
                copies[cluster] = CopyState(on_new=True, healthy_since=now)
            elif what == "unhealthy":
                copies[cluster] = CopyState(on_new=old.on_new)


@settings(max_examples=200, deadline=None)
@given(strategies, cluster_sets)
def test_every_copy_healthy_completes_and_a_restart_step_is_the_same(
    strat: RolloutStrategy, clusters: dict[str, dict[str, str]]
) -> None:
    stages = assign(strat, clusters)
    state, copies, now = start(0.0), dict[str, CopyState](), 0.0
    for _ in range(200):
        now += 1.0
        state = step(strat, state, stages, copies, now)
        assert step(strat, state, stages, copies, now) == state  # a restart re-steps: no change
        if state.phase is Phase.COMPLETE:
            break
        for c in state.released:  # every released copy applies and turns Healthy at once
            copies.setdefault(c, CopyState(on_new=True, healthy_since=now))
    assert state.phase is Phase.COMPLETE and state.released == set(clusters)


def _settled(copy: CopyState | None) -> bool:
    return copy is not None and copy.on_new and copy.healthy_since is not None


def test_the_schema_is_structural_with_an_int_or_string_concurrency() -> None:
    from federation.api.crdgen import _structural

    raw = RolloutStrategy.model_json_schema(by_alias=True, mode="validation")
    stage = _structural(raw, raw.get("$defs", {}))["properties"]["stages"]["items"]
    concurrency = stage["properties"]["maxConcurrentClusters"]
    assert concurrency["x-kubernetes-int-or-string"] is True
    assert "type" not in concurrency and "x-kubernetes-preserve-unknown-fields" not in concurrency
    rules = [v["rule"] for v in stage["x-kubernetes-validations"]]
    # The count is checked by the apiserver; a percentage's pattern would cost past its CEL
    # budget (seen on a real apiserver: 3.1x), so the controller checks that one.
    assert any("maxConcurrentClusters >= 1" in r for r in rules)
    assert not any("matches(" in r for r in rules)
