"""A member's capacity, from its nodes and the pods on them: what placement divides by.

Pure: `summarize(nodes, pods)` takes the member's Node and Pod objects (as the capacity
informers keep them, `trim_node`/`trim_pod`) and returns what the fleet admin reads on the
MemberCluster and what placement uses:

- ``allocatable``: summed over the nodes that can take new pods (Ready and not cordoned);
- ``available``: that minus what the pods bound to those nodes request (pods that finished
  hold nothing) — Karmada's cluster resource summary, measured the same way;
- ``nodes``/``ready_nodes``: a cluster whose nodes all stopped reporting runs nothing, however
  healthy its apiserver looks (`federation.clusters.health` taints it).

A pod's request is what the scheduler counts: the sum of its containers' requests, or an init
container's if larger, plus its overhead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.api.quantity import millicores, whole
from federation.kube import Obj as KubeObj
from federation.placement import Allocatable
from federation.translate.podspec import pod_spec

Obj = Mapping[str, Any]

#: Pods in these phases hold no resources on their node.
FINISHED = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class Capacity:
    """One member's measured capacity (every figure a sum over its schedulable nodes)."""

    nodes: int
    ready_nodes: int
    allocatable: Allocatable
    available: Allocatable

    @property
    def no_ready_nodes(self) -> bool:
        """It has nodes and none of them is Ready: nothing it runs is running."""
        return self.nodes > 0 and self.ready_nodes == 0


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _schedulable(node: Obj) -> bool:
    return node_ready(node) and not (node.get("spec") or {}).get("unschedulable")


def _resources(values: Obj | None) -> tuple[int, int, int]:
    """(millicores, bytes, pods) of a resource list; an unreadable quantity counts as 0."""
    values = values or {}
    out = []
    for key, parse in (("cpu", millicores), ("memory", whole), ("pods", whole)):
        try:
            out.append(parse(values[key]) if key in values else 0)
        except (ValueError, TypeError):
            out.append(0)
    return out[0], out[1], out[2]


def pod_request(pod: Obj) -> tuple[int, int]:
    """(millicores, bytes) the scheduler counts for one pod."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for c in spec.get("containers") or []:
        c_cpu, c_mem, _ = _resources((c.get("resources") or {}).get("requests"))
        cpu, mem = cpu + c_cpu, mem + c_mem
    for c in spec.get("initContainers") or []:
        i_cpu, i_mem, _ = _resources((c.get("resources") or {}).get("requests"))
        cpu, mem = max(cpu, i_cpu), max(mem, i_mem)
    o_cpu, o_mem, _ = _resources(spec.get("overhead"))
    return cpu + o_cpu, mem + o_mem


def summarize(nodes: Iterable[Obj], pods: Iterable[Obj]) -> Capacity:
    total = ready = 0
    cpu = mem = count = 0
    open_nodes: set[str] = set()
    for node in nodes:
        total += 1
        ready += node_ready(node)
        if not _schedulable(node):
            continue
        open_nodes.add(str((node.get("metadata") or {}).get("name")))
        n_cpu, n_mem, n_pods = _resources((node.get("status") or {}).get("allocatable"))
        cpu, mem, count = cpu + n_cpu, mem + n_mem, count + n_pods
    used_cpu = used_mem = used_pods = 0
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") not in open_nodes:
            continue
        if (pod.get("status") or {}).get("phase") in FINISHED:
            continue
        p_cpu, p_mem = pod_request(pod)
        used_cpu, used_mem, used_pods = used_cpu + p_cpu, used_mem + p_mem, used_pods + 1
    return Capacity(
        nodes=total,
        ready_nodes=ready,
        allocatable=Allocatable(cpu_millicores=cpu, memory_bytes=mem, pods=count),
        available=Allocatable(
            cpu_millicores=max(0, cpu - used_cpu),
            memory_bytes=max(0, mem - used_mem),
            pods=max(0, count - used_pods),
        ),
    )


def trim_node(obj: KubeObj) -> KubeObj:
    """What a Node informer keeps: name, unschedulable, allocatable, the Ready condition."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {
        "metadata": {"name": meta.get("name"), "resourceVersion": meta.get("resourceVersion")},
        "spec": {"unschedulable": (obj.get("spec") or {}).get("unschedulable")},
        "status": {"allocatable": status.get("allocatable"), "conditions": ready},
    }


def trim_pod(obj: KubeObj) -> KubeObj:
    """What a Pod informer keeps: its node, phase and requests (not its spec, env or status)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}

    def requests(containers: Any) -> list[dict[str, Any]]:
        return [
            {"resources": {"requests": (c.get("resources") or {}).get("requests")}} for c in containers or []
        ]

    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": requests(spec.get("containers")),
            "initContainers": requests(spec.get("initContainers")),
            "overhead": spec.get("overhead"),
        },
        "status": {"phase": (obj.get("status") or {}).get("phase")},
    }


def per_replica(template: Obj) -> tuple[int, int] | None:
    """(millicores, bytes) one replica of a workload template requests; None without a pod
    template or when it requests nothing (placement then counts pods only)."""
    spec = pod_spec(template)
    if spec is None:
        return None
    cpu, mem = pod_request({"spec": spec})
    return (cpu, mem) if cpu or mem else None
