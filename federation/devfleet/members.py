"""Make a local fleet's members known to its hub: the CRDs, and a kubeconfig Secret plus a
`MemberCluster` per member (what `federation clusters join` does for a real cluster)."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import yaml

from federation.api import render_crds
from federation.devfleet.backend import ClusterInfo
from federation.errors import NotFoundError
from federation.kube import GVK, Discovery, KubeClient

FIELD_MANAGER = "federation-devfleet"
SECRETS_NAMESPACE = "fleet-system"


async def install_crds(hub: KubeClient, *, timeout: float = 60.0) -> None:
    """Apply every federation.io CRD and wait until the hub serves them."""
    disco = Discovery(hub, min_refresh_interval=0)
    crds = await disco.resource_for(GVK("apiextensions.k8s.io", "v1", "CustomResourceDefinition"))
    kinds = []
    for text in render_crds().values():
        crd = yaml.safe_load(text)
        await hub.apply(crds, crd, field_manager=FIELD_MANAGER, force=True)
        kinds.append(
            GVK(crd["spec"]["group"], crd["spec"]["versions"][0]["name"], crd["spec"]["names"]["kind"])
        )
    with anyio.fail_after(timeout):
        for gvk in kinds:
            while True:
                try:
                    await disco.resource_for(gvk)
                    break
                except NotFoundError:
                    await anyio.sleep(0.2)  # discovery catches up with an Established CRD


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
