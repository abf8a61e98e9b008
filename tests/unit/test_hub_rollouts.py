"""Staged rollouts through the binder (`federation.hub.rollouts`), on the in-memory hub.

What the members do is played by the test (`FakeStore.settle`: applied, Healthy since a time);
the clock is the hub's `now`. Each test is one interplay the issue names: the canary first and
the rest after its soak, a newer revision superseding, a revert, a cluster joining, suspend, a
restart, a failed gate with Halt and Rollback, an undo, and a policy losing its rollout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from federation.hub.keys import ResourceKey
from federation.hub.rollouts import copy_state, seen_after
from federation.placement import ClusterSnapshot
from federation.store import EventType, Health, RolloutCopy, WorkState
from tests.unit.hub_fakes import FakeHub, deployment, propagation_policy

CLUSTERS = ("c1", "c2", "c3")


def fleet(*names: str, labels: dict[str, dict[str, str]] | None = None) -> list[ClusterSnapshot]:
    return [ClusterSnapshot(n, labels=(labels or {}).get(n, {})) for n in names]


def staged_policy(
    *, soak: str = "10s", deadline: str = "10m", on_failure: str = "Halt", **canary: Any
) -> dict[str, Any]:
    policy = propagation_policy("web", dependencies=False)
    stage = {"name": "canary", "clusterNames": ["c1"], "waitAfter": soak, "deadline": deadline, **canary}
    policy["spec"]["rollout"] = {
        "stages": [stage, {"name": "rest", "waitAfter": "0s"}],
        "onFailure": on_failure,
    }
    return policy


def web(image: str) -> dict[str, Any]:
    obj = deployment("web")
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return obj


def images(hub: FakeHub) -> dict[str, str]:
    out = {}
    for cluster, copies in hub.store.copies().items():
        for manifest in copies.values():
            out[cluster] = manifest["spec"]["template"]["spec"]["containers"][0]["image"]
    return dict(sorted(out.items()))


async def again(hub: FakeHub, key: ResourceKey) -> None:
    """A reconcile of `key` (what the binder's requeue-after brings while a rollout waits)."""
    hub.bag.add(key)
    await hub.drain()


def settle_all(hub: FakeHub, key: ResourceKey, at: float, *clusters: str) -> None:
    for c in clusters or CLUSTERS:
        hub.store.settle(key, c, at)


async def rolled_out_v1(hub: FakeHub, policy: dict[str, Any] | None = None) -> ResourceKey:
    """app:1 everywhere under `policy` (default: canary c1 for 10 s, then the rest)."""
    hub.apply_policy(policy or staged_policy())
    key = hub.apply(web("app:1"))
    await hub.drain()
    settle_all(hub, key, hub.now)
    return key


async def change(hub: FakeHub, image: str) -> None:
    """The template's image changes on the hub, and the hub side runs."""
    hub.apply(web(image))
    await hub.drain()


def kinds(hub: FakeHub) -> list[EventType]:
    return [e.type for e in hub.store.events if e.type.value.startswith("Rollout")]


async def test_a_first_revision_goes_everywhere_at_once_and_becomes_the_stable_one() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:1")
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "Complete" and row.target_fp is None
    assert row.stable_template["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
    assert kinds(hub) == []


async def test_the_canary_goes_first_and_the_rest_after_its_soak() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    assert images(hub) == {"c1": "app:2", "c2": "app:1", "c3": "app:1"}
    hub.now += 3
    hub.store.settle(key, "c1", hub.now)  # Healthy on the new revision at +3 s
    hub.now += 9.9
    await again(hub, key)
    assert images(hub)["c2"] == "app:1", "released before the soak ended"
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "Progressing" and "soaking until" in row.reason
    assert row.clusters["c1"] == {"stage": "canary", "revision": "new", "health": "Healthy"}
    hub.now += 0.2
    await again(hub, key)
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:2")
    settle_all(hub, key, hub.now, "c2", "c3")
    await again(hub, key)
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "Complete" and row.target_fp is None
    assert row.stable_template["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
    assert kinds(hub) == [
        EventType.ROLLOUT_STARTED,
        EventType.ROLLOUT_STAGE_PASSED,
        EventType.ROLLOUT_STAGE_PASSED,
        EventType.ROLLOUT_COMPLETE,
    ]


async def test_a_newer_revision_supersedes_and_starts_from_the_first_stage() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    hub.store.settle(key, "c1", hub.now)
    hub.now += 11
    await again(hub, key)
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:2")  # into the rest stage
    await change(hub, "app:3")
    # From the start: the canary gets app:3, the rest go back to the stable app:1 (app:2 never
    # completed), not on to app:3.
    assert images(hub) == {"c1": "app:3", "c2": "app:1", "c3": "app:1"}
    started = [e for e in hub.store.events if e.type is EventType.ROLLOUT_STARTED]
    assert len(started) == 2 and "supersedes" in started[1].message


async def test_reverting_the_template_ends_the_rollout_on_the_stable_revision() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    await change(hub, "app:1")
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:1")
    row = hub.store.rollout(key)
    assert row is not None and row.target_fp is None and "reverted" in row.reason


async def test_a_cluster_that_joins_gets_the_revision_of_its_stage() -> None:
    selector = {"matchLabels": {"ring": "canary"}}
    hub = FakeHub(fleet(*CLUSTERS, labels={"c1": {"ring": "canary"}}))
    policy = staged_policy()
    policy["spec"]["rollout"]["stages"][0] = {
        "name": "canary",
        "clusterSelector": selector,
        "waitAfter": "10s",
    }
    key = await rolled_out_v1(hub, policy)
    await change(hub, "app:2")
    # Two clusters join mid-canary: one in the canary ring (new at once: its stage is current),
    # one in the rest (the previous revision until the rest's turn).
    hub.set_clusters(
        fleet(*CLUSTERS, "c4", "c5", labels={"c1": {"ring": "canary"}, "c4": {"ring": "canary"}})
    )
    await hub.drain()
    assert images(hub) == {"c1": "app:2", "c2": "app:1", "c3": "app:1", "c4": "app:2", "c5": "app:1"}
    hub.store.settle(key, "c1", hub.now)
    hub.store.settle(key, "c4", hub.now)
    hub.now += 10
    await again(hub, key)
    assert set(images(hub).values()) == {"app:2"}


async def test_a_suspended_policy_moves_nothing_and_its_time_does_not_count_against_the_deadline() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub, staged_policy(deadline="30s"))
    await change(hub, "app:2")
    hub.now += 20
    suspended = staged_policy(deadline="30s")
    suspended["spec"]["suspend"] = True
    hub.apply_policy(suspended)
    await hub.drain()
    row = hub.store.rollout(key)
    assert row is not None and row.suspended_at is not None and row.reason.startswith("suspended")
    hub.now += 600  # far past the deadline, suspended
    hub.apply_policy(staged_policy(deadline="30s"))
    await hub.drain()
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "Progressing", row.reason
    assert images(hub) == {"c1": "app:2", "c2": "app:1", "c3": "app:1"}


async def test_a_restart_resumes_with_the_clusters_released_and_no_one_ahead() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    hub.store.settle(key, "c1", hub.now)
    hub.now += 5
    hub.restart()
    await hub.drain()
    assert images(hub) == {"c1": "app:2", "c2": "app:1", "c3": "app:1"}
    assert kinds(hub).count(EventType.ROLLOUT_STARTED) == 1
    hub.now += 5
    await again(hub, key)
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:2")


async def test_a_degraded_canary_halts_and_the_rest_keep_the_previous_revision() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:bad")
    hub.store.settle(key, "c1", hub.now, Health.DEGRADED)
    await again(hub, key)
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "Halted" and "c1: Degraded: pods not Ready" in row.reason
    assert images(hub) == {"c1": "app:bad", "c2": "app:1", "c3": "app:1"}
    hub.now += 3600
    await again(hub, key)
    assert images(hub)["c2"] == "app:1", "a halted rollout moved on"


async def test_a_gate_past_its_deadline_rolls_back_under_rollback() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub, staged_policy(deadline="30s", on_failure="Rollback"))
    await change(hub, "app:slow")
    assert images(hub)["c1"] == "app:slow"
    hub.now += 31  # never Healthy
    await again(hub, key)
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "RolledBack" and "not Healthy within 30s" in row.reason
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:1")
    assert kinds(hub)[-1] is EventType.ROLLOUT_ROLLED_BACK


async def test_an_undo_asked_for_puts_the_previous_revision_back() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    row = hub.store.rollout(key)
    assert row is not None
    hub.store.rollouts[row.resource_id] = row.__class__(**{**row.__dict__, "undo_requested": True})
    await again(hub, key)
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "RolledBack" and "undone by hand" in row.reason
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:1")


async def test_an_approval_lets_the_next_stage_start() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub, staged_policy(soak="0s", approval=True))
    await change(hub, "app:2")
    hub.store.settle(key, "c1", hub.now)
    hub.now += 60
    await again(hub, key)
    row = hub.store.rollout(key)
    assert row is not None and row.phase == "WaitingApproval" and images(hub)["c2"] == "app:1"
    hub.store.rollouts[row.resource_id] = row.__class__(**{**row.__dict__, "approved": ("canary",)})
    await again(hub, key)
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:2")


