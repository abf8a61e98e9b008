"""Hypothesis strategies for fleets and placements, shared by the placement property tests."""

from __future__ import annotations

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


@st.composite
def clusters(draw: st.DrawFn, *, min_size: int = 0, max_size: int = 8) -> list[ClusterSnapshot]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=min_size, max_size=max_size, unique=True))
    out = []
    for name in names:
        labels: dict[str, str] = {"region": draw(st.sampled_from(REGIONS))}
        if draw(st.booleans()):
            labels["gpu"] = "true"
        out.append(
            ClusterSnapshot(
                name=name,
                labels=labels,
                taints=tuple(draw(st.lists(taints, max_size=2))),
                ready=draw(st.sampled_from([True, True, True, False])),  # mostly ready
                allocatable=draw(
                    st.none()
                    | st.builds(Allocatable, cpu_millicores=st.integers(0, 64000), pods=st.integers(0, 110))
                ),
                available_replicas=draw(st.none() | st.integers(0, 50)),
            )
        )
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
    kind = draw(st.sampled_from(["Duplicated", "equal", "static", "dynamic"]))
    if kind == "Duplicated":
        spec["replicaScheduling"] = {"type": "Duplicated"}
    elif kind == "equal":
        spec["replicaScheduling"] = {"type": "Divided"}
    elif kind == "static":
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
        spec["replicaScheduling"] = {"type": "Divided", "weights": by_region + by_name}
    else:
        spec["replicaScheduling"] = {"type": "Divided", "dynamic": "AvailableReplicas"}
    return Placement.model_validate(spec)
