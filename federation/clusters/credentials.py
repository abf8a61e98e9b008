"""A member's credentials: the kubeconfig its MemberCluster names, read from a hub Secret.

A trust boundary (issue 10): whoever may write a MemberCluster must not make the controller
read, and use as a member's credentials, a Secret of a tenant's namespace. So the namespace is
checked *before* anything is read, against the controller's credentials namespaces, and every
refusal names the field at fault. The Secrets named (valid or not) are never propagated; the
registry keeps that list (`ClusterRegistry.credential_refs`).
"""

from __future__ import annotations

import base64
from collections.abc import Set

from federation.api import MemberCluster
from federation.errors import ApiError, FederationError
from federation.kube import GVK, Discovery, KubeClient

SECRET_GVK = GVK("", "v1", "Secret")


async def connect_from_secret(
    mc: MemberCluster,
    *,
    hub: KubeClient | None,
    hub_discovery: Discovery | None,
    allowed: Set[str] | None,
) -> KubeClient:
    """A client of the member `mc` describes; FederationError saying why not. `allowed`: the
    namespaces member kubeconfig Secrets may be read from (None: any)."""
    name = mc.metadata.name
    ref = mc.spec.kubeconfig_secret_ref
    if ref is None:
        raise FederationError(f"MemberCluster {name}: spec.kubeconfigSecretRef is not set")
    if allowed is not None and ref.namespace not in allowed:
        raise FederationError(
            f"MemberCluster {name}: spec.kubeconfigSecretRef.namespace: {ref.namespace} "
            f"is not a credentials namespace of this controller ({', '.join(sorted(allowed))}); "
            "member kubeconfigs are read only from those",
            hint="move the Secret, or start the controller with --credentials-namespace",
        )
    assert hub is not None and hub_discovery is not None
    secrets = await hub_discovery.resource_for(SECRET_GVK)
    try:
        secret = await hub.get(secrets, ref.name, ref.namespace)
    except ApiError as exc:
        raise FederationError(
            f"MemberCluster {name}: spec.kubeconfigSecretRef: Secret {ref.namespace}/{ref.name}: {exc}"
        ) from exc
    data = (secret.get("data") or {}).get(ref.key)
    if data is None:
        raise FederationError(
            f"MemberCluster {name}: spec.kubeconfigSecretRef.key: "
            f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}"
        )
    return await KubeClient.connect(
        name,
        kubeconfig_data=base64.b64decode(data).decode(),
        context=mc.spec.context,
        source=f"Secret {ref.namespace}/{ref.name} key {ref.key}",
    )
