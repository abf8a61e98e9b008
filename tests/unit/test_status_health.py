"""Per-kind health and aggregation of member statuses (pure)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.status import Health, aggregate_status, assess, merge_conditions, worst
from federation.status.bounds import (
    INT32_MAX,
    LIST_LIMIT,
    STATUS_LIMIT,
    TEXT_LIMIT,
    TRUNCATED,
    bounded_status,
    cut,
)


def deployment(spec_replicas: int = 3, generation: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": generation},
        "spec": {"replicas": spec_replicas},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "health", "reason"),
    [
        ({}, Health.PROGRESSING, "no status"),
        ({"observedGeneration": 1}, Health.PROGRESSING, "generation 2 not yet observed"),
        (
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3},
            Health.PROGRESSING,
            "1/3 replicas updated",
        ),
        (
            {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3},
            Health.PROGRESSING,
            "old replicas pending",
        ),
        (
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2},
            Health.PROGRESSING,
            "2/3 replicas available",
        ),
        (
            {
                "observedGeneration": 2,
                "replicas": 3,
                "updatedReplicas": 3,
                "availableReplicas": 3,
                "readyReplicas": 3,
            },
            Health.HEALTHY,
            "3/3",
        ),
        (
            {
                "observedGeneration": 2,
                "conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ],
            },
            Health.DEGRADED,
            "rollout stuck",
        ),
    ],
)
def test_deployment_health(status: dict[str, Any], health: Health, reason: str) -> None:
    a = assess(deployment(**status))
    assert a.health == health
    assert reason in a.reason


def test_other_kinds() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    assert assess(job).health == Health.HEALTHY
    failed = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }
    assert assess(failed).health == Health.DEGRADED and "BackoffLimitExceeded" in assess(failed).reason
    assert assess({"apiVersion": "v1", "kind": "ConfigMap", "data": {}}).health == Health.HEALTHY
    lb = {"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}}
    assert assess(lb).health == Health.PROGRESSING
    assert (
        assess({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}).health
        == Health.HEALTHY
    )
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": 2,
            "currentRevision": "a",
            "updateRevision": "a",
        },
    }
    assert assess(sts).health == Health.HEALTHY
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "status": {"desiredNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3},
    }
    assert assess(ds).health == Health.PROGRESSING


@pytest.mark.parametrize(
    ("conditions", "health"),
    [
        ([{"type": "Ready", "status": "True"}], Health.HEALTHY),
        ([{"type": "Ready", "status": "False", "message": "backend down"}], Health.DEGRADED),
        ([{"type": "Available", "status": "Unknown"}], Health.PROGRESSING),
        ([{"type": "Synced", "status": "True"}], Health.UNKNOWN),
    ],
)
def test_generic_custom_resource(conditions: list[dict[str, str]], health: Health) -> None:
    cr = {"apiVersion": "ai.example.com/v1", "kind": "LLMGatewayConfig", "status": {"conditions": conditions}}
    assert assess(cr).health == health


def test_worst_health_orders_degraded_first() -> None:
    assert worst([Health.HEALTHY, Health.PROGRESSING]) == Health.PROGRESSING
    assert worst([Health.UNKNOWN, Health.DEGRADED, Health.HEALTHY]) == Health.DEGRADED
    assert worst([]) == Health.UNKNOWN


def test_deployment_aggregate_sums_counters_and_names_lagging_clusters() -> None:
    template = deployment(spec_replicas=6, generation=5)
    members = {
        "member-1": deployment(
            spec_replicas=4,
            observedGeneration=2,
            **{"replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4},
        ),
        "member-2": deployment(
            spec_replicas=2,
            observedGeneration=2,
            **{
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "unavailableReplicas": 1,
            },
        ),
    }
    status = aggregate_status(template, members, placed=["member-1", "member-2", "member-3"], now="T")
    assert status is not None
    assert status["replicas"] == 6 and status["readyReplicas"] == 5 and status["availableReplicas"] == 5
    assert status["unavailableReplicas"] == 1 and status["observedGeneration"] == 5
    available = next(c for c in status["conditions"] if c["type"] == "Available")
    assert available["status"] == "False"
    assert "1/3 clusters available" in available["message"]
    assert (
        "member-3: not applied yet" in available["message"]
        and "member-2: 1/2 replicas available" in available["message"]
    )


@given(
    st.lists(
        st.tuples(st.integers(0, INT32_MAX), st.integers(0, INT32_MAX), st.integers(0, INT32_MAX)),
        min_size=1,
        max_size=8,
    )
)
def test_aggregate_keeps_the_apiservers_invariants(counts: list[tuple[int, int, int]]) -> None:
    """If each member has ready <= replicas and available <= ready, so does the sum."""
    members = {}
    for i, (a, b, c) in enumerate(counts):
        replicas, ready, available = sorted((a, b, c), reverse=True)
        members[f"m{i}"] = deployment(
            spec_replicas=replicas,
            **{
                "replicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": available,
                "updatedReplicas": replicas,
            },
        )
    status = aggregate_status(deployment(), members, placed=list(members), now="T")
    assert status is not None
    assert status["availableReplicas"] <= status["readyReplicas"] <= status["replicas"] <= INT32_MAX
    assert status["updatedReplicas"] <= status["replicas"]
    assert status["replicas"] == min(INT32_MAX, sum(max(c) for c in counts))


def test_member_values_cannot_overflow_or_break_the_hub_status() -> None:
    """Issue 10, finding 5: two members at 2147483647 replicas made the int32 sum overflow and
    every hub status write fail, forever. Sums are clamped; values of the wrong type count as 0."""
    huge = {"replicas": INT32_MAX, "readyReplicas": INT32_MAX, "availableReplicas": INT32_MAX}
    members = {
        "m1": deployment(**huge, observedGeneration=2),
        "m2": deployment(**huge, observedGeneration=2),
        "m3": deployment(replicas="7", readyReplicas=True, availableReplicas=-5, updatedReplicas=2.5),
        "m4": {**deployment(), "status": "not an object"},
    }
    status = aggregate_status(deployment(), members, placed=list(members), now="T")
    assert status is not None
    assert status["replicas"] == status["readyReplicas"] == status["availableReplicas"] == INT32_MAX
    assert status["updatedReplicas"] == 0


def test_member_text_is_cut_before_it_reaches_the_hub() -> None:
    long_reason = "x" * 100_000
    members = {
        "m1": deployment(
            observedGeneration=2,
            conditions=[{"type": "Progressing", "status": "False", "reason": "R", "message": long_reason}],
        )
    }
    status = aggregate_status(deployment(), members, placed=["m1"], now="T")
    assert status is not None
    for condition in status["conditions"]:
        assert len(condition["message"]) < 2 * TEXT_LIMIT
    assert cut("abc", 10) == "abc" and len(cut("y" * 1000, 100)) == 100
    assert cut("y" * 1000, 100).endswith("(900 more characters)")


def test_a_huge_member_status_is_stored_reduced() -> None:
    small = {"replicas": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    assert bounded_status(small) == small
    big = {
        "replicas": 3,
        "phase": "Running" * 10,
        "blob": {"k": "v" * STATUS_LIMIT},
        "conditions": [{"type": "Ready", "status": "True", "message": "m" * 10_000, "extra": [1] * 1000}],
    }
    reduced = bounded_status(big)
    assert len(orjson.dumps(reduced)) <= STATUS_LIMIT
    assert reduced["replicas"] == 3 and "blob" not in reduced and TRUNCATED in reduced
    assert (
        reduced["conditions"][0]["type"] == "Ready" and len(reduced["conditions"][0]["message"]) <= TEXT_LIMIT
    )
    many = {f"f{i}": i for i in range(20_000)}
    assert set(bounded_status(many)) == {TRUNCATED}


def test_load_balancer_ingress_from_members_is_capped() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    members = {
        f"m{i}": {
            **svc,
            "status": {
                "loadBalancer": {"ingress": [{"ip": f"10.{i}.{j}.1", "junk": "x"} for j in range(50)]}
            },
        }
        for i in range(5)
    }
    status = aggregate_status(svc, members, placed=list(members), now="T")
    assert status is not None
    ingress = status["loadBalancer"]["ingress"]
    assert len(ingress) == LIST_LIMIT and all(set(e) == {"ip"} for e in ingress)


def test_unchanged_conditions_are_kept_verbatim_so_no_write_is_needed() -> None:
    old = [
        {
            "type": "Available",
            "status": "True",
            "reason": "R",
            "message": "m",
            "lastTransitionTime": "T0",
            "lastUpdateTime": "T0",
        }
    ]
    same = [
        {
            "type": "Available",
            "status": "True",
            "reason": "R",
            "message": "m",
            "lastTransitionTime": "T1",
            "lastUpdateTime": "T1",
        }
    ]
    assert merge_conditions(old, same) == old
    changed_msg = [{**same[0], "message": "other"}]
    merged = merge_conditions(old, changed_msg)
    assert merged[0]["lastTransitionTime"] == "T0" and merged[0]["lastUpdateTime"] == "T1"
    flipped = [{**same[0], "status": "False"}]
    assert merge_conditions(old, flipped)[0]["lastTransitionTime"] == "T1"


def test_kinds_without_hub_status_aggregate_to_none() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert aggregate_status(cm, {"m": cm}, placed=["m"], now="T") is None


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    [
        "replicas",
        "readyReplicas",
        "observedGeneration",
        "conditions",
        "phase",
        "loadBalancer",
        "updateRevision",
    ]
)


@given(
    kind=st.sampled_from(
        [
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("batch/v1", "Job"),
            ("v1", "Service"),
            ("v1", "PersistentVolumeClaim"),
            ("example.com/v1", "Widget"),
        ]
    ),
    status=_JSON | st.dictionaries(_FIELDS, _JSON, max_size=4),
    spec=_JSON,
    generation=_JSON,
)
def test_no_member_status_makes_health_assessment_fail(
    kind: tuple[str, str], status: Any, spec: Any, generation: Any
) -> None:
    """Whatever a member's admin writes in a status, the health is an answer, not an exception."""
    obj = {
        "apiVersion": kind[0],
        "kind": kind[1],
        "metadata": {"generation": generation},
        "spec": spec,
        "status": status,
    }
    assert isinstance(assess(obj).health, Health)
