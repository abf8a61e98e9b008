"""Make a local fleet's members known to its hub: the CRDs, and a kubeconfig Secret plus a
`MemberCluster` per member (what `federation clusters join` does for a real cluster)."""

from __future__ import annotations

from collections.abc import Mapping

from federation.devfleet.backend import ClusterInfo
from federation.kube import KubeClient

FIELD_MANAGER = "federation-devfleet"
SECRETS_NAMESPACE = "fleet-system"


async def join_members(
    hub: KubeClient, members: Mapping[str, ClusterInfo], *, labels: Mapping[str, Mapping[str, str]]
) -> None:
    """A kubeconfig Secret in `fleet-system` and a MemberCluster for each member."""
    from federation.clusters.join import flatten_kubeconfig, join

    for name, info in members.items():
        kubeconfig = flatten_kubeconfig(info.kubeconfig, context=info.context, name=name)
        await join(
            hub,
            name=name,
            kubeconfig=kubeconfig,
            labels=labels.get(name, {}),
            secrets_namespace=SECRETS_NAMESPACE,
        )
