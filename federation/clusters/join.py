"""Join a cluster to the fleet (a kubeconfig Secret + a MemberCluster on the hub), or take it out.

The kubeconfig stored in the Secret is *flattened*: one context, certificates embedded, so it
works from inside the hub (where the paths of the machine that joined do not exist).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import yaml

from federation.clusters.drain import force_patch
from federation.errors import ConfigError, ConflictError, FederationError, NotFoundError
from federation.kube import GVK, Discovery, KubeClient, Obj, ResourceInfo

FIELD_MANAGER = "federation-join"
DEFAULT_SECRETS_NAMESPACE = "fleet-system"
_FILE_FIELDS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
}


def flatten_kubeconfig(path: Path, *, context: str | None, name: str) -> dict[str, Any]:
    """One context of a kubeconfig, renamed `name`, with every file it names embedded."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"kubeconfig {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"kubeconfig {path}: not a kubeconfig (expected a YAML mapping)")
    ctx_name = context or config.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    if ctx_name not in contexts:
        known = ", ".join(sorted(str(k) for k in contexts)) or "none"
        raise ConfigError(f"kubeconfig {path}: no context {ctx_name!r} (contexts: {known})")
    ctx = contexts[ctx_name]
    clusters = {c.get("name"): dict(c.get("cluster") or {}) for c in config.get("clusters") or []}
    users = {u.get("name"): dict(u.get("user") or {}) for u in config.get("users") or []}
    cluster, user = clusters.get(ctx.get("cluster")), users.get(ctx.get("user"), {})
    if cluster is None:
        raise ConfigError(
            f"kubeconfig {path}: context {ctx_name!r} names cluster {ctx.get('cluster')!r}, "
            "which is not defined"
        )
    for section in (cluster, user):
        for field, data_field in _FILE_FIELDS.items():
            if field in section:
                file = Path(section.pop(field)).expanduser()
                if not file.is_absolute():
                    file = path.parent / file
                try:
                    section[data_field] = base64.b64encode(file.read_bytes()).decode()
                except OSError as exc:
                    raise ConfigError(f"kubeconfig {path}: {field} {file}: {exc}") from exc
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


async def join(
    hub: KubeClient,
    *,
    name: str,
    kubeconfig: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    secrets_namespace: str = DEFAULT_SECRETS_NAMESPACE,
) -> None:
    """Write the kubeconfig Secret and the MemberCluster (server-side apply: re-joining updates)."""
    disco = Discovery(hub)
    try:
        clusters = await disco.resource_for(GVK("federation.io", "v1alpha1", "MemberCluster"))
    except NotFoundError as exc:
        raise ConfigError(
            "the hub does not serve federation.io/v1alpha1 MemberCluster",
            hint="kubectl apply -f deploy/crds/",
        ) from exc
    namespaces = await disco.resource_for(GVK("", "v1", "Namespace"))
    secrets = await disco.resource_for(GVK("", "v1", "Secret"))
    await hub.apply(
        namespaces,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": secrets_namespace}},
        field_manager=FIELD_MANAGER,
    )
    text = yaml.safe_dump(dict(kubeconfig))
    await hub.apply(
        secrets,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": secrets_namespace,
                "labels": {"federation.io/member-cluster": name},
            },
            "data": {"kubeconfig": base64.b64encode(text.encode()).decode()},
        },
        field_manager=FIELD_MANAGER,
        force=True,
    )
    await hub.apply(
        clusters,
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "MemberCluster",
            "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {
                "kubeconfigSecretRef": {"namespace": secrets_namespace, "name": name, "key": "kubeconfig"},
                "taints": [dict(t) for t in taints],
            },
        },
        field_manager=FIELD_MANAGER,
        force=True,
    )


async def unjoin(
    hub: KubeClient,
    *,
    name: str,
    secrets_namespace: str = DEFAULT_SECRETS_NAMESPACE,
    force: bool = False,
    timeout: float = 300.0,
    progress: Callable[[str], None] = lambda _m: None,
) -> bool:
    """Delete the MemberCluster, wait until the controller has drained it (deleted the copies
    it propagated there, see federation/clusters/drain.py), then delete its kubeconfig Secret
    (the controller needs it to drain). Returns whether the cluster was a member.

    `force` removes the drain finalizer first: the object goes at once and the copies stay
    (for a cluster that will never answer again)."""
    disco = Discovery(hub)
    clusters = await disco.resource_for(GVK("federation.io", "v1alpha1", "MemberCluster"))
    secrets = await disco.resource_for(GVK("", "v1", "Secret"))
    secret_ns, secret_name = secrets_namespace, name
    try:
        obj = await hub.get(clusters, name)
    except NotFoundError:
        obj = None
    if obj is not None:
        ref = (obj.get("spec") or {}).get("kubeconfigSecretRef") or {}
        secret_ns, secret_name = ref.get("namespace") or secret_ns, ref.get("name") or secret_name
        if force:
            await _mark_forced(hub, clusters, obj)
        with contextlib.suppress(NotFoundError):
            await hub.delete(clusters, name)
        await _wait_gone(hub, clusters, name, timeout=timeout, progress=progress)
    with contextlib.suppress(NotFoundError):
        await hub.delete(secrets, secret_name, secret_ns)
    return obj is not None


async def _mark_forced(hub: KubeClient, clusters: ResourceInfo, obj: Obj) -> None:
    """The force patch is conditional on the resourceVersion (the controller writes the
    object's status meanwhile): on a conflict, re-read and try again."""
    name = str(obj["metadata"]["name"])
    for _ in range(5):
        try:
            await hub.patch(clusters, name, force_patch(obj))
            return
        except NotFoundError:
            return
        except ConflictError:
            obj = await hub.get(clusters, name)
    raise FederationError(f"MemberCluster {name}: kept changing while marking it for removal; try again")


async def _wait_gone(
    hub: KubeClient, clusters: ResourceInfo, name: str, *, timeout: float, progress: Callable[[str], None]
) -> None:
    deadline = anyio.current_time() + timeout
    told = False
    while True:
        try:
            obj = await hub.get(clusters, name)
        except NotFoundError:
            return
        if not told:
            progress(f"waiting for the controller to delete what it propagated to {name} …")
            told = True
        if anyio.current_time() > deadline:
            ready: Mapping[str, Any] = next(
                (c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
                {},
            )
            state = f"; Ready={ready.get('status')}: {ready.get('message')}" if ready else ""
            raise FederationError(
                f"cluster {name}: still draining after {timeout:.0f}s{state}",
                hint=(
                    "is the controller running and the cluster reachable? `federation clusters unjoin "
                    f"{name} --force` removes it now and leaves its copies in place"
                ),
            )
        await anyio.sleep(0.5)  # polling the hub under a deadline
