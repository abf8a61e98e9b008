"""Hypothesis strategies for fleets and placements, shared by the placement property tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from federation.api import Placement, Taint, TaintEffect
from federation.placement import Allocatable, ClusterSnapshot

REGIONS = ("eu", "us", "ap")
NAMES = [f"c{i:02d}" for i in range(12)]

taints = st.builds(
    Taint,
    key=st.sampled_from(["maintenance", "gpu-only", "spot"]),
    value=st.sampled_from(["", "true"]),
    effect=st.sampled_from(list(TaintEffect)),
)


def snapshot(draw: st.DrawFn, name: str, labels: dict[str, str]) -> ClusterSnapshot:
    """A cluster with ``labels`` and drawn taints, readiness and capacity."""
    return ClusterSnapshot(
        name=name,
        labels=labels,
        taints=tuple(draw(st.lists(taints, max_size=2))),
        ready=draw(st.sampled_from([True, True, True, False])),  # mostly ready
        allocatable=draw(
            st.none() | st.builds(Allocatable, cpu_millicores=st.integers(0, 64000), pods=st.integers(0, 110))
        ),
        available_replicas=draw(st.none() | st.integers(0, 50)),
    )


def replica_scheduling(draw: st.DrawFn, weights: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    """One of the four ways replicas are scheduled; ``weights`` draws the entries of the static one."""
    kind = draw(st.sampled_from(["Duplicated", "equal", "static", "dynamic"]))
    if kind == "Duplicated":
        return {"type": "Duplicated"}
    if kind == "equal":
        return {"type": "Divided"}
    if kind == "static":
        return {"type": "Divided", "weights": weights()}
    return {"type": "Divided", "dynamic": "AvailableReplicas"}


@st.composite
def clusters(draw: st.DrawFn, *, min_size: int = 0, max_size: int = 8) -> list[ClusterSnapshot]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=min_size, max_size=max_size, unique=True))
    out = []
    for name in names:
        labels: dict[str, str] = {"region": draw(st.sampled_from(REGIONS))}
        if draw(st.booleans()):
            labels["gpu"] = "true"
        out.append(snapshot(draw, name, labels))
    return out


@st.composite
def placements(draw: st.DrawFn) -> Placement:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["clusterSelector"] = {
            "matchExpressions": [
                {
                    "key": "region",
                    "operator": "In",
                    "values": draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True)),
                }
            ]
        }
    if draw(st.booleans()):
        spec["clusterNames"] = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8, unique=True))
    if draw(st.booleans()):
        spec["excludeClusters"] = draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True))
    if draw(st.booleans()):
        spec["tolerations"] = [{"key": "maintenance", "operator": "Exists"}]
    max_clusters = draw(st.none() | st.integers(1, 5))
    if max_clusters is not None:
        spec["maxClusters"] = max_clusters
    if draw(st.booleans()):
        lo = draw(st.integers(1, min(2, max_clusters or 2)))
        constraint: dict[str, Any] = {"topologyKey": "region", "minGroups": lo}
        if draw(st.booleans()):
            constraint["maxGroups"] = draw(st.integers(lo, 3))
        spec["spreadConstraints"] = [constraint]

    def static() -> list[dict[str, Any]]:
        by_region = [
            {"clusterSelector": {"matchLabels": {"region": r}}, "weight": draw(st.integers(1, 5))}
            for r in draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True))
        ]
        by_name = [
            {"clusterNames": names, "weight": draw(st.integers(1, 5))}
            for names in draw(
                st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True), max_size=2)
            )
        ]
        return by_region + by_name

    spec["replicaScheduling"] = replica_scheduling(draw, static)
    return Placement.model_validate(spec)


# -- richer fleets and placements for the index (tests/unit/test_placement_index.py) ------------
# Every label may be absent (so NotIn/DoesNotExist meet missing keys and spread keys go missing),
# selectors use every operator, and fleets are larger than a machine word of clusters.

LABEL_VALUES = {"region": REGIONS, "zone": ("a", "b"), "tier": ("prod", "staging"), "gpu": ("true", "")}


@st.composite
def label_selectors(draw: st.DrawFn) -> dict[str, Any]:
    keys = st.sampled_from([*LABEL_VALUES, "absent"])
    selector: dict[str, Any] = {}
    match_labels = draw(
        st.dictionaries(keys, st.sampled_from(["eu", "us", "a", "prod", "true", ""]), max_size=2)
    )
    if match_labels:
        selector["matchLabels"] = match_labels
    expressions = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(keys)
        op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
        expr: dict[str, Any] = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            pool = [*LABEL_VALUES.get(key, ()), "nope"]
            expr["values"] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        expressions.append(expr)
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


@st.composite
def rich_clusters(draw: st.DrawFn, *, max_size: int = 24) -> list[ClusterSnapshot]:
    count = draw(st.integers(0, max_size))
    out = []
    for i in range(count):
        labels = {
            key: draw(st.sampled_from(values))
            for key, values in LABEL_VALUES.items()
            if draw(st.integers(0, 9)) > 0  # each label absent one time in ten
        }
        out.append(snapshot(draw, f"m{i:03d}", labels))
    return out


@st.composite
def rich_placements(draw: st.DrawFn, *, names: list[str]) -> Placement:
    """Placements over a fleet whose cluster names are ``names`` (plus names no fleet has)."""
    some_names = st.sampled_from([*names, "ghost"]) if names else st.just("ghost")
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["clusterSelector"] = draw(label_selectors())
    if draw(st.integers(0, 3)) == 0:
        spec["clusterNames"] = draw(st.lists(some_names, max_size=12, unique=True))
    if draw(st.booleans()):
        spec["excludeClusters"] = draw(st.lists(some_names, max_size=4, unique=True))
    if draw(st.booleans()):
        spec["tolerations"] = draw(
            st.lists(
                st.sampled_from(
                    [
                        {"key": "maintenance", "operator": "Exists"},
                        {"key": "spot", "operator": "Equal", "value": "true"},
                        {"key": "gpu-only", "operator": "Exists", "effect": "NoExecute"},
                        {"operator": "Exists", "effect": "NoSchedule"},
                        {"operator": "Exists"},
                    ]
                ),
                max_size=2,
                unique_by=str,
            )
        )
    max_clusters = draw(st.none() | st.integers(1, 6))
    if max_clusters is not None:
        spec["maxClusters"] = max_clusters
    constraints = []
    for key in draw(st.lists(st.sampled_from(["region", "zone"]), max_size=2, unique=True)):
        lo = draw(st.integers(1, min(2, max_clusters or 2)))
        constraint: dict[str, Any] = {"topologyKey": key, "minGroups": lo}
        if draw(st.booleans()):
            constraint["maxGroups"] = draw(st.integers(lo, 3))
        constraints.append(constraint)
    if constraints:
        spec["spreadConstraints"] = constraints

    def static() -> list[dict[str, Any]]:
        by_selector = [
            {"clusterSelector": draw(label_selectors()), "weight": draw(st.integers(1, 5))}
            for _ in range(draw(st.integers(0, 3)))
        ]
        by_name = [
            {"clusterNames": draw(st.lists(some_names, min_size=1, max_size=4, unique=True)), "weight": w}
            for w in draw(st.lists(st.integers(1, 5), max_size=2))
        ]
        return (by_selector + by_name) or by_name_default(names)

    spec["replicaScheduling"] = replica_scheduling(draw, static)
    return Placement.model_validate(spec)


def by_name_default(names: list[str]) -> list[dict[str, Any]]:
    return [{"clusterNames": names[:1] or ["ghost"], "weight": 1}]
