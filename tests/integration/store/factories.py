"""Rows for store tests: small, explicit, and easy to vary."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from federation.store import Decision, DesiredWork, ResourceId, ResourceRow, Store


def deployment(
    name: str, *, namespace: str = "default", replicas: int = 2, image: str = "nginx:1"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }


def content_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def resource_row(
    name: str, *, namespace: str = "default", resource_version: str = "1", **kw: Any
) -> ResourceRow:
    return ResourceRow(
        api_group="apps",
        api_version="apps/v1",
        kind="Deployment",
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        generation=1,
        resource_version=resource_version,
        template=deployment(name, namespace=namespace, **kw),
    )


def desired(cluster: str, manifest: dict[str, Any]) -> DesiredWork:
    return DesiredWork(cluster=cluster, desired=manifest, desired_hash=content_hash(manifest))


async def placed_resource(
    store: Store, name: str, clusters: list[str], *, replicas: int = 2, image: str = "nginx:1"
) -> ResourceId:
    """A resource placed on `clusters` (all chosen), with one pending work per cluster."""
    (rid,) = await store.upsert_resources([resource_row(name)])
    manifest = deployment(name, replicas=replicas, image=image)
    await store.save_placement(
        rid,
        policy_id=None,
        decisions=[Decision(cluster=c, chosen=True, replicas=replicas) for c in clusters],
        desired_works=[desired(c, manifest) for c in clusters],
    )
    return rid