async def test_a_policy_without_a_rollout_any_more_sends_the_change_everywhere() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    hub.apply_policy(propagation_policy("web", dependencies=False))
    await hub.drain()
    assert images(hub) == dict.fromkeys(CLUSTERS, "app:2")
    assert hub.store.rollout(key) is None


def _copy(**over: Any) -> RolloutCopy:
    base: dict[str, Any] = {
        "cluster": "c1",
        "state": WorkState.APPLIED,
        "desired_hash": "h2",
        "applied_hash": "h2",
        "last_error": None,
        "retrying": False,
        "work_resource_version": "120",
        "applied_at": datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC),
        "health": Health.HEALTHY,
        "health_reason": None,
        "healthy_since": datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
        "status_resource_version": "121",
    }
    return RolloutCopy(**{**base, **over})


def test_a_status_from_before_the_apply_passes_no_gate() -> None:
    # The Deployment was Healthy on the old revision; its status row predates our apply.
    assert copy_state(_copy(status_resource_version="119"), "h2").healthy_since is None
    fresh = copy_state(_copy(), "h2")
    # Healthy since the apply, not since the old revision turned Healthy.
    assert fresh.on_new and fresh.healthy_since == _copy().applied_at.timestamp()  # type: ignore[union-attr]
    assert not copy_state(_copy(), "h-other").on_new
    assert (
        copy_state(_copy(state=WorkState.FAILED, last_error="forbidden"), "h2").failure
        == "refused: forbidden"
    )
    assert copy_state(_copy(state=WorkState.FAILED, retrying=True), "h2").failure is None
    assert copy_state(_copy(state=WorkState.CONFLICT), "h2").failure is not None
    assert copy_state(_copy(health=Health.DEGRADED, health_reason="crash"), "h2").failure == "Degraded: crash"


def test_resource_versions_compare_as_integers_and_opaque_ones_only_when_equal() -> None:
    assert seen_after("10", "9") and not seen_after("9", "10") and seen_after("10", "10")
    assert seen_after("abc", "abc") and not seen_after("abd", "abc")
    assert not seen_after(None, "1") and seen_after("1", None)


async def test_a_cluster_lost_mid_rollout_leaves_its_stage_and_the_rest_go_on() -> None:
    hub = FakeHub(fleet(*CLUSTERS))
    key = await rolled_out_v1(hub)
    await change(hub, "app:2")
    hub.set_clusters(fleet("c1", "c2"))  # c3 gone (failover, unjoin): its copy goes
    await hub.drain()
    assert images(hub) == {"c1": "app:2", "c2": "app:1"}
    hub.store.settle(key, "c1", hub.now)
    hub.now += 10
    await again(hub, key)
    hub.store.settle(key, "c2", hub.now)
    await again(hub, key)
    row = hub.store.rollout(key)
    assert images(hub) == {"c1": "app:2", "c2": "app:2"}
    assert row is not None and row.phase == "Complete"
