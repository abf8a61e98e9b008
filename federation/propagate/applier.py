"""Apply, delete or orphan one work in one member cluster, following the conflict rules.

The rules (DESIGN.md "Conflict resolution"), as this module enforces them:
1. An object already in the member that this hub did not create: `Abort` (default) writes
   nothing and reports a conflict; `Overwrite` adopts it with a forced server-side apply that
   stamps our ownership.
2. Drift in a field we manage: the hub wins (a forced apply restores it); the caller records
   the event with the diff. Retained fields are not in the desired manifest, so never touched.
3. An object stamped by another hub: always a conflict, never overwritten, never deleted.

Writes are server-side applies with field manager `federation`, skipped entirely when the live
object already carries the desired hash and its managed fields still match the baseline taken
after our last apply: a restart with nothing changed writes nothing.

The outcome says what happened; recording it (Postgres, events, metrics) is the caller's job.
Its drift diff is already fit to be recorded: sensitive values appear as keyed hashes and the
member's values are bounded (`federation.propagate.drift.redact_diff`); the unredacted diff
never leaves this module.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio

from federation.errors import (
    ApiError,
    ClusterUnreachableError,
    ConflictError,
    InvalidError,
    KindNotServedError,
    KubeError,
    NotFoundError,
)
from federation.kube import GVK, Discovery, KubeClient, Obj, ResourceInfo
from federation.propagate.drift import differences, project_object, projection_hash, redact_diff
from federation.translate import OWNERSHIP, Secrecy
from federation.translate.identity import Identity, identity_of

log = logging.getLogger(__name__)

FIELD_MANAGER = "federation"
NAMESPACE = GVK("", "v1", "Namespace")

#: Looks an object up in the member's informer cache: (gvk, namespace, name) → object or None.
CacheLookup = Callable[[GVK, str | None, str], Obj | None]


class Result(StrEnum):
    APPLIED = "applied"  # the member holds the desired state (written now or already)
    CONFLICT = "conflict"  # an object we may not touch is in the way
    FAILED = "failed"  # the member rejected it; permanent until the desired state changes
    RETRY = "retry"  # transient (unreachable, 5xx, 429, CRD not there yet): retry with backoff
    DELETED = "deleted"  # our copy is gone
    ORPHANED = "orphaned"  # our copy is left in place without our stamp


@dataclass(frozen=True)
class Outcome:
    result: Result
    message: str = ""
    member_resource_version: str | None = None
    baseline: str | None = None  # projection hash of the live object right after our apply
    wrote: bool = False
    adopted: bool = False
    drift: list[dict[str, Any]] = field(default_factory=list)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def owner_hub(obj: Mapping[str, Any]) -> str | None:
    labels = _meta(obj).get("labels") or {}
    value = labels.get(OWNERSHIP.hub_label)
    return str(value) if value is not None else None


def desired_hash(obj: Mapping[str, Any]) -> str | None:
    value = (_meta(obj).get("annotations") or {}).get(OWNERSHIP.hash_annotation)
    return str(value) if value is not None else None


def foreign_target(
    desired: Mapping[str, Any], expected: Identity | None, *, result: Result = Result.FAILED
) -> Outcome | None:
    """An outcome of `result` when `desired` names another object than the work's template.

    The translator already refuses every override that would change a copy's identity; this is
    the second line (DESIGN.md, trust boundaries): whatever reaches a member is written to, or
    deleted from, the template's own group, kind, namespace and name, or nothing is done at all.
    An apply fails; a deletion or orphaning (of a row written before this check existed) is done
    with, leaving the object it names untouched, so that the template's deletion is not blocked.
    """
    if expected is None:
        return None
    actual = identity_of(desired)
    if actual == expected:
        return None
    message = (
        f"refused: the manifest names {actual.describe()}, but this work copies {expected.describe()}; "
        "a copy's identity (group, kind, namespace, name) is always its template's"
    )
    log.warning("%s", message)
    return Outcome(result, message if result is Result.FAILED else f"left untouched, {message}")


class Applier:
    """Talks to one member cluster on behalf of its works."""

    def __init__(
        self,
        *,
        cluster: str,
        client: KubeClient,
        discovery: Discovery,
        hub_id: str,
        lookup: CacheLookup | None = None,
        secrecy: Secrecy | None = None,
    ) -> None:
        """``secrecy`` says which values are sensitive and keys their hashes (the drift
        baseline of a manifest holding one, the hashes in its drift diffs)."""
        self.cluster = cluster
        self.secrecy = secrecy
        self.client = client
        self.discovery = discovery
        self.hub_id = hub_id
        self.lookup = lookup
        self._namespaces: set[str] = set()
        self._namespace_locks: dict[str, anyio.Lock] = {}
        self._absent: set[tuple[GVK, str | None, str]] = set()
        self.writes = 0  # member writes sent (applies, deletes, patches): what tests count

    async def prefetch_names(self, wanted: Iterable[Mapping[str, Any]]) -> None:
        """Learn which of these objects do not exist in the member yet, so that `live()` needs
        no GET for them (a new rollout would otherwise cost a GET per object).

        Our own objects are in the informer cache; anything else with the same name would be
        *foreign* (no hub label, or another hub's): one metadata-only LIST per kind and
        namespace, selecting `federation.io/hub != <us>`, names them all. In a namespace the
        fleet manages that list is usually empty, so it is cheap whatever the namespace holds.
        What is learnt is forgotten as soon as it is used: it only bridges the short gap
        between this LIST and the apply that follows.
        """
        groups: dict[tuple[GVK, str | None], set[str]] = {}
        for desired in wanted:
            meta = _meta(desired)
            groups.setdefault((GVK.of(desired), meta.get("namespace")), set()).add(str(meta.get("name")))
        for (gvk, namespace), names in groups.items():
            if len(names) < 2:
                continue  # one GET costs the same as one LIST
            try:
                res = await self.discovery.resource_for(gvk)
                ns = namespace if res.namespaced else None
                listing = await self.client.request(
                    "GET",
                    res.collection_path(ns),
                    params={"labelSelector": f"{OWNERSHIP.hub_label}!={self.hub_id}"},
                    accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                    verb="list",
                    what=f"list foreign {res.name}",
                )
            except (KubeError, ClusterUnreachableError):
                continue  # the per-object GET will find out
            foreign = {str((item.get("metadata") or {}).get("name")) for item in listing.get("items") or []}
            for name in names - foreign:
                if self.lookup is not None and self.lookup(gvk, ns, name) is None:
                    self._absent.add((gvk, ns, name))

    async def resource(self, desired: Mapping[str, Any]) -> ResourceInfo:
        return await self.discovery.resource_for(GVK.of(desired))

    async def live(self, res: ResourceInfo, desired: Mapping[str, Any]) -> Obj | None:
        """The member's object: from the informer cache when it has it, else a GET.

        The cache only holds objects carrying our hub label; a GET is what finds an object
        someone else created under the same name (a conflict).
        """
        meta = _meta(desired)
        name, ns = str(meta["name"]), meta.get("namespace") if res.namespaced else None
        if self.lookup is not None:
            cached = self.lookup(res.gvk, ns, name)
            if cached is not None:
                return cached
        if (res.gvk, ns, name) in self._absent:
            self._absent.discard((res.gvk, ns, name))
            return None
        try:
            return await self.client.get(res, name, ns)
        except NotFoundError:
            return None

    # -- apply -------------------------------------------------------------------------

    async def apply(
        self,
        desired: Mapping[str, Any],
        *,
        overwrite: bool,
        baseline: str | None,
        expected: Identity | None = None,
    ) -> Outcome:
        """Apply `desired`; `expected` is the template's identity (see `foreign_target`)."""
        refused = foreign_target(desired, expected)
        if refused is not None:
            return refused
        try:
            res = await self.resource(desired)
            live = await self.live(res, desired)
            if live is not None:
                blocked = self._conflict(live, overwrite=overwrite)
                if blocked is not None:
                    return blocked
                if owner_hub(live) == self.hub_id and self._in_sync(live, desired, baseline):
                    return Outcome(
                        Result.APPLIED,
                        "already up to date",
                        member_resource_version=str(_meta(live).get("resourceVersion", "")),
                        baseline=baseline or self.baseline(live, desired),
                    )
            drift = []
            if (
                live is not None
                and owner_hub(live) == self.hub_id
                and desired_hash(live) == desired_hash(desired)
            ):
                # Same desired state, different live state: a member-side edit (drift).
                drift = redact_diff(
                    differences(project_object(desired, desired), project_object(live, desired)),
                    desired=desired,
                    secrecy=self.secrecy,
                )
            adopted = live is not None and owner_hub(live) is None
            result = await self._apply(res, desired)
            return Outcome(
                Result.APPLIED,
                "adopted the existing object"
                if adopted
                else ("restored drifted fields" if drift else "applied"),
                member_resource_version=str(_meta(result).get("resourceVersion", "")),
                baseline=self.baseline(result, desired),
                wrote=True,
                adopted=adopted,
                drift=drift,
            )
        except InvalidError as exc:
            return Outcome(Result.FAILED, str(exc))
        except KindNotServedError as exc:
            # The member may serve the kind later (its CRD is being installed): retried.
            return Outcome(Result.RETRY, str(exc))
        except ApiError as exc:
            if exc.status in (400, 403, 404):
                # 400/403/404: the member refuses this object (bad request, forbidden, its
                # namespace or resource gone): retrying the same manifest will not help.
                return Outcome(Result.FAILED, str(exc))
            return Outcome(Result.RETRY, str(exc))
        except ClusterUnreachableError as exc:
            return Outcome(Result.RETRY, str(exc))
        except KubeError as exc:
            return Outcome(Result.RETRY, str(exc))

    def _conflict(self, live: Obj, *, overwrite: bool) -> Outcome | None:
        owner = owner_hub(live)
        if owner is not None and owner != self.hub_id:
            return Outcome(
                Result.CONFLICT,
                f"cluster {self.cluster}: the object is managed by another federation hub ({owner!r}); "
                "it is never overwritten",
            )
        if owner is None and not overwrite:
            return Outcome(
                Result.CONFLICT,
                f"cluster {self.cluster}: an object with this name already exists and was not created by "
                "this hub; conflictResolution is Abort, so it was left untouched",
            )
        return None

    def _in_sync(self, live: Obj, desired: Mapping[str, Any], baseline: str | None) -> bool:
        if desired_hash(live) != desired_hash(desired):
            return False
        if baseline is None:
            # No baseline (first sight after a restart of an older version): trust the hash and
            # take the current projection as the baseline.
            return True
        return self.baseline(live, desired) == baseline

    def baseline(self, live: Mapping[str, Any], desired: Mapping[str, Any]) -> str:
        """The drift baseline of ``live`` for ``desired``: keyed when it holds a sensitive value."""
        key = self.secrecy.key_for(desired) if self.secrecy is not None else None
        return projection_hash(live, desired, key=key)

    async def _apply(self, res: ResourceInfo, desired: Mapping[str, Any]) -> Obj:
        ns = _meta(desired).get("namespace") if res.namespaced else None
        if ns:
            await self._ensure_namespace(str(ns))
        self.writes += 1
        try:
            return await self.client.apply(res, dict(desired), field_manager=FIELD_MANAGER, force=True)
        except NotFoundError:
            if not ns:
                raise
            # The namespace vanished since we last saw it: create it and try once more.
            self._namespaces.discard(str(ns))
            await self._ensure_namespace(str(ns))
            self.writes += 1
            return await self.client.apply(res, dict(desired), field_manager=FIELD_MANAGER, force=True)

    async def _ensure_namespace(self, ns: str) -> None:
        """Make sure `ns` exists in the member, once per namespace however many workers ask.

        A rollout into a new namespace starts a worker per object at once: without the lock
        each would GET the namespace, which on a throttled member queues a request per worker
        ahead of the first apply (16 workers at 0.2 QPS: over a minute before any copy lands)."""
        if ns in self._namespaces:
            return
        lock = self._namespace_locks.setdefault(ns, anyio.Lock())
        async with lock:
            if ns not in self._namespaces:
                await self._create_namespace(ns)

    async def _create_namespace(self, ns: str) -> None:
        res = await self.discovery.resource_for(NAMESPACE)
        try:
            await self.client.get(res, ns)
        except NotFoundError:
            self.writes += 1
            with contextlib.suppress(ConflictError):  # created meanwhile by someone else: fine
                await self.client.create(
                    res,
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {
                            "name": ns,
                            "labels": {OWNERSHIP.managed_by_label: OWNERSHIP.managed_by_value},
                        },
                    },
                )
        self._namespaces.add(ns)

    # -- delete / orphan -----------------------------------------------------------------

    async def delete(self, desired: Mapping[str, Any], *, expected: Identity | None = None) -> Outcome:
        """Delete our copy; an object that is not ours (any more) is left alone."""
        refused = foreign_target(desired, expected, result=Result.DELETED)
        if refused is not None:
            return refused
        try:
            res = await self.resource(desired)
            live = await self.live(res, desired)
            if live is None:
                return Outcome(Result.DELETED, "already gone")
            if owner_hub(live) != self.hub_id:
                return Outcome(Result.DELETED, "the member object is not ours; left in place")
            meta = _meta(live)
            self.writes += 1
            try:
                await self.client.delete(
                    res,
                    str(meta["name"]),
                    meta.get("namespace") if res.namespaced else None,
                    uid=str(meta.get("uid")) if meta.get("uid") else None,
                )
            except NotFoundError:
                pass
            except ConflictError:
                return Outcome(Result.RETRY, "the object was replaced while we deleted it; looking again")
            return Outcome(Result.DELETED, "deleted", wrote=True)
        except KindNotServedError:
            return Outcome(Result.DELETED, "the member does not serve this kind any more")
        except NotFoundError:
            return Outcome(Result.DELETED, "already gone")
        except (KubeError, ClusterUnreachableError) as exc:
            return Outcome(Result.RETRY, str(exc))

    async def orphan(self, desired: Mapping[str, Any], *, expected: Identity | None = None) -> Outcome:
        """Leave our copy in place, but without our stamp: it belongs to the member now."""
        refused = foreign_target(desired, expected, result=Result.ORPHANED)
        if refused is not None:
            return refused
        try:
            res = await self.resource(desired)
            live = await self.live(res, desired)
            if live is None or owner_hub(live) != self.hub_id:
                return Outcome(Result.ORPHANED, "nothing of ours to orphan")
            meta = _meta(live)
            labels = {k: None for k in (meta.get("labels") or {}) if k.startswith(OWNERSHIP.prefix)}
            annotations = {k: None for k in (meta.get("annotations") or {}) if k.startswith(OWNERSHIP.prefix)}
            self.writes += 1
            await self.client.patch(
                res,
                str(meta["name"]),
                {"metadata": {"labels": labels, "annotations": annotations}},
                namespace=meta.get("namespace") if res.namespaced else None,
            )
            # Give up our field ownership too, so a later adoption starts clean.
            return Outcome(Result.ORPHANED, "left in place without the federation stamp", wrote=True)
        except NotFoundError:
            return Outcome(Result.ORPHANED, "already gone")
        except (KubeError, ClusterUnreachableError) as exc:
            return Outcome(Result.RETRY, str(exc))
