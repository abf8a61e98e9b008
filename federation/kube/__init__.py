"""The thin layer over the Kubernetes client: the only package that imports kubernetes_asyncio.

One `KubeClient` per cluster (from a kubeconfig file + context, or kubeconfig contents held in
a Secret), raw JSON requests and watches parsed with orjson, `Discovery` from apiVersion+kind
to resource, and client errors translated into `federation.errors`.
"""

from federation.kube.client import KubeClient, api_error
from federation.kube.config import ConnectionConfig, load_config
from federation.kube.discovery import Discovery
from federation.kube.resources import (
    GVK,
    Obj,
    ResourceInfo,
    describe,
    object_key,
    resource_version,
    split_key,
)

__all__ = [
    "GVK",
    "ConnectionConfig",
    "Discovery",
    "KubeClient",
    "Obj",
    "ResourceInfo",
    "api_error",
    "describe",
    "load_config",
    "object_key",
    "resource_version",
    "split_key",
]
