"""Test helpers that talk to the fleet's apiservers with kubernetes-asyncio directly.

Tests use the client library itself (not our own `federation.kube` layer) when they play a
fleet admin or a member-side actor, so a bug in our layer cannot hide itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from federation.devfleet import ClusterInfo, LocalFleet

T = TypeVar("T")


@contextlib.asynccontextmanager
async def api_client(cluster: ClusterInfo) -> AsyncIterator[client.ApiClient]:
    api = await config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    try:
        yield api
    finally:
        await api.close()


async def create_namespace(cluster: ClusterInfo, name: str) -> None:
    async with api_client(cluster) as api:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})


async def delete_namespace(cluster: ClusterInfo, name: str) -> None:
    async with api_client(cluster) as api:
        with contextlib.suppress(ApiException):
            await client.CoreV1Api(api).delete_namespace(name)


async def delete_policies(cluster: ClusterInfo, namespace: str) -> None:
    """Delete every federation.io policy of `namespace` (no-op where the CRDs are not installed)."""
    async with api_client(cluster) as api:
        custom = client.CustomObjectsApi(api)
        for plural in ("propagationpolicies", "overridepolicies"):
            try:
                listed = await custom.list_namespaced_custom_object(
                    "federation.io", "v1alpha1", namespace, plural
                )
            except ApiException:
                continue
            for item in listed.get("items", []):
                with contextlib.suppress(ApiException):
                    await custom.delete_namespaced_custom_object(
                        "federation.io", "v1alpha1", namespace, plural, item["metadata"]["name"]
                    )


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns a truthy value or raises nothing; fail after `timeout`.

    This is how tests wait: on a condition with a deadline, never on a fixed sleep.
    """
    last: BaseException | None = None
    with anyio.move_on_after(timeout):
        while True:
            try:
                value = await check()
                if value:
                    return value
                last = None
            except AssertionError as exc:
                last = exc
            await anyio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))


def crd_manifest(group: str, kind: str, plural: str, *, scope: str = "Namespaced") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }


async def create_crd_and_wait(
    cluster: ClusterInfo, manifest: dict[str, Any], *, timeout: float = 30.0
) -> None:
    """Create a CRD and wait until the apiserver reports it Established and serves it."""
    name = manifest["metadata"]["name"]
    group = manifest["spec"]["group"]
    plural = manifest["spec"]["names"]["plural"]
    async with api_client(cluster) as api:
        ext = client.ApiextensionsV1Api(api)
        await ext.create_custom_resource_definition(manifest)

        async def established() -> bool:
            crd = await ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") != "True":
                return False
            # Established can precede the discovery/serving of the new resource by a moment.
            try:
                await client.CustomObjectsApi(api).list_cluster_custom_object(group, "v1", plural, limit=1)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        await eventually(established, timeout=timeout, what=f"CRD {name} established in {cluster.name}")


async def install_hub_crds(fleet: LocalFleet) -> None:
    """Every generated CRD installed on the fleet's hub (replacing an older copy) and served."""
    import yaml
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    from federation.api import GROUP, KINDS, VERSION, render_crds
    from federation.devfleet import HUB

    hub = fleet.clusters[HUB]
    async with api_client(hub) as api:
        ext = client.ApiextensionsV1Api(api)
        for text in render_crds().values():
            crd = yaml.safe_load(text)
            name = crd["metadata"]["name"]
            try:
                current = await ext.read_custom_resource_definition(name)
                crd["metadata"]["resourceVersion"] = current.metadata.resource_version
                await ext.replace_custom_resource_definition(name, crd)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                await ext.create_custom_resource_definition(crd)

        custom = client.CustomObjectsApi(api)

        async def served() -> bool:
            for model in KINDS.values():
                try:
                    await custom.list_cluster_custom_object(GROUP, VERSION, model.crd.plural, limit=1)
                except ApiException as exc:
                    if exc.status == 404:
                        return False
                    raise
            return True

        await eventually(served, timeout=60, what="federation.io CRDs served by the hub")
