"""Members that run workloads: status comes from real controllers, not from the tests.

A fleet of its own (`conftest.workload_fleet`: hub + 3 members, each member with a kube-controller-manager, a
kube-scheduler and kwok playing the kubelets of simulated nodes): a Deployment copy gets a
ReplicaSet and Pods, the scheduler binds them to nodes, kwok makes them Ready, the member's
deployment controller counts them — and the hub's aggregated status says what really runs.
Nothing here writes a member's status.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

from federation.devfleet import LocalFleet
from tests.controllerhelpers import ControllerProcess, apply, events, get, kubectl
from tests.integration.conftest import LABELS, deployment
from tests.integration.test_propagation import policy
from tests.kubehelpers import eventually


def place(fleet: LocalFleet, name: str, namespace: str, *, replicas: int, placement: dict[str, Any]) -> None:
    """Deployment `name` on the hub, and a policy of its own placing it."""
    selector = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}]
    apply(
        fleet,
        "hub",
        deployment(name, namespace, replicas=replicas),
        policy(name, namespace, selector, placement=placement),
    )


def replicas(fleet: LocalFleet, name: str, namespace: str) -> dict[str, int]:
    """spec.replicas of each member's copy of Deployment `name` (members without one left out)."""
    out = {}
    for cluster in LABELS:
        copy = get(fleet, cluster, "deployment", name, namespace)
        if copy is not None:
            out[cluster] = copy["spec"]["replicas"]
    return out


def clusters_of(workload_controller: ControllerProcess, path: str) -> dict[str, str]:
    """Health per cluster of a resource, from the controller's API; an assertion (so the caller
    waits) while the controller has not recorded the resource yet (404)."""
    try:
        body = workload_controller.api(f"/api/v1/resources/{path}/clusters")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise AssertionError(f"{path}: not recorded by the controller yet") from exc
        raise
    return {w["cluster"]: w["health"] for w in body["items"]}


