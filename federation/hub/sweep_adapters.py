"""The adapters of the sweep (`federation.hub.sweep`) to the real hub, members and policies.

The sweep's decisions take narrow interfaces so they are tested without a cluster; these are
the implementations the hub controller hands it: template presence from the controller's
informers or the hub itself, our copies in a member by a metadata-only list selected by our
hub label, and a policy's deletionPolicy from the policy cache.
"""

from __future__ import annotations

from federation.api.propagation import DeletionPolicy, PolicyLike
from federation.clusters import ClusterRegistry
from federation.errors import ClusterUnreachableError, KubeError, NotFoundError
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.policies import PolicyCache
from federation.hub.sweep import MemberCopies, Meta, Orphans, Presence
from federation.hub.templates import TemplateWatcher
from federation.kube import GVK, Discovery, KubeClient
from federation.translate import OWNERSHIP

_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class HubLookup:
    """`HubTemplates` over the controller's template informers, and the hub itself."""

    def __init__(self, *, templates: TemplateWatcher, hub: KubeClient, discovery: Discovery) -> None:
        self.templates = templates
        self.hub = hub
        self.discovery = discovery

    def kinds(self) -> set[GVK]:
        return self.templates.kinds

    async def presence(self, key: ResourceKey, *, authoritative: bool) -> Presence:
        informer = self.templates.informer_for(key.group, key.kind)
        if not authoritative and informer is not None and informer.has_synced:
            return Presence.PRESENT if self.templates.get(key) is not None else Presence.ABSENT_CACHED
        res = next(
            (r for r in self.discovery.cached() if (r.group, r.kind) == (key.group, key.kind)),
            None,
        )
        if res is None:
            return Presence.UNKNOWN  # not served (as far as discovery knows): conclude nothing
        try:
            # A list selecting the one name (a consistent read): `list` is what the shipped
            # RBAC grants on templates, `get` is not.
            found = await self.hub.list(
                res,
                (key.namespace or None) if res.namespaced else None,
                field_selector=f"metadata.name={key.name}",
            )
        except (KubeError, ClusterUnreachableError):
            return Presence.UNKNOWN
        return Presence.PRESENT if found.get("items") else Presence.ABSENT


class KubeMemberCopies:
    """`MemberCopies` of one connected member: metadata-only lists selected by our hub label."""

    def __init__(self, *, name: str, client: KubeClient, discovery: Discovery, hub_id: str) -> None:
        self.name = name
        self.client = client
        self.discovery = discovery
        self.hub_id = hub_id

    async def list_ours(self, gvk: GVK) -> list[Meta]:
        res = await self.discovery.resource_for(gvk)
        listing = await self.client.request(
            "GET",
            res.collection_path(None),
            params={"labelSelector": f"{OWNERSHIP.hub_label}={self.hub_id}"},
            accept=_METADATA_LIST,
            verb="list",
            what=f"list {res.name} (sweep)",
        )
        return [item.get("metadata") or {} for item in listing.get("items") or []]

    async def remove(self, gvk: GVK, meta: Meta, *, orphan: bool) -> None:
        res = await self.discovery.resource_for(gvk)
        name, namespace = str(meta["name"]), meta.get("namespace") if res.namespaced else None
        try:
            if orphan:
                labels = {k: None for k in (meta.get("labels") or {}) if k.startswith(OWNERSHIP.prefix)}
                annotations = {
                    k: None for k in (meta.get("annotations") or {}) if k.startswith(OWNERSHIP.prefix)
                }
                await self.client.patch(
                    res,
                    name,
                    {
                        "metadata": {
                            "labels": labels,
                            "annotations": annotations,
                            "uid": meta.get("uid"),
                        }
                    },
                    namespace=namespace,
                )
            else:
                await self.client.delete(res, name, namespace, uid=str(meta.get("uid") or "") or None)
        except NotFoundError:
            return  # gone already


def member_copies(registry: ClusterRegistry, hub_id: str) -> list[MemberCopies]:
    """The connected, ready members, to be listed (a NotReady member is swept once back)."""
    out: list[MemberCopies] = []
    for m in registry.members():
        if m.client is not None and m.discovery is not None and registry.is_ready(m.name):
            out.append(KubeMemberCopies(name=m.name, client=m.client, discovery=m.discovery, hub_id=hub_id))
    return out


def policy_orphans(policies: PolicyCache) -> Orphans:
    """Whether a policy that still exists says deletionPolicy Orphan (a gone one: delete)."""

    def orphans(key: PolicyKey) -> bool:
        policy = policies.get(key)
        return isinstance(policy, PolicyLike) and policy.spec.deletion_policy == DeletionPolicy.ORPHAN

    return orphans
