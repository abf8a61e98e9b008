"""The level-based sweep's decisions, without I/O: which works are stale, which member copies
are reported, and which of them are removed (the conservative rule of `federation.hub.sweep`)."""

from __future__ import annotations

from typing import Any

import pytest

from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.sweep import Finding, Presence, Sweep, parse_policy, stale_works, stamped_by
from federation.kube import GVK
from federation.store import ObjectRef, PolicyKind, WorkState
from federation.store.repo.sweep import RecordedWork

CM = GVK("", "v1", "ConfigMap")
HUB = "hub-a"
POLICY = (PolicyKind.PROPAGATION_POLICY, "shop", "pp")


def work(
    name: str, cluster: str, state: WorkState = WorkState.APPLIED, *, chosen: bool = True
) -> RecordedWork:
    return RecordedWork(
        template=ObjectRef("", "ConfigMap", "shop", name),
        cluster=cluster,
        state=state,
        chosen=chosen,
        resource_deleted=False,
        policy=POLICY,
    )


def key(name: str) -> ResourceKey:
    return ResourceKey("", "ConfigMap", "shop", name)


def copy_meta(
    name: str, *, hub: str = HUB, source: str | None = None, policy: str = "PropagationPolicy/shop/pp"
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "uid": f"uid-{name}",
        "labels": {"federation.io/hub": hub, "federation.io/managed-by": "federation"},
        "annotations": {
            "federation.io/source": source if source is not None else f"core/v1/ConfigMap/shop/{name}",
            "federation.io/policy": policy,
        },
    }


def test_a_work_whose_template_is_gone_or_whose_cluster_is_unchosen_is_stale() -> None:
    works = [
        work("gone", "m1"),
        work("gone-cached", "m1"),
        work("kept", "m1"),
        work("moved", "m1", chosen=False),
        work("unknown", "m1"),
        work("leaving", "m1", WorkState.DELETING),
        work("orphaned", "m1", WorkState.ORPHANED, chosen=False),
    ]
    presence = {
        key("gone"): Presence.ABSENT,
        key("gone-cached"): Presence.ABSENT_CACHED,
        key("kept"): Presence.PRESENT,
        key("moved"): Presence.PRESENT,
        key("unknown"): Presence.UNKNOWN,
        key("leaving"): Presence.ABSENT,
        key("orphaned"): Presence.PRESENT,
    }
    found = {(s.key.name, s.finding) for s in stale_works(works, presence)}
    assert found == {
        ("gone", Finding.TEMPLATE_GONE),
        ("gone-cached", Finding.TEMPLATE_GONE),
        ("moved", Finding.NOT_PLACED),
    }


def test_only_a_stamp_naming_the_object_itself_proves_it_is_our_copy() -> None:
    assert stamped_by(HUB, CM, copy_meta("a"))
    assert not stamped_by(HUB, CM, copy_meta("a", hub="hub-b"))
    assert not stamped_by(HUB, CM, copy_meta("a", source="core/v1/ConfigMap/shop/other"))
    assert not stamped_by(HUB, CM, copy_meta("a", source="core/v1/Secret/shop/a"))
    assert not stamped_by(HUB, CM, copy_meta("a", source="garbage"))
    no_managed_by = copy_meta("a")
    del no_managed_by["labels"]["federation.io/managed-by"]
    assert not stamped_by(HUB, CM, no_managed_by)


def test_policy_annotations_parse_back() -> None:
    assert parse_policy("PropagationPolicy/shop/pp") == PolicyKey("PropagationPolicy", "shop", "pp")
    assert parse_policy("ClusterPropagationPolicy/all") == PolicyKey("ClusterPropagationPolicy", "", "all")
    assert parse_policy("") is None
    assert parse_policy("a/b/c/d") is None


class FakeStore:
    def __init__(self, *reads: list[RecordedWork]) -> None:
        self.reads = list(reads)

    async def recorded_works(self) -> list[RecordedWork]:
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


class FakeHub:
    def __init__(self, cached: dict[ResourceKey, Presence], hub: dict[ResourceKey, Presence]) -> None:
        self.cached, self.hub = cached, hub
        self.asked: list[tuple[ResourceKey, bool]] = []

    async def presence(self, key: ResourceKey, *, authoritative: bool) -> Presence:
        self.asked.append((key, authoritative))
        return (self.hub if authoritative else self.cached).get(key, Presence.UNKNOWN)

    def kinds(self) -> set[GVK]:
        return {CM}


class FakeMember:
    def __init__(self, name: str, copies: list[dict[str, Any]]) -> None:
        self.name = name
        self.copies = copies
        self.removed: list[tuple[str, bool]] = []

    async def list_ours(self, gvk: GVK) -> list[dict[str, Any]]:
        return self.copies

    async def remove(self, gvk: GVK, meta: Any, *, orphan: bool) -> None:
        self.removed.append((meta["name"], orphan))


@pytest.mark.anyio
async def test_a_sweep_queues_stale_keys_with_their_policy_and_removes_only_proven_copies() -> None:
    recorded = [work("placed", "m1"), work("gone", "m1")]
    store = FakeStore(recorded)
    hub = FakeHub(
        cached={key("placed"): Presence.PRESENT, key("gone"): Presence.ABSENT_CACHED},
        hub={
            key("stray"): Presence.ABSENT,
            key("forged"): Presence.ABSENT,
            key("alive"): Presence.PRESENT,
            key("orphan-me"): Presence.ABSENT,
        },
    )
    member = FakeMember(
        "m1",
        [
            copy_meta("placed"),  # recorded: the propagator's
            copy_meta("stray"),  # ours, template gone: deleted
            copy_meta("forged", source="core/v1/ConfigMap/kube-system/coredns"),  # reported only
            copy_meta("alive"),  # template exists: reported only
            copy_meta("orphan-me", policy="PropagationPolicy/shop/keep"),  # Orphan policy
        ],
    )
    queued: list[tuple[ResourceKey, PolicyKey | None]] = []
    sweep = Sweep(
        store=store,
        hub=hub,
        members=lambda: [member],
        enqueue=lambda k, p: queued.append((k, p)),
        orphans=lambda p: p.name == "keep",
        hub_id=HUB,
    )
    report = await sweep.sweep()
    assert queued == [(key("gone"), PolicyKey("PropagationPolicy", "shop", "pp"))]
    assert sorted(k.name for _, k in report.unrecorded) == ["alive", "forged", "orphan-me", "stray"]
    assert member.removed == [("stray", False), ("orphan-me", True)]
    # The cache decides what is queued; only the hub itself decides what is removed.
    assert all(authoritative for k, authoritative in hub.asked if k.name in ("stray", "alive", "orphan-me"))


@pytest.mark.anyio
async def test_a_copy_recorded_by_the_time_the_sweep_acts_is_left_to_the_propagator() -> None:
    store = FakeStore([], [work("late", "m1")])  # placed between the listing and the removal
    member = FakeMember("m1", [copy_meta("late")])
    sweep = Sweep(
        store=store,
        hub=FakeHub(cached={}, hub={key("late"): Presence.ABSENT}),
        members=lambda: [member],
        enqueue=lambda k, p: None,
        orphans=lambda p: False,
        hub_id=HUB,
    )
    report = await sweep.sweep()
    assert report.unrecorded == [("m1", key("late"))]
    assert member.removed == []
