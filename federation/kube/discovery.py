"""Discovery: which resource serves a given apiVersion + kind in one cluster.

Uses aggregated discovery (one request for all groups, Kubernetes 1.30+) and falls back to
per-group-version lists for older servers. The answer is cached; a lookup that misses
refreshes the cache (at most once per `min_refresh_interval`), which is how a CRD created
after start-up becomes known without restarting anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import anyio

from federation.errors import ApiError, KindNotServedError
from federation.kube.client import KubeClient
from federation.kube.resources import GVK, ResourceInfo

_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


class Discovery:
    """apiVersion+kind → `ResourceInfo` for one cluster, refreshed on a miss."""

    def __init__(
        self,
        client: KubeClient,
        *,
        min_refresh_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._by_gvk: dict[GVK, ResourceInfo] = {}
        self._by_name: dict[str, ResourceInfo] = {}
        self._loaded_at: float | None = None
        self._lock = anyio.Lock()

    async def refresh(self) -> None:
        """Reload every group and version from the apiserver."""
        async with self._lock:
            infos = await self._aggregated()
            if infos is None:
                infos = await self._legacy()
            by_gvk: dict[GVK, ResourceInfo] = {}
            by_name: dict[str, ResourceInfo] = {}
            for info in infos:
                by_gvk.setdefault(info.gvk, info)
                by_name.setdefault(info.name, info)
            self._by_gvk, self._by_name = by_gvk, by_name
            self._loaded_at = self._clock()

    async def resource_for(self, gvk: GVK) -> ResourceInfo:
        """The resource that serves `gvk`; raises KindNotServedError naming it if none does."""
        info = self._by_gvk.get(gvk)
        if info is not None:
            return info
        if self._loaded_at is None or self._clock() - self._loaded_at >= self.min_refresh_interval:
            await self.refresh()
            info = self._by_gvk.get(gvk)
            if info is not None:
                return info
        raise KindNotServedError(
            f"cluster {self.client.cluster}: no resource serves {gvk.api_version} {gvk.kind} "
            "(is its CRD installed, and its API version served?)",
            api_version=gvk.api_version,
            kind=gvk.kind,
            cluster=self.client.cluster,
        )

    async def resource_for_object(self, obj: dict[str, Any]) -> ResourceInfo:
        return await self.resource_for(GVK.of(obj))

    def cached(self) -> Iterable[ResourceInfo]:
        return self._by_gvk.values()

    def forget(self) -> None:
        """Drop the cache, e.g. when a CRD is deleted; the next lookup reloads it."""
        self._loaded_at = None
        self._by_gvk, self._by_name = {}, {}

    # -- loading -------------------------------------------------------------------------

    async def _aggregated(self) -> list[ResourceInfo] | None:
        infos: list[ResourceInfo] = []
        for path in ("/api", "/apis"):
            doc = await self.client.request(
                "GET", path, accept=_AGGREGATED, verb="discovery", what=f"discovery {path}"
            )
            if doc.get("kind") != "APIGroupDiscoveryList":
                return None
            for group in doc.get("items") or []:
                group_name = (group.get("metadata") or {}).get("name", "")
                for version in group.get("versions") or []:
                    v = version.get("version", "")
                    for r in version.get("resources") or []:
                        kind = (r.get("responseKind") or {}).get("kind")
                        if not kind:
                            continue
                        subresources = {s.get("subresource") for s in r.get("subresources") or []}
                        infos.append(
                            ResourceInfo(
                                group=group_name,
                                version=v,
                                kind=kind,
                                plural=r["resource"],
                                namespaced=r.get("scope") == "Namespaced",
                                verbs=frozenset(r.get("verbs") or ()),
                                has_status="status" in subresources,
                            )
                        )
        return infos

    async def _legacy(self) -> list[ResourceInfo]:
        group_versions: list[tuple[str, str, str]] = []
        core = await self.client.request("GET", "/api", verb="discovery", what="discovery /api")
        group_versions += [("", v, f"/api/{v}") for v in core.get("versions") or []]
        groups = await self.client.request("GET", "/apis", verb="discovery", what="discovery /apis")
        for g in groups.get("groups") or []:
            for v in g.get("versions") or []:
                group_versions.append((g["name"], v["version"], f"/apis/{v['groupVersion']}"))
        infos: list[ResourceInfo] = []
        for group, version, path in group_versions:
            try:
                doc = await self.client.request("GET", path, verb="discovery", what=f"discovery {path}")
            except ApiError:
                continue  # an unavailable aggregated API must not hide every other group
            resources = doc.get("resources") or []
            statuses = {r["name"].split("/")[0] for r in resources if r["name"].endswith("/status")}
            for r in resources:
                if "/" in r["name"]:
                    continue
                infos.append(
                    ResourceInfo(
                        group=group,
                        version=version,
                        kind=r["kind"],
                        plural=r["name"],
                        namespaced=bool(r.get("namespaced")),
                        verbs=frozenset(r.get("verbs") or ()),
                        has_status=r["name"] in statuses,
                    )
                )
        return infos
