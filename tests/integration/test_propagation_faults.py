"""Propagation under faults: a member down mid-rollout, the controller SIGKILLed mid-rollout,
Postgres crashing, a member down past the grace period (failover). Each fault is injected into
the one process it concerns; everything else keeps running."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from federation.devfleet import LocalFleet
from tests.controllerhelpers import ControllerProcess, apply, events, kubectl, running_controller, works
from tests.integration.test_propagation import MEMBER_LABELS, policy
from tests.kubehelpers import eventually

GRACE = 6.0


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    log_dir = tmp_path_factory.mktemp("controller")
    async with running_controller(
        fleet, hub_id="itest-faults", log_dir=log_dir, labels=MEMBER_LABELS, grace_period=GRACE
    ) as proc:
        yield proc


def configmaps(namespace: str, n: int, prefix: str = "cm") -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{prefix}-{i:03d}", "namespace": namespace, "labels": {"set": prefix}},
            "data": {"i": str(i)},
        }
        for i in range(n)
    ]


def member_rvs(fleet: LocalFleet, cluster: str, namespace: str, label: str) -> dict[str, str]:
    out = kubectl(fleet, cluster, "-n", namespace, "get", "configmaps", "-l", label, "-o", "json")
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in json.loads(out)["items"]}


def versions(fleet: LocalFleet, cluster: str, namespace: str, label: str) -> list[str]:
    out = kubectl(fleet, cluster, "-n", namespace, "get", "configmaps", "-l", label, "-o", "json")
    return sorted(str(i["data"].get("version")) for i in json.loads(out)["items"])


def all_policy(namespace: str, name: str, prefix: str, **placement: Any) -> dict[str, Any]:
    return policy(
        name,
        namespace,
        [{"apiVersion": "v1", "kind": "ConfigMap", "labelSelector": {"matchLabels": {"set": prefix}}}],
        placement=placement or {"clusterNames": list(MEMBER_LABELS)},
    )


async def test_member_down_mid_rollout_waits_and_completes_when_back(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    # The policy tolerates the unreachable taint (as one would for a stateful workload), so the
    # outage never turns into a failover however long the test machine takes.
    tolerant = all_policy(
        namespace,
        "down",
        "down",
        clusterNames=list(MEMBER_LABELS),
        tolerations=[{"key": "federation.io/unreachable", "operator": "Exists", "effect": "NoExecute"}],
    )
    apply(fleet, "hub", *configmaps(namespace, 20, "down"), tolerant)

    async def everywhere() -> bool:
        return all(len(member_rvs(fleet, c, namespace, "set=down")) == 20 for c in MEMBER_LABELS)

    await eventually(everywhere, timeout=30, what="the first version everywhere")
    # A rollout of a new version starts while member-3 is down: NotReady keeps its placement
    # (no failover before the grace period), so its works wait instead of moving.
    await anyio.to_thread.run_sync(fleet.stop_cluster, "member-3")
    try:
        updated = configmaps(namespace, 20, "down")
        for cm in updated:
            cm["data"]["version"] = "2"
        apply(fleet, "hub", *updated)

        async def others_done() -> bool:
            return all(
                versions(fleet, c, namespace, "set=down") == ["2"] * 20 for c in ("member-1", "member-2")
            )

        await eventually(others_done, timeout=30, what="member-1 and member-2 rolled out, unaffected")
        rows = await works(controller.database_url, namespace)
        waiting = [r for r in rows if r["cluster"] == "member-3"]
        assert len(waiting) == 20 and all(r["state"] == "pending" for r in waiting), "member-3's works wait"
    finally:
        await anyio.to_thread.run_sync(fleet.start_cluster, "member-3")

    async def member_3_done() -> bool:
        return versions(fleet, "member-3", namespace, "set=down") == ["2"] * 20

    await eventually(member_3_done, timeout=60, what="member-3's rollout completed once it is back")

    async def all_applied() -> bool:
        rows = await works(controller.database_url, namespace)
        return len(rows) == 60 and all(r["state"] == "applied" for r in rows)

    await eventually(all_applied, timeout=15, what="every work recorded as applied")


async def test_controller_killed_mid_rollout_converges_without_rewriting_what_was_applied(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    apply(fleet, "hub", *configmaps(namespace, 60, "kill"), all_policy(namespace, "kill", "kill"))

    async def some_applied() -> dict[str, dict[str, str]]:
        seen = {c: member_rvs(fleet, c, namespace, "set=kill") for c in MEMBER_LABELS}
        return seen if sum(len(v) for v in seen.values()) >= 10 else {}

    await eventually(some_applied, timeout=30, interval=0.05, what="the rollout under way")
    await anyio.to_thread.run_sync(lambda: controller.stop(kill=True))
    before = {c: member_rvs(fleet, c, namespace, "set=kill") for c in MEMBER_LABELS}
    applied_before = sum(len(v) for v in before.values())
    await anyio.to_thread.run_sync(controller.start)

    async def converged() -> bool:
        return all(len(member_rvs(fleet, c, namespace, "set=kill")) == 60 for c in MEMBER_LABELS)

    await eventually(converged, timeout=60, what="all 180 copies after the restart")
    after = {c: member_rvs(fleet, c, namespace, "set=kill") for c in MEMBER_LABELS}
    rewritten = [(c, n) for c in before for n, rv in before[c].items() if after[c][n] != rv]
    assert rewritten == [], (
        f"{len(rewritten)} of {applied_before} copies applied before the kill were written again"
    )

    # A restart with nothing changed writes nothing at all.
    await anyio.to_thread.run_sync(lambda: controller.stop(kill=True))
    await anyio.to_thread.run_sync(controller.start)
    for cluster in MEMBER_LABELS:
        rounds = controller.metric("federation_claim_rounds_total", cluster=cluster)

        async def two_rounds(cluster: str = cluster, rounds: float = rounds) -> bool:
            return controller.metric("federation_claim_rounds_total", cluster=cluster) >= rounds + 2

        await eventually(two_rounds, timeout=30, what=f"{cluster}'s propagator running after the restart")
    assert controller.metric("federation_member_writes_total") == 0
    assert {c: member_rvs(fleet, c, namespace, "set=kill") for c in MEMBER_LABELS} == after


async def test_postgres_crash_mid_rollout_converges_and_loses_nothing(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    apply(fleet, "hub", *configmaps(namespace, 40, "pg"), all_policy(namespace, "pg", "pg"))
    await anyio.to_thread.run_sync(lambda: fleet.restart_postgres(kill=True))

    async def converged() -> bool:
        return all(len(member_rvs(fleet, c, namespace, "set=pg")) == 40 for c in MEMBER_LABELS)

    await eventually(converged, timeout=90, what="all copies after Postgres came back")

    async def recorded() -> bool:
        rows = await works(controller.database_url, namespace)
        return len(rows) == 120 and all(r["state"] == "applied" for r in rows)

    await eventually(recorded, timeout=60, what="every work recorded as applied")
    # Still the same process, leading and working: a few more claim rounds, then alive and ready.
    rounds = controller.metric("federation_claim_rounds_total", cluster="member-1")

    async def still_working() -> bool:
        return controller.metric("federation_claim_rounds_total", cluster="member-1") >= rounds + 3

    await eventually(still_working, timeout=30, what="the controller still claiming after the crash")
    assert controller.proc is not None and controller.proc.poll() is None, controller.log_tail()
    assert await anyio.to_thread.run_sync(controller.ready)


async def test_a_member_down_past_the_grace_period_fails_over_and_is_cleaned_up_when_back(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    apply(
        fleet,
        "hub",
        *configmaps(namespace, 3, "fo"),
        all_policy(namespace, "fo", "fo", clusterNames=["member-2", "member-3"], maxClusters=1),
    )

    async def placed_once() -> str:
        where = [c for c in ("member-2", "member-3") if len(member_rvs(fleet, c, namespace, "set=fo")) == 3]
        return where[0] if len(where) == 1 else ""

    first = await eventually(placed_once, timeout=30, what="the set placed on one cluster")
    other = "member-3" if first == "member-2" else "member-2"
    await anyio.to_thread.run_sync(fleet.stop_cluster, first)
    try:

        async def moved() -> bool:
            return len(member_rvs(fleet, other, namespace, "set=fo")) == 3

        await eventually(moved, timeout=GRACE + 30, what=f"failover to {other}")

        async def failover_event() -> bool:
            return any(e["type"] == "Failover" for e in await events(controller.database_url, namespace))

        await eventually(failover_event, timeout=15, what="a Failover event")
    finally:
        await anyio.to_thread.run_sync(fleet.start_cluster, first)

    async def cleaned_up() -> bool:
        return member_rvs(fleet, first, namespace, "set=fo") == {}

    await eventually(cleaned_up, timeout=60, what=f"the stale copies removed from {first}")
    assert len(member_rvs(fleet, other, namespace, "set=fo")) == 3, "nothing duplicated, nothing lost"
    rows = await works(controller.database_url, namespace)
    assert {r["cluster"] for r in rows} == {other}
