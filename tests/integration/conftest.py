"""Fixtures of the module whose members run workloads (`test_workloads`, which also runs
`rollout_scenarios`).

A fleet of their own per module (hub + 3 members, each member with a kube-controller-manager, a
kube-scheduler and kwok playing the kubelets of simulated nodes, and its own Postgres): status
comes from real controllers. Module-scoped, so each module that asks for one has its own and
the two can run on different pytest-xdist workers at once.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from federation.devfleet import LocalFleet
from federation.devfleet.nodes import NodeShape
from tests.controllerhelpers import ControllerProcess, running_controller
from tests.kubehelpers import create_namespace, delete_namespace, install_hub_crds

LABELS = {
    "member-1": {"region": "eu"},
    "member-2": {"region": "us"},
    "member-3": {"region": "ap"},
}


def deployment(
    name: str, namespace: str, *, replicas: int, image: str = "registry.example.com/app:1"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "resources": {"requests": {"cpu": "100m"}}}
                    ]
                },
            },
        },
    }


@pytest.fixture(scope="module")
def workload_fleet() -> Iterator[LocalFleet]:
    """Hub + 3 workload members, 2 simulated nodes each (capacity 1:2:3 in CPU), own Postgres."""
    local = LocalFleet(
        members=3,
        workloads=True,
        nodes_per_member=2,
        node_shapes={
            "member-1": NodeShape(cpu="2", memory="8Gi"),
            "member-2": NodeShape(cpu="4", memory="16Gi"),
            "member-3": NodeShape(cpu="6", memory="24Gi"),
        },
        progress=lambda m: print(f"[workload fleet] {m}", file=sys.__stderr__, flush=True),
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
async def workload_controller(
    workload_fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    await install_hub_crds(workload_fleet)
    async with running_controller(
        workload_fleet,
        hub_id="itest-workloads",
        log_dir=tmp_path_factory.mktemp("controller"),
        labels=LABELS,
    ) as proc:
        yield proc


@pytest.fixture
async def workload_ns(workload_fleet: LocalFleet) -> AsyncIterator[str]:
    name = f"t-work-{secrets.token_hex(3)}"
    for cluster in workload_fleet.clusters.values():
        await create_namespace(cluster, name)
    yield name
    for cluster in workload_fleet.clusters.values():
        await delete_namespace(cluster, name)
