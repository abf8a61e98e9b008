"""The federation.io CRDs on a hub: installed or upgraded in place, then waited for.

For `federation run --install-crds` (someone trying the controller on a fresh hub) and the local
fleets; a production install applies ``deploy/crds/`` with the rest of its manifests instead,
so that the controller's own RBAC need not include writing CustomResourceDefinitions.
"""

from __future__ import annotations

import anyio
import yaml

from federation.api import render_crds
from federation.errors import NotFoundError
from federation.kube import GVK, Discovery, KubeClient

FIELD_MANAGER = "federation-crds"
CRD_GVK = GVK("apiextensions.k8s.io", "v1", "CustomResourceDefinition")


async def install_crds(hub: KubeClient, *, timeout: float = 60.0) -> list[str]:
    """Apply every federation.io CRD (server-side, so a newer definition upgrades an older one)
    and wait until the hub serves them; the names applied."""
    disco = Discovery(hub, min_refresh_interval=0)
    crds = await disco.resource_for(CRD_GVK)
    kinds, names = [], []
    for text in render_crds().values():
        crd = yaml.safe_load(text)
        await hub.apply(crds, crd, field_manager=FIELD_MANAGER, force=True)
        names.append(str(crd["metadata"]["name"]))
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
    return names
