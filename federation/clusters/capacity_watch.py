"""Watch one member's nodes and pods and report its capacity when it changes enough to matter.

Two informers on the member (all nodes; all pods, trimmed to node, phase and requests by
`capacity.trim_pod` so a member's thousands of pods cost little memory), summed at most every
`interval` seconds (`capacity.summarize`). A pod starting or ending changes `available` a
little; re-placing every template for each would be a storm, so the listener hears of a change
only when it matters: the first figure, a node count or readiness change, or free CPU, memory or
pods moving by `threshold` of the allocatable since the last report.

A member whose credentials may not list nodes or pods (deploy/rbac/member-narrow without the
capacity rule) has no measured capacity: said once, and placement keeps the reported figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from federation.clusters.capacity import Capacity, summarize, trim_node, trim_pod
from federation.errors import ApiError, KubeError
from federation.informers import Handlers, Informer, InformerFactory
from federation.informers.transform import Transform
from federation.kube import GVK, Discovery
from federation.placement import Allocatable

log = logging.getLogger(__name__)

NODE = GVK("", "v1", "Node")
POD = GVK("", "v1", "Pod")

CapacityListener = Callable[[Capacity], None]


def significant(old: Capacity | None, new: Capacity, threshold: float) -> bool:
    """Whether placement should hear of `new` after `old` (see the module docstring)."""
    if old is None:
        return True
    if (old.nodes, old.ready_nodes) != (new.nodes, new.ready_nodes):
        return True
    for field in ("cpu_millicores", "memory_bytes", "pods"):
        whole = getattr(new.allocatable, field) or 0
        moved = abs((getattr(new.available, field) or 0) - (getattr(old.available, field) or 0))
        if whole != (getattr(old.allocatable, field) or 0) or (whole and moved >= threshold * whole):
            return True
    return False


class CapacityWatcher:
    def __init__(
        self,
        cluster: str,
        *,
        factory: InformerFactory,
        discovery: Discovery,
        listener: CapacityListener,
        interval: float = 5.0,
        threshold: float = 0.1,
    ) -> None:
        self.cluster = cluster
        self.factory = factory
        self.discovery = discovery
        self.listener = listener
        self.interval = interval
        self.threshold = threshold
        self.current: Capacity | None = None
        self._reported: Capacity | None = None
        self._dirty = anyio.Event()

    def _mark(self, *_: object) -> None:
        self._dirty.set()

    async def run(self) -> None:
        """Until cancelled; returns early (capacity unknown) when the member refuses the reads."""
        try:
            # Asked once, so a refusal is said once (an informer would retry it for ever).
            for gvk in (NODE, POD):
                await self.discovery.client.list(await self.discovery.resource_for(gvk), limit=1)
        except KubeError as exc:
            why = (
                "its credentials may not list nodes and pods (deploy/rbac/member)"
                if isinstance(exc, ApiError) and exc.status == 403
                else str(exc)
            )
            log.warning(
                "cluster %s: capacity unknown: %s", self.cluster, why, extra={"cluster": self.cluster}
            )
            return
        nodes = await self._informer(NODE, trim_node)
        pods = await self._informer(POD, trim_pod)
        try:
            await nodes.wait_for_sync()
            await pods.wait_for_sync()
            while True:
                self._dirty = anyio.Event()
                self._report(summarize(nodes.store.objects(), pods.store.objects()))
                await self._dirty.wait()
                await anyio.sleep(self.interval)  # a batching window: one sum for every event in it
        finally:
            self.factory.release(nodes)
            self.factory.release(pods)

    async def _informer(self, gvk: GVK, transform: Transform) -> Informer:
        res = await self.discovery.resource_for(gvk)
        informer = self.factory.informer(res, transform=transform)
        informer.add_handler(
            Handlers(on_add=self._mark, on_update=self._mark, on_delete=self._mark), resync=False
        )
        return informer

    def _report(self, capacity: Capacity) -> None:
        self.current = capacity
        if significant(self._reported, capacity, self.threshold):
            self._reported = capacity
            self.listener(capacity)


def as_quantities(a: Allocatable) -> dict[str, str]:
    """An `Allocatable` as a Kubernetes resource list (MemberCluster status, the API)."""
    out = {}
    if a.cpu_millicores is not None:
        cores, milli = divmod(a.cpu_millicores, 1000)
        out["cpu"] = str(cores) if not milli else f"{a.cpu_millicores}m"
    if a.memory_bytes is not None:
        out["memory"] = _bytes(a.memory_bytes)
    if a.pods is not None:
        out["pods"] = str(a.pods)
    return out


def _bytes(n: int) -> str:
    """The largest binary suffix that says `n` exactly (as kubectl shows memory)."""
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
