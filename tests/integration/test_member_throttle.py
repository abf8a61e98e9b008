"""A token bucket per member: one member throttled to a trickle (`--member-rate-limit`) gets
its copies at its own rate while the other members' copies land at once, and the throttled
member's apiserver never sees more than its bucket allows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from federation.devfleet import LocalFleet
from tests.controllerhelpers import ControllerProcess, apply, running_controller, works
from tests.integration.test_propagation import MEMBER_LABELS, policy
from tests.kubehelpers import eventually

SLOW, QPS, BURST = "member-2", 1.0, 1
N = 30


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ControllerProcess, float]]:
    log_dir = tmp_path_factory.mktemp("controller")
    started = time.monotonic()
    async with running_controller(
        fleet,
        hub_id="itest-throttle",
        log_dir=log_dir,
        labels=MEMBER_LABELS,
        extra_args=["--member-rate-limit", f"{SLOW}={QPS}:{BURST}"],
    ) as proc:
        yield proc, started


def configmap(namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:02d}", "namespace": namespace, "labels": {"set": "throttle"}},
        "data": {"i": str(i)},
    }


def member_requests(proc: ControllerProcess, cluster: str) -> float:
    """Requests the controller sent `cluster` through its bucket (probes bypass it)."""
    every = proc.metric("federation_kube_requests_total", cluster=cluster)
    return every - proc.metric("federation_kube_requests_total", cluster=cluster, verb="readyz")


async def test_a_throttled_member_does_not_delay_the_others(
    fleet: LocalFleet, controller: tuple[ControllerProcess, float], namespace: str
) -> None:
    proc, started = controller
    apply(fleet, "hub", *(configmap(namespace, i) for i in range(N)))
    apply(
        fleet,
        "hub",
        policy(
            "all",
            namespace,
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "labelSelector": {"matchLabels": {"set": "throttle"}},
                }
            ],
            placement={"clusterNames": list(MEMBER_LABELS)},
        ),
    )

    async def applied() -> dict[str, int]:
        counts = dict.fromkeys(MEMBER_LABELS, 0)
        for w in await works(proc.database_url, namespace):
            counts[w["cluster"]] += w["state"] == "applied"
        return counts

    async def fast_members_done() -> dict[str, int]:
        counts = await applied()
        assert all(counts[c] == N for c in MEMBER_LABELS if c != SLOW), counts
        return counts

    counts = await eventually(fast_members_done, timeout=90, what="every copy in the unthrottled members")
    # ...while the throttled member still has works pending: it did not hold the others back.
    assert counts[SLOW] < N, counts
    assert proc.metric("federation_kube_client_throttled_total", cluster="member-1") == 0
    # The member informers' caches are sized for /metrics (the copies, without managedFields).
    assert proc.metric("federation_informer_store_bytes", cluster="member-1") > 0

    # The slow member is served, at its rate: copies keep landing there...
    before = counts[SLOW]

    async def slow_member_progressed() -> bool:
        return (await applied())[SLOW] > before

    await eventually(slow_member_progressed, timeout=120, what=f"one more copy in {SLOW}")
    # Its requests waited for tokens (asked only now: with 2 replicas, the one that ends up
    # owning the slow member may not have started on it when the others were done).
    assert proc.metric("federation_kube_client_throttled_total", cluster=SLOW) > 0
    # ...and its apiserver never got more than the bucket allows since the client was made
    # (an upper bound: a slow machine only lowers the count). The bucket is each process's own
    # (client-go's QPS is per client too): with FEDERATION_TEST_REPLICAS=2 each replica is held
    # to it, and a member handed over between them sees both.
    bound = BURST + QPS * (time.monotonic() - started) + 1
    for one in getattr(proc, "replicas", [proc]):
        assert member_requests(one, SLOW) <= bound, (member_requests(one, SLOW), bound)
