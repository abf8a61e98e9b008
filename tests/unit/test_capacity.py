"""A member's capacity from its nodes and pods, when it is worth telling placement, and how
Divided by dynamic weight divides it by a replica's requests."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federation.api import PropagationPolicy
from federation.clusters.capacity import Capacity, per_replica, pod_request, summarize, trim_node, trim_pod
from federation.clusters.capacity_watch import as_quantities, significant
from federation.placement import Allocatable, ClusterSnapshot, decide, room


def node(
    name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 10, ready: bool = True, **spec: Any
) -> Any:
    return {
        "metadata": {"name": name},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}],
        },
    }


def pod(
    node_name: str | None, *, cpu: str = "500m", memory: str = "1Gi", phase: str = "Running", **spec: Any
) -> Any:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
            **spec,
        },
        "status": {"phase": phase},
    }


def test_free_capacity_counts_only_ready_schedulable_nodes_and_the_pods_holding_them() -> None:
    cap = summarize(
        [node("a"), node("b", ready=False), node("c", unschedulable=True)],
        [
            pod("a"),
            pod("a", cpu="1", memory="2Gi"),
            pod("a", phase="Succeeded"),  # finished: holds nothing
            pod("b"),  # on a NotReady node: that node is not counted at all
            pod("c"),  # cordoned: same
            pod(None),  # pending, not bound: holds nothing yet
        ],
    )
    assert (cap.nodes, cap.ready_nodes) == (3, 2)
    assert cap.allocatable == Allocatable(cpu_millicores=4000, memory_bytes=8 * 2**30, pods=10)
    assert cap.available == Allocatable(cpu_millicores=2500, memory_bytes=5 * 2**30, pods=8)
    assert not cap.no_ready_nodes
    assert summarize([node("a", ready=False)], []).no_ready_nodes
    assert not summarize([], []).no_ready_nodes  # no nodes at all: nothing to say


def test_a_pods_request_is_what_the_scheduler_counts() -> None:
    init = [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}}]
    p = pod("a", cpu="250m", memory="1Gi", initContainers=init, overhead={"cpu": "100m"})
    assert pod_request(p) == (2100, 2**30)  # the larger of containers and each init, plus overhead
    assert pod_request(pod("a", cpu="lots")) == (0, 2**30)  # an unreadable quantity counts nothing


def test_the_trimmed_objects_keep_what_the_sum_reads() -> None:
    n = node("a", unschedulable=True)
    n["status"]["images"] = ["big"] * 50
    p = pod("a", initContainers=[{"name": "i", "resources": {"requests": {"cpu": "3"}}}])
    p["spec"]["containers"][0]["env"] = [{"name": "X", "value": "y" * 1000}]
    assert summarize([trim_node(n)], [trim_pod(p)]) == summarize([n], [p])
    assert "images" not in trim_node(n)["status"] and "env" not in trim_pod(p)["spec"]["containers"][0]


def test_one_replicas_requests_come_from_the_workloads_pod_template() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}}},
    }
    assert per_replica(deployment) == (100, 0)
    assert per_replica({"apiVersion": "v1", "kind": "ConfigMap"}) is None
    bare = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [{}]}}},
    }
    assert per_replica(bare) is None


def capacity(cpu: int, *, nodes: int = 2, ready: int = 2, free: int | None = None) -> Capacity:
    return Capacity(
        nodes=nodes,
        ready_nodes=ready,
        allocatable=Allocatable(cpu_millicores=cpu, memory_bytes=10**9, pods=100),
        available=Allocatable(cpu_millicores=cpu if free is None else free, memory_bytes=10**9, pods=100),
    )


def test_placement_hears_only_of_changes_that_matter() -> None:
    assert significant(None, capacity(4000), 0.1)
    assert not significant(capacity(4000), capacity(4000, free=3700), 0.1)  # a pod or three
    assert significant(capacity(4000), capacity(4000, free=3500), 0.1)
    assert significant(capacity(4000), capacity(4000, ready=1), 0.1)
    assert significant(capacity(4000), capacity(6000), 0.1)  # a node added


def test_quantities_round_trip() -> None:
    assert as_quantities(Allocatable(cpu_millicores=2500, memory_bytes=1024, pods=3)) == {
        "cpu": "2500m",
        "memory": "1Ki",
        "pods": "3",
    }
    assert as_quantities(Allocatable(cpu_millicores=12000, memory_bytes=24 * 2**30 + 1)) == {
        "cpu": "12",
        "memory": str(24 * 2**30 + 1),
    }


def snapshot(name: str, cpu_free: int | None, *, reported: int | None = None) -> ClusterSnapshot:
    free = None if cpu_free is None else Allocatable(cpu_millicores=cpu_free, memory_bytes=10**12, pods=1000)
    return ClusterSnapshot(name=name, free=free, available_replicas=reported)


def test_room_is_the_tightest_bound_of_the_measured_free_capacity() -> None:
    assert room(snapshot("a", 4000), (100, 0)) == 40
    assert room(snapshot("a", 4000), (100, 10**11)) == 10  # memory is tighter
    assert room(snapshot("a", 4000), None) == 1000  # no requests: a pod slot each
    assert room(snapshot("a", None, reported=7), (100, 0)) == 7  # not measured: what it reports
    assert room(snapshot("a", None), (100, 0)) == 0


def dynamic_policy() -> Any:
    return PropagationPolicy.model_validate(
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                "placement": {"replicaScheduling": {"type": "Divided", "dynamic": "AvailableReplicas"}},
            },
        }
    ).spec.placement


def test_divided_by_measured_capacity_follows_the_clusters_capacities() -> None:
    fleet = [snapshot("m1", 4000), snapshot("m2", 8000), snapshot("m3", 12000)]
    d = decide(placement=dynamic_policy(), clusters=fleet, replicas=12, previous=None, per_replica=(100, 0))
    assert {t.cluster: t.replicas for t in d.targets} == {"m1": 2, "m2": 4, "m3": 6}
    # m3 cordoned: no free capacity; its share moves to the others.
    fleet[2] = snapshot("m3", 0)
    d = decide(placement=dynamic_policy(), clusters=fleet, replicas=12, previous=d, per_replica=(100, 0))
    assert {t.cluster: t.replicas for t in d.targets} == {"m1": 4, "m2": 8}


@given(
    cpus=st.lists(st.integers(1, 64), min_size=1, max_size=6),
    used=st.lists(st.integers(0, 8000), max_size=20),
)
def test_free_never_exceeds_allocatable_nor_goes_negative(cpus: list[int], used: list[int]) -> None:
    nodes = [node(f"n{i}", cpu=str(c)) for i, c in enumerate(cpus)]
    pods = [pod(f"n{i % len(cpus)}", cpu=f"{u}m") for i, u in enumerate(used)]
    cap = summarize(nodes, pods)
    assert cap.allocatable.cpu_millicores is not None and cap.available.cpu_millicores is not None
    assert 0 <= cap.available.cpu_millicores <= cap.allocatable.cpu_millicores
    assert cap.allocatable.cpu_millicores == 1000 * sum(cpus)


def test_a_share_larger_than_the_clusters_room_is_reported() -> None:
    from federation.hub.pipeline import _fit

    fleet = [snapshot("m1", 200), snapshot("m2", 400)]
    d = decide(placement=dynamic_policy(), clusters=fleet, replicas=12, previous=None, per_replica=(100, 0))
    assert {t.cluster: t.replicas for t in d.targets} == {"m1": 4, "m2": 8}
    assert (d.short("m1"), d.short("m2")) == (2, 4)
    assert _fit(d, "m1", "selected") == "selected; room for only 2 of its 4 replicas"
    fits = decide(placement=dynamic_policy(), clusters=fleet, replicas=6, previous=None, per_replica=(100, 0))
    assert fits.short("m1") == 0 and _fit(fits, "m1", "selected") == "selected"