def pods(fleet: LocalFleet, cluster: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    out = kubectl(fleet, cluster, "get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    return list(json.loads(out)["items"])


async def test_dynamic_weights_follow_node_capacity_and_move_when_a_member_is_cordoned(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    """First in the module: the members' capacity is still theirs alone (1:2:3 in CPU)."""
    fleet = workload_fleet

    async def measured() -> dict[str, Any]:
        mc = get(fleet, "hub", "membercluster", "member-3")
        assert mc is not None
        status = mc.get("status") or {}
        assert status.get("nodes") == {"total": 2, "ready": 2}, status
        assert status.get("allocatable", {}).get("cpu") == "12", status
        return status

    await eventually(measured, timeout=60, what="member-3's measured capacity on its MemberCluster")

    async def in_the_store() -> dict[str, Any]:
        clusters = {c["cluster"]: c for c in workload_controller.api("/api/v1/clusters")["items"]}
        assert clusters["member-3"]["allocatable"].get("cpu_millicores") == 12000, clusters["member-3"]
        return clusters

    await eventually(in_the_store, timeout=60, what="member-3's measured allocatable in Postgres and the API")
    place(
        fleet,
        "sized",
        workload_ns,
        replicas=12,
        placement={"replicaScheduling": {"type": "Divided", "dynamic": "AvailableReplicas"}},
    )

    async def split(want: dict[str, int]) -> dict[str, int]:
        got = replicas(fleet, "sized", workload_ns)
        assert got == want, got
        return got

    await eventually(
        lambda: split({"member-1": 2, "member-2": 4, "member-3": 6}), timeout=60, what="a 2/4/6 split"
    )
    # member-3 cordoned: it takes no new pods, so its room is 0 and its share moves.
    fleet.nodes.cordon("member-3")
    try:
        await eventually(
            lambda: split({"member-1": 4, "member-2": 8}), timeout=90, what="the split moved off member-3"
        )
    finally:
        fleet.nodes.cordon("member-3", on=False)


async def test_a_member_whose_nodes_die_fails_over_and_gets_no_duplicate_when_they_return(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    fleet = workload_fleet
    place(
        fleet,
        "single",
        workload_ns,
        replicas=2,
        placement={"clusterNames": ["member-1", "member-2"], "maxClusters": 1},
    )

    async def ready_in(cluster: str) -> str:
        placed = replicas(fleet, "single", workload_ns)
        assert list(placed) == [cluster], placed
        copy = get(fleet, cluster, "deployment", "single", workload_ns)
        assert copy is not None and (copy.get("status") or {}).get("readyReplicas") == 2, copy and copy.get(
            "status"
        )
        return cluster

    # The roomier of the two (member-2: 8 CPUs against 4) gets it.
    await eventually(lambda: ready_in("member-2"), timeout=60, what="single Ready in member-2")
    fleet.nodes.nodes_down("member-2")
    try:
        # kwok stops renewing the leases; the controller-manager marks the nodes NotReady after
        # its grace period, the registry taints member-2 and, after the controller's, fails over.
        await eventually(
            lambda: ready_in("member-1"), timeout=120, what="single failed over and Ready in member-1"
        )
        rows = await events(workload_controller.database_url, workload_ns)
        assert any(e["type"] == "Failover" and "member-2 (no Ready node)" in e["message"] for e in rows), rows
        clusters = {c["cluster"]: c for c in workload_controller.api("/api/v1/clusters")["items"]}
        taints = {(t["key"], t["effect"]) for t in clusters["member-2"]["taints"]}
        assert ("federation.io/no-ready-nodes", "NoExecute") in taints, clusters["member-2"]
    finally:
        fleet.nodes.nodes_up("member-2")
    fleet.nodes.wait_ready("member-2", timeout=60)

    async def member_2_seen_ready() -> bool:
        mc = get(fleet, "hub", "membercluster", "member-2")
        assert mc is not None and (mc.get("status") or {}).get("nodes", {}).get("ready") == 2, mc
        return True

    await eventually(member_2_seen_ready, timeout=60, what="the controller sees member-2's nodes Ready again")
    # Placement is stable: the workload stays where it runs, and member-2 holds no second copy.
    assert list(replicas(fleet, "single", workload_ns)) == ["member-1"]
    assert get(fleet, "member-2", "deployment", "single", workload_ns) is None


async def test_a_divided_deployment_runs_in_each_member_and_the_hub_reports_it_ready(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    fleet = workload_fleet
    place(fleet, "web", workload_ns, replicas=6, placement={"replicaScheduling": {"type": "Divided"}})

    async def ready_everywhere() -> dict[str, int]:
        ready = {}
        for cluster in LABELS:
            copy = get(fleet, cluster, "deployment", "web", workload_ns)
            assert copy is not None, f"no copy in {cluster} yet"
            status = copy.get("status") or {}
            assert status.get("readyReplicas") == copy["spec"]["replicas"], (cluster, status)
            ready[cluster] = status["readyReplicas"]
        return ready

    ready = await eventually(ready_everywhere, timeout=120, what="web Ready in every member")
    assert sum(ready.values()) == 6 and set(ready.values()) == {2}, ready
    # The members' own controllers did it: pods exist, bound to the simulated nodes, Ready.
    for cluster in LABELS:
        running = pods(fleet, cluster, workload_ns, "app=web")
        assert len(running) == 2, (cluster, running)
        for pod in running:
            assert pod["spec"]["nodeName"].startswith(f"{cluster}-node-"), pod["spec"].get("nodeName")
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            assert pod["status"]["phase"] == "Running" and conditions.get("Ready") == "True", pod["status"]

    async def hub_ready() -> dict[str, Any]:
        hub = get(fleet, "hub", "deployment", "web", workload_ns)
        assert hub is not None
        status = hub.get("status") or {}
        assert status.get("readyReplicas") == 6 and status.get("availableReplicas") == 6, status
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        assert conditions["Available"]["status"] == "True", conditions
        return status

    await eventually(hub_ready, timeout=60, what="the hub Deployment aggregated Ready (6/6)")


async def test_a_job_completes_in_two_members_and_the_controller_reports_it_healthy(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    fleet = workload_fleet
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": workload_ns},
        "spec": {
            "completions": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "run", "image": "registry.example.com/batch:1"}],
                }
            },
        },
    }
    apply(
        fleet,
        "hub",
        job,
        policy(
            "once",
            workload_ns,
            [{"apiVersion": "batch/v1", "kind": "Job", "name": "once"}],
            placement={"clusterNames": ["member-1", "member-3"]},
        ),
    )

    async def completed() -> bool:
        for cluster in ("member-1", "member-3"):
            copy = get(fleet, cluster, "job", "once", workload_ns)
            assert copy is not None, f"no copy in {cluster} yet"
            conditions = {c["type"]: c["status"] for c in (copy.get("status") or {}).get("conditions", [])}
            assert conditions.get("Complete") == "True", (cluster, copy.get("status"))
            assert copy["status"].get("succeeded") == 2, copy["status"]
        return True

    await eventually(completed, timeout=120, what="the Job complete in member-1 and member-3")
    assert get(fleet, "member-2", "job", "once", workload_ns) is None

    async def reported() -> dict[str, str]:
        health = clusters_of(workload_controller, f"batch/Job/{workload_ns}/once")
        assert health == {"member-1": "Healthy", "member-3": "Healthy"}, health
        return health

    await eventually(reported, timeout=60, what="the controller's API reports the Job Healthy in both")


async def test_a_statefulset_and_a_daemonset_report_what_their_controllers_did(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    """The health interpreters on real status: a StatefulSet's ordered readiness, a DaemonSet
    over every node of its member."""
    fleet = workload_fleet
    pod = {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}}
    apply(
        fleet,
        "hub",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": workload_ns},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, **pod},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": workload_ns},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, **pod},
            },
        },
        policy(
            "apps",
            workload_ns,
            [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"},
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent"},
            ],
            placement={"clusterNames": ["member-3"]},
        ),
    )

    async def healthy() -> bool:
        for kind, name in (("StatefulSet", "db"), ("DaemonSet", "agent")):
            health = clusters_of(workload_controller, f"apps/{kind}/{workload_ns}/{name}")
            assert health == {"member-3": "Healthy"}, (kind, health)
        return True

    await eventually(healthy, timeout=120, what="the StatefulSet and the DaemonSet Healthy in member-3")
    db = get(fleet, "member-3", "statefulset", "db", workload_ns)
    assert db is not None and db["status"]["readyReplicas"] == 3, db and db.get("status")
    # Ordered: the controller created db-0, db-1, db-2, each once the one before was Ready.
    assert sorted(p["metadata"]["name"] for p in pods(fleet, "member-3", workload_ns, "app=db")) == [
        "db-0",
        "db-1",
        "db-2",
    ]
    agent = get(fleet, "member-3", "daemonset", "agent", workload_ns)
    assert agent is not None
    nodes = len(fleet.nodes.nodes("member-3"))
    assert agent["status"]["numberReady"] == agent["status"]["desiredNumberScheduled"] == nodes, agent[
        "status"
    ]

    async def hub_aggregated() -> bool:
        hub_db = get(fleet, "hub", "statefulset", "db", workload_ns)
        hub_agent = get(fleet, "hub", "daemonset", "agent", workload_ns)
        assert hub_db is not None and (hub_db.get("status") or {}).get("readyReplicas") == 3, hub_db
        assert hub_agent is not None and (hub_agent.get("status") or {}).get("numberReady") == nodes, (
            hub_agent
        )
        return True

    await eventually(hub_aggregated, timeout=60, what="the hub's aggregated StatefulSet and DaemonSet status")


# The staged-rollout scenarios run in this module, on its fleet and controller: a second fleet of
# workload members (and its controller) would cost the suite over a minute for nothing it tests.
from tests.integration.rollout_scenarios import (  # noqa: E402
    test_a_bad_image_halts_after_the_canary_or_is_rolled_back,
    test_a_controller_killed_mid_stage_resumes_and_no_cluster_jumps_ahead,
    test_a_model_change_on_the_canary_waits_for_approval_before_the_rest,
    test_an_image_change_reaches_the_canary_first_and_the_rest_after_its_soak,
)

__all__ = [
    "test_a_bad_image_halts_after_the_canary_or_is_rolled_back",
    "test_a_controller_killed_mid_stage_resumes_and_no_cluster_jumps_ahead",
    "test_a_model_change_on_the_canary_waits_for_approval_before_the_rest",
    "test_an_image_change_reaches_the_canary_first_and_the_rest_after_its_soak",
]
