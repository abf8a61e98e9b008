"""Simulated nodes of a local fleet's workload members, and the faults a test does to them.

A member started with workloads (`LocalFleet(workloads=True)`) runs a controller-manager, a
scheduler and kwok beside its apiserver; kwok plays the kubelet of every Node annotated
``kwok.x-k8s.io/node=fake``: it marks it Ready, renews its lease, and takes the pods bound to
it through Pending → Running → Ready (and Succeeded, for a Job's). The nodes themselves are
plain Node objects written here, with the capacity and labels the fleet's options say — so a
member's capacity is a number a test chose, and everything else (pods placed by the real
scheduler, replicas counted by the real controllers) follows from it.

Faults, as a fleet admin would meet them:
- `nodes_down`: every node of the member stops reporting (its kwok, the kubelets, stops: no
  lease is renewed, as when the kubelets or the network die); after the controller-manager's
  grace period the nodes are NotReady, tainted, and their pods NotReady — the apiserver itself
  stays up.
- `nodes_up`: they report again.
- `cordon`: unschedulable (a cluster draining or full for new pods).
- `add_nodes` / `remove_nodes`: capacity changes.

The calls are synchronous (tests and the demo call them between steps); each opens its own
client in a worker thread, so they work whether or not the caller runs an event loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from federation.clusters.capacity import node_ready
from federation.errors import DevFleetError, NotFoundError
from federation.kube import GVK, Discovery, KubeClient, Obj

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_MANAGED = "fake"
#: Every simulated node carries it, so a test or a person can select them.
NODE_LABEL = "federation.io/simulated-node"
NODE = GVK("", "v1", "Node")

T = TypeVar("T")


@dataclass(frozen=True)
class NodeShape:
    """What each simulated node of a member offers the scheduler."""

    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)


def node_names(cluster: str, count: int, *, first: int = 1) -> list[str]:
    return [f"{cluster}-node-{i}" for i in range(first, first + count)]


def node_manifest(cluster: str, name: str, shape: NodeShape) -> dict[str, Any]:
    """A Node kwok will play the kubelet of (its status: what a kubelet would register)."""
    resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: KWOK_MANAGED, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                NODE_LABEL: cluster,
                **shape.labels,
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
            "phase": "Running",
        },
    }


class FleetNodes:
    """The simulated nodes of the workload members of one running fleet."""

    def __init__(
        self,
        kubeconfig: Path,
        members: Sequence[str],
        kubelets: Callable[[str, bool], None] | None = None,
    ) -> None:
        """``kubelets(cluster, running)`` stops or starts the member's kwok (the fleet backend's)."""
        self.kubeconfig = kubeconfig
        self.members = list(members)
        self._kubelets = kubelets

    def _check(self, cluster: str) -> None:
        if cluster not in self.members:
            raise DevFleetError(
                f"cluster {cluster!r} runs no workloads"
                f" (workload members: {', '.join(self.members) or 'none'})",
                hint="start the fleet with workloads=True (federation dev up --nodes N)",
            )

    # -- what tests call ---------------------------------------------------------------

    def add_nodes(self, cluster: str, count: int, shape: NodeShape | None = None) -> list[str]:
        """Create `count` more nodes in `cluster`; their names."""
        self._check(cluster)
        shape = shape or NodeShape()

        async def add(client: KubeClient, res: Any) -> list[str]:
            existing = await self._names(client, res, cluster)
            first = 1 + max((int(n.rsplit("-", 1)[1]) for n in existing), default=0)
            names = node_names(cluster, count, first=first)
            for name in names:
                await client.create(res, node_manifest(cluster, name, shape))
            return names

        return self._run(cluster, add)

    def remove_nodes(self, cluster: str, names: Sequence[str] | None = None) -> list[str]:
        """Delete nodes (all of the cluster's simulated ones by default); their names."""
        self._check(cluster)

        async def remove(client: KubeClient, res: Any) -> list[str]:
            targets = list(names) if names is not None else await self._names(client, res, cluster)
            for name in targets:
                with contextlib.suppress(NotFoundError):  # gone already: what was asked
                    await client.delete(res, name)
            return targets

        return self._run(cluster, remove)

    def nodes_down(self, cluster: str) -> None:
        """Every node of `cluster` stops reporting (its kubelets, kwok, stop): NotReady after
        the controller-manager's grace period."""
        self._check(cluster)
        if self._kubelets is None:
            raise DevFleetError("this fleet's backend cannot stop a member's nodes")
        self._kubelets(cluster, False)

    def nodes_up(self, cluster: str) -> None:
        """The nodes of `cluster` report again."""
        self._check(cluster)
        if self._kubelets is None:
            raise DevFleetError("this fleet's backend cannot start a member's nodes")
        self._kubelets(cluster, True)

    def cordon(self, cluster: str, names: Sequence[str] | None = None, *, on: bool = True) -> list[str]:
        """Mark nodes unschedulable (`on=False`: schedulable again)."""
        self._check(cluster)

        async def cordon(client: KubeClient, res: Any) -> list[str]:
            targets = list(names) if names is not None else await self._names(client, res, cluster)
            for name in targets:
                await client.patch(res, name, {"spec": {"unschedulable": on or None}})
            return targets

        return self._run(cluster, cordon)

    def nodes(self, cluster: str) -> list[Obj]:
        """The cluster's simulated nodes as the apiserver has them."""
        self._check(cluster)

        async def get(client: KubeClient, res: Any) -> list[Obj]:
            listed = await client.list(res, label_selector=f"{NODE_LABEL}={cluster}")
            return list(listed.get("items") or [])

        return self._run(cluster, get)

    def wait_ready(self, cluster: str, *, ready: bool = True, timeout: float = 60.0) -> None:
        """Until every simulated node of `cluster` is Ready (or, `ready=False`, none is)."""
        self._check(cluster)

        async def wait(client: KubeClient, res: Any) -> None:
            states: dict[str, bool] = {}
            with anyio.move_on_after(timeout):
                while True:
                    listed = await client.list(res, label_selector=f"{NODE_LABEL}={cluster}")
                    states = {str(n["metadata"]["name"]): node_ready(n) for n in listed.get("items") or []}
                    if states and all(v == ready for v in states.values()):
                        return
                    await anyio.sleep(0.2)  # polling the apiserver for a condition, with a deadline
            raise DevFleetError(
                f"cluster {cluster}: nodes not {'Ready' if ready else 'NotReady'} within {timeout:.0f}s: "
                + (
                    ", ".join(f"{n} {'Ready' if r else 'NotReady'}" for n, r in sorted(states.items()))
                    or "none"
                )
            )

        self._run(cluster, wait)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    async def _names(client: KubeClient, res: Any, cluster: str) -> list[str]:
        listed = await client.list(res, label_selector=f"{NODE_LABEL}={cluster}")
        return sorted(str(n["metadata"]["name"]) for n in listed.get("items") or [])

    def _run(self, cluster: str, fn: Callable[[KubeClient, Any], Awaitable[T]]) -> T:
        async def main() -> T:
            client = await KubeClient.connect(
                cluster, kubeconfig=self.kubeconfig, context=cluster, timeout=30
            )
            try:
                res = await Discovery(client).resource_for(NODE)
                return await fn(client, res)
            finally:
                await client.close()

        return in_thread(lambda: anyio.run(main))


def in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a thread of its own and return its result (or raise its error): an event
    loop of its own, whatever the caller's thread is running."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=target, name="fleet-nodes", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


__all__ = ["FleetNodes", "NodeShape", "node_manifest", "node_names"]
