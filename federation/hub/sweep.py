"""The level-based sweep: copies that outlived their reason to exist, found and sent on their way.

The hub controller is edge-triggered at heart: a template's key is queued when an informer sees
it change. An event lost to a race, or to a crash between two writes, leaves a copy nobody looks
at again (issue 11: a template deleted a second after its creation kept its copy in a member
for minutes, through a restart). The sweep compares the levels instead, at start (once the hub
informers have synced) and every `interval` seconds:

1. **Works** (Postgres): a work that is still meant to be in its member (pending, applied,
   conflict, failed) whose template the hub no longer holds, or whose cluster the stored
   placement no longer chooses, is *stale*. The sweep decides only *which keys* are stale and
   queues them to the hub controller, with the policy that placed them (whose deletionPolicy
   says delete or orphan); the controller's reconcile (template absent → unplace; present →
   place, which moves unchosen works to deleting) does the rest. There is one deletion path.
   Queuing a key is always safe, so a cache miss is enough here.
2. **Member copies**: an object carrying our hub label in a member that no work records is
   reported (log line, `federation_sweep_findings_total{finding="unrecorded_copy"}`). It is
   removed only when all of these hold — the rule is conservative on purpose, since nothing
   else records that the object is ours:
   - its stamp proves it: our hub label, ``managed-by: federation``, and a
     ``federation.io/source`` annotation naming exactly this object's group, kind, namespace
     and name (a copy's identity is always its template's);
   - the hub itself says the template does not exist (a list of its name, never a cache miss);
   - no work records it when Postgres is read again just before acting (a placement made
     meanwhile wins);
   - it is deleted with the listed object's uid as a precondition (a newer object is left).
   Then it is deleted, or orphaned (our stamp taken off) when its ``federation.io/policy``
   names a policy that still exists and says ``deletionPolicy: Orphan``.
   Members are listed for the kinds the hub watches (the kinds policies select): a copy of a
   kind no policy selects any more is not looked for.

Every I/O goes through the narrow interfaces below (`SweepStore`, `HubTemplates`,
`MemberCopies`), so the decisions are unit-tested without a cluster; the adapters to the real
hub, members and policies are in `federation.hub.sweep_adapters`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import anyio

from federation.errors import ClusterUnreachableError, KubeError, NotFoundError, StoreError
from federation.hub.keys import PolicyKey, ResourceKey
from federation.kube import GVK
from federation.metrics import SWEEP_FINDINGS, SWEEP_RUNS
from federation.store.enums import UNPLACED_STATES
from federation.store.repo.sweep import RecordedWork
from federation.translate import OWNERSHIP
from federation.translate.ownership import parse_source

log = logging.getLogger(__name__)

Meta = Mapping[str, Any]


class Presence(StrEnum):
    """What is known of a template on the hub."""

    PRESENT = "present"
    ABSENT = "absent"  # the hub itself says so (a list of the name)
    ABSENT_CACHED = "absent_cached"  # a synced informer does not hold it
    UNKNOWN = "unknown"  # kind not served, or the hub did not answer: nothing is concluded


class Finding(StrEnum):
    """What one sweep found (the label of `federation_sweep_findings_total`)."""

    TEMPLATE_GONE = "template_gone"
    NOT_PLACED = "not_placed"
    UNRECORDED_COPY = "unrecorded_copy"
    COPY_REMOVED = "copy_removed"


@dataclass(frozen=True, slots=True)
class StaleWork:
    key: ResourceKey
    cluster: str
    finding: Finding
    policy: PolicyKey | None


def key_of(work: RecordedWork) -> ResourceKey:
    t = work.template
    return ResourceKey(t.api_group, t.kind, t.namespace, t.name)


def policy_of(work: RecordedWork) -> PolicyKey | None:
    return PolicyKey(str(work.policy[0]), work.policy[1], work.policy[2]) if work.policy else None


def stale_works(works: Iterable[RecordedWork], presence: Mapping[ResourceKey, Presence]) -> list[StaleWork]:
    """The works still meant to be in their member that should not be: template gone from the
    hub, or the cluster no longer chosen. Works being removed, and templates whose presence is
    unknown, are left alone."""
    stale: list[StaleWork] = []
    for w in works:
        if w.state in UNPLACED_STATES:
            continue
        key = key_of(w)
        seen = presence.get(key, Presence.UNKNOWN)
        if seen in (Presence.ABSENT, Presence.ABSENT_CACHED):
            stale.append(StaleWork(key, w.cluster, Finding.TEMPLATE_GONE, policy_of(w)))
        elif seen is Presence.PRESENT and not w.chosen:
            stale.append(StaleWork(key, w.cluster, Finding.NOT_PLACED, policy_of(w)))
    return stale


def copy_key(gvk: GVK, meta: Meta) -> ResourceKey:
    return ResourceKey(gvk.group, gvk.kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))


def stamped_by(hub_id: str, gvk: GVK, meta: Meta) -> bool:
    """Whether a member object's stamp proves it is a copy this hub made of the template of the
    same identity (hub label, managed-by label, a source annotation naming this very object)."""
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if labels.get(OWNERSHIP.hub_label) != hub_id:
        return False
    if labels.get(OWNERSHIP.managed_by_label) != OWNERSHIP.managed_by_value:
        return False
    try:
        source = parse_source(str(annotations.get(OWNERSHIP.source_annotation, "")))
    except ValueError:
        return False
    named = GVK.parse(source.api_version, source.kind)
    return (named.group, named.kind, source.namespace or "", source.name) == (
        gvk.group,
        gvk.kind,
        str(meta.get("namespace") or ""),
        str(meta.get("name", "")),
    )


def parse_policy(value: str | None) -> PolicyKey | None:
    """The policy named by a ``federation.io/policy`` annotation (`format_policy`'s inverse)."""
    parts = (value or "").split("/")
    if len(parts) == 3 and all(parts):
        return PolicyKey(parts[0], parts[1], parts[2])
    if len(parts) == 2 and all(parts):
        return PolicyKey(parts[0], "", parts[1])
    return None


# -- the interfaces the sweep needs ----------------------------------------------------------


class SweepStore(Protocol):
    async def recorded_works(self) -> list[RecordedWork]: ...


class HubTemplates(Protocol):
    async def presence(self, key: ResourceKey, *, authoritative: bool) -> Presence:
        """``authoritative``: ask the hub itself, never the cache."""
        ...

    def kinds(self) -> set[GVK]:
        """The kinds whose copies are looked for in the members."""
        ...


class MemberCopies(Protocol):
    name: str

    async def list_ours(self, gvk: GVK) -> list[Meta]:
        """The metadata of every object of `gvk` carrying our hub label."""
        ...

    async def remove(self, gvk: GVK, meta: Meta, *, orphan: bool) -> None: ...


#: Queue a stale key to the hub controller, with the policy that placed it (if known).
Enqueue = Callable[[ResourceKey, PolicyKey | None], None]
#: Whether a policy (that still exists) says deletionPolicy Orphan.
Orphans = Callable[[PolicyKey], bool]


@dataclass(frozen=True)
class SweepReport:
    stale: list[StaleWork]
    unrecorded: list[tuple[str, ResourceKey]]
    removed: list[tuple[str, ResourceKey]]


class Sweep:
    def __init__(
        self,
        *,
        store: SweepStore,
        hub: HubTemplates,
        members: Callable[[], Sequence[MemberCopies]],
        enqueue: Enqueue,
        orphans: Orphans,
        hub_id: str,
    ) -> None:
        self.store = store
        self.hub = hub
        self.members = members
        self.enqueue = enqueue
        self.orphans = orphans
        self.hub_id = hub_id

    async def run(self, *, interval: float, synced: Callable[[], Awaitable[None]] | None = None) -> None:
        """Sweep once `synced` returns, then every `interval` seconds (a failed sweep is
        logged and counted; the next one starts from scratch)."""
        if synced is not None:
            await synced()
        while True:
            try:
                await self.sweep()
                SWEEP_RUNS.labels("ok").inc()
            except (StoreError, KubeError, ClusterUnreachableError) as exc:
                SWEEP_RUNS.labels("error").inc()
                log.warning("sweep failed: %s", exc)
            await anyio.sleep(interval)

    async def sweep(self) -> SweepReport:
        works = await self.store.recorded_works()
        stale = await self._stale(works)
        for item in stale:
            SWEEP_FINDINGS.labels(item.finding.value).inc()
            log.warning(
                "sweep: %s on cluster %s: %s; queued to the controller",
                item.key,
                item.cluster,
                "its template is gone from the hub"
                if item.finding is Finding.TEMPLATE_GONE
                else "its placement no longer chooses this cluster",
                extra=_extra(item.key, item.cluster),
            )
        for key, policy in {s.key: s.policy for s in stale}.items():
            self.enqueue(key, policy)
        unrecorded, removed = await self._member_copies(works)
        return SweepReport(stale, unrecorded, removed)

    async def _stale(self, works: list[RecordedWork]) -> list[StaleWork]:
        keys = {key_of(w) for w in works if w.state not in UNPLACED_STATES}
        presence = {key: await self.hub.presence(key, authoritative=False) for key in sorted(keys)}
        return stale_works(works, presence)

    async def _member_copies(
        self, works: list[RecordedWork]
    ) -> tuple[list[tuple[str, ResourceKey]], list[tuple[str, ResourceKey]]]:
        recorded = {(key_of(w), w.cluster) for w in works}
        candidates: list[tuple[MemberCopies, GVK, Meta]] = []
        unrecorded: list[tuple[str, ResourceKey]] = []
        kinds = sorted(self.hub.kinds(), key=str)
        for member in self.members():
            for gvk in kinds:
                try:
                    listed = await member.list_ours(gvk)
                except NotFoundError:
                    continue  # the member does not serve this kind: no copy of it there
                except (KubeError, ClusterUnreachableError) as exc:
                    log.info("sweep: listing %s in %s failed: %s", gvk, member.name, exc)
                    continue
                for meta in listed:
                    key = copy_key(gvk, meta)
                    if (key, member.name) in recorded:
                        continue
                    unrecorded.append((member.name, key))
                    SWEEP_FINDINGS.labels(Finding.UNRECORDED_COPY.value).inc()
                    proven = stamped_by(self.hub_id, gvk, meta)
                    log.warning(
                        "sweep: %s in cluster %s carries our hub label but no work records it%s",
                        key,
                        member.name,
                        "" if proven else " (its stamp does not prove it is our copy: left alone)",
                        extra=_extra(key, member.name),
                    )
                    if proven:
                        candidates.append((member, gvk, meta))
        removed = await self._remove(candidates) if candidates else []
        return unrecorded, removed

    async def _remove(
        self, candidates: list[tuple[MemberCopies, GVK, Meta]]
    ) -> list[tuple[str, ResourceKey]]:
        recorded = {(key_of(w), w.cluster) for w in await self.store.recorded_works()}
        removed: list[tuple[str, ResourceKey]] = []
        for member, gvk, meta in candidates:
            key = copy_key(gvk, meta)
            if (key, member.name) in recorded:
                continue  # placed meanwhile: the propagator owns it again
            if await self.hub.presence(key, authoritative=True) is not Presence.ABSENT:
                continue  # the template exists (or the hub did not say): reported only
            policy = parse_policy((meta.get("annotations") or {}).get(OWNERSHIP.policy_annotation))
            orphan = policy is not None and self.orphans(policy)
            try:
                await member.remove(gvk, meta, orphan=orphan)
            except (KubeError, ClusterUnreachableError) as exc:
                log.warning("sweep: removing %s from %s failed: %s", key, member.name, exc)
                continue
            SWEEP_FINDINGS.labels(Finding.COPY_REMOVED.value).inc()
            removed.append((member.name, key))
            log.warning(
                "sweep: %s %s from cluster %s: its template is gone from the hub and no work records it",
                key,
                "orphaned" if orphan else "deleted",
                member.name,
                extra=_extra(key, member.name),
            )
        return removed


def _extra(key: ResourceKey, cluster: str) -> dict[str, str]:
    return {"namespace": key.namespace, "object_name": key.name, "kind": key.kind, "cluster": cluster}
