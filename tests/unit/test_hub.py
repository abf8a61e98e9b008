"""The hub controller's parts (detector, binder, dependency tracker, ledger) with the pure
pipeline, on an in-memory hub (`tests.unit.hub_fakes`): no apiserver, no Postgres, no sleeps."""

from __future__ import annotations

from federation.api import Taint, TaintEffect
from federation.clusters.health import UNREACHABLE_TAINT_KEY
from federation.hub.dependencies import DependencyTracker, Placed
from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.ledger import PolicyLedger
from federation.hub.pipeline import Fleet, keep_transient, transient
from federation.placement import ClusterSnapshot, Decision, Placer, ReasonCode, Target
from tests.unit.hub_fakes import (
    FakeHub,
    cm_key,
    configmap,
    deployment,
    key_of,
    propagation_policy,
)


def fleet(*names: str, **labels: dict[str, str]) -> list[ClusterSnapshot]:
    return [ClusterSnapshot(name=n, labels=labels.get(n.replace("-", "_"), {})) for n in names]


def clusters_of(hub: FakeHub, key: ResourceKey) -> set[str]:
    return {c for c, copies in hub.store.copies().items() if key in copies}


# -- the pipeline's rule for an unschedulable placement -------------------------------------------


def test_an_unschedulable_placement_keeps_clusters_only_for_transient_causes() -> None:
    """Issue 11: a selector that no longer matches must not keep the copy (it did: `_decide`
    kept every previous target whenever nothing was schedulable)."""
    from federation.api import Placement

    previous = Decision(targets=(Target("m1", None),))
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"tier": "gold"}}})
    unlabelled = Fleet.of([ClusterSnapshot(name="m1", labels={})])
    decision = unlabelled.placer.decide(placement=placement, replicas=None, previous=previous)
    assert decision.unschedulable is not None and decision.excluded["m1"].code is ReasonCode.SELECTOR_MISMATCH
    kept, names = keep_transient(decision, previous, unlabelled)
    assert kept.targets == () and names == frozenset()

    unreachable = Taint(key=UNREACHABLE_TAINT_KEY, effect=TaintEffect.NO_EXECUTE)
    down = Fleet.of([ClusterSnapshot(name="m1", labels={"tier": "gold"}, taints=(unreachable,))])
    decision = down.placer.decide(placement=placement, replicas=None, previous=previous)
    kept, names = keep_transient(decision, previous, down)
    assert kept.cluster_names == {"m1"} and names == {"m1"}
    assert "m1" not in kept.excluded


def test_transient_is_decided_on_codes() -> None:
    someone = Taint(key="maintenance", effect=TaintEffect.NO_EXECUTE)
    unreachable = Taint(key=UNREACHABLE_TAINT_KEY, effect=TaintEffect.NO_EXECUTE)
    placer = Placer(
        [
            ClusterSnapshot(name="a", taints=(someone,)),
            ClusterSnapshot(name="b", taints=(unreachable,)),
            ClusterSnapshot(name="c", ready=False),
        ]
    )
    from federation.api import Placement

    d = placer.decide(placement=Placement(), replicas=None, previous=None)
    assert not transient(d.excluded["a"])
    assert transient(d.excluded["b"])
    assert transient(d.excluded["c"])


# -- the binder with the detector ------------------------------------------------------------------


async def test_a_template_is_placed_and_saved_once() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    hub.apply_policy(propagation_policy("pp", kind="ConfigMap", api_version="v1"))
    cm = hub.apply(configmap("c"))
    await hub.drain()
    assert clusters_of(hub, cm) == {"m1", "m2"}
    saves = hub.store.saves
    hub.detector.template_event(cm)  # nothing changed: the save writes nothing
    await hub.drain()
    assert hub.store.saves == saves + 1 and hub.works_changed == {"m1", "m2"}
    assert hub.binder.placed[cm] == ["m1", "m2"]


async def test_a_selector_that_no_longer_matches_removes_the_copy() -> None:
    """Issue 11 (placement depends on history): remove member-1's tier label, the copy goes and
    the row says why; a second template under the same policy goes nowhere either."""
    gold = {"tier": "gold"}
    hub = FakeHub([ClusterSnapshot(name="m1", labels=gold), ClusterSnapshot(name="m2")])
    hub.apply_policy(
        propagation_policy(
            "pp", kind="ConfigMap", api_version="v1", placement={"clusterSelector": {"matchLabels": gold}}
        )
    )
    first = hub.apply(configmap("first"))
    await hub.drain()
    assert clusters_of(hub, first) == {"m1"}
    hub.set_clusters([ClusterSnapshot(name="m1"), ClusterSnapshot(name="m2")])
    await hub.drain()
    assert clusters_of(hub, first) == set()
    assert hub.store.rows(first)["m1"] == "not matched by clusterSelector tier=gold"
    second = hub.apply(configmap("second"))
    await hub.drain()
    assert clusters_of(hub, second) == set()


async def test_an_unreachable_cluster_keeps_its_copy_when_nothing_else_can_take_it() -> None:
    hub = FakeHub(fleet("m1"))
    hub.apply_policy(propagation_policy("pp", kind="ConfigMap", api_version="v1"))
    cm = hub.apply(configmap("c"))
    await hub.drain()
    unreachable = Taint(key=UNREACHABLE_TAINT_KEY, effect=TaintEffect.NO_EXECUTE)
    hub.set_clusters([ClusterSnapshot(name="m1", taints=(unreachable,))])
    await hub.drain()
    assert clusters_of(hub, cm) == {"m1"}
    assert hub.store.rows(cm)["m1"] == "chosen: kept: no cluster passed the filters"


async def test_failover_is_decided_on_the_code_and_recorded() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    hub.apply_policy(
        propagation_policy("pp", kind="ConfigMap", api_version="v1", placement={"maxClusters": 1})
    )
    cm = hub.apply(configmap("c"))
    await hub.drain()
    assert clusters_of(hub, cm) == {"m1"}
    unreachable = Taint(key=UNREACHABLE_TAINT_KEY, effect=TaintEffect.NO_EXECUTE)
    hub.set_clusters([ClusterSnapshot(name="m1", taints=(unreachable,)), ClusterSnapshot(name="m2")])
    await hub.drain()
    assert clusters_of(hub, cm) == {"m2"}
    failovers = [e for e in hub.store.events if e.type.value == "Failover"]
    assert [e.details for e in failovers] == [{"from": ["m1"], "to": ["m2"]}]


# -- dependencies ------------------------------------------------------------------------------------


async def _web_with_cfg(hub: FakeHub) -> tuple[ResourceKey, ResourceKey]:
    hub.apply_policy(propagation_policy("pp"))
    cfg = hub.apply(configmap("web-cfg"))
    web = hub.apply(deployment("web", refs=["web-cfg"]))
    await hub.drain()
    assert clusters_of(hub, web) == {"m1", "m2"} and clusters_of(hub, cfg) == {"m1", "m2"}
    return web, cfg


async def test_a_dependency_goes_with_the_last_workload_that_references_it() -> None:
    """Issue 11: delete `web` and `web-cfg` stayed in the members (nothing re-queued it)."""
    hub = FakeHub(fleet("m1", "m2"))
    web, cfg = await _web_with_cfg(hub)
    hub.delete(web)
    await hub.drain()
    assert clusters_of(hub, web) == set() and clusters_of(hub, cfg) == set()


async def test_a_dependency_goes_when_its_workload_is_unplaced() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    web, cfg = await _web_with_cfg(hub)
    hub.delete_policy(propagation_policy("pp"))
    await hub.drain()
    assert clusters_of(hub, web) == set() and clusters_of(hub, cfg) == set()


async def test_a_dependency_no_longer_referenced_goes() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    web, cfg = await _web_with_cfg(hub)
    hub.apply(deployment("web", refs=[]))
    await hub.drain()
    assert clusters_of(hub, web) == {"m1", "m2"} and clusters_of(hub, cfg) == set()


async def test_a_dependency_follows_its_workload_off_a_cluster() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    web, cfg = await _web_with_cfg(hub)
    hub.apply_policy(propagation_policy("pp", placement={"clusterNames": ["m2"]}))
    await hub.drain()
    assert clusters_of(hub, web) == {"m2"} and clusters_of(hub, cfg) == {"m2"}
    assert hub.store.rows(cfg)["m1"] == "no workload referencing it is placed here"


async def test_a_dependency_stays_while_another_workload_references_it() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    web, cfg = await _web_with_cfg(hub)
    api = hub.apply(deployment("api", refs=["web-cfg"]))
    await hub.drain()
    hub.delete(web)
    await hub.drain()
    assert clusters_of(hub, api) == {"m1", "m2"} and clusters_of(hub, cfg) == {"m1", "m2"}


async def test_at_start_a_dependency_reconciled_before_its_workload_is_not_unplaced() -> None:
    """The `make demo` symptom: shop/api-token deleted from both members and re-created. A
    restarted controller reconciles keys in no order; the dependency must wait for its
    workloads instead of being unplaced."""
    hub = FakeHub(fleet("m1", "m2"))
    web, cfg = await _web_with_cfg(hub)
    restarted = FakeHub(fleet("m1", "m2"), templates=hub.templates, store=hub.store)
    restarted.apply_policy(propagation_policy("pp"))
    restarted.bag.keys.clear()
    for key in (cfg, web):
        restarted.detector.template_event(key)
    saves = hub.store.saves
    first = await restarted.step(0)
    assert first == cfg
    assert clusters_of(restarted, cfg) == {"m1", "m2"}, "unplaced before its workload was seen"
    assert hub.store.saves == saves, "the dependency waits: nothing saved"
    await restarted.drain()
    assert clusters_of(restarted, cfg) == {"m1", "m2"}


async def test_a_dependency_selected_by_its_own_policy_is_placed_by_it() -> None:
    hub = FakeHub(fleet("m1", "m2"))
    _web, cfg = await _web_with_cfg(hub)
    hub.apply_policy(
        propagation_policy("cms", kind="ConfigMap", api_version="v1", placement={"clusterNames": ["m1"]})
    )
    await hub.drain()
    assert clusters_of(hub, cfg) == {"m1"}


# -- the tracker and the ledger alone ---------------------------------------------------------------


def test_the_tracker_replaces_what_a_workload_placed() -> None:
    tracker = DependencyTracker()
    pp = PolicyKey("PropagationPolicy", "shop", "pp")
    web, cfg, other = ResourceKey("apps", "Deployment", "shop", "web"), cm_key("cfg"), cm_key("other")
    assert tracker.record(web, Placed(pp, frozenset({"m1"}), frozenset({cfg}))) == {cfg}
    assert [w for w, _ in tracker.followers(cfg)] == [web]
    assert tracker.record(web, Placed(pp, frozenset({"m1"}), frozenset({cfg}))) == set()
    assert tracker.record(web, Placed(pp, frozenset({"m1"}), frozenset({other}))) == {cfg, other}
    assert tracker.followers(cfg) == []
    tracker.widen(web, Placed(pp, frozenset({"m2"}), frozenset({cfg})))
    assert tracker.followers(cfg)[0][1].clusters == {"m1", "m2"}, "old and new until the save"
    assert tracker.record(web, None) == {cfg, other}
    assert tracker.followers(cfg) == [] and tracker.followers(other) == []


def test_the_tracker_says_which_workloads_a_dependency_waits_for() -> None:
    tracker = DependencyTracker()
    web = key_of(deployment("web", refs=["cfg"]))
    assert tracker.template_changed(web, deployment("web", refs=["cfg"])) == {cm_key("cfg")}
    assert tracker.pending(cm_key("cfg")) == [web]
    tracker.record(web, None)
    assert tracker.pending(cm_key("cfg")) == []
    assert tracker.forget(web) == {cm_key("cfg")}
    assert tracker.pending(cm_key("cfg")) == []


def test_the_ledger_reports_which_policies_changed() -> None:
    from federation.api import PropagationPolicy

    ledger = PolicyLedger()
    loser = PropagationPolicy.model_validate(propagation_policy("loser"))
    key = cm_key("c")
    lk = PolicyKey("PropagationPolicy", "shop", "loser")
    assert ledger.note_losers(key, [(loser, "overridden")]) == {lk}
    assert ledger.note_losers(key, [(loser, "overridden")]) == set()
    assert ledger.losses(lk) == ["ConfigMap shop/c: overridden"]
    assert ledger.note_losers(key, []) == {lk} and ledger.losses(lk) == []
    assert ledger.note_skipped(key, lk, "never") == {lk}
    assert ledger.note_skipped(key, lk, "never") == set()
    assert ledger.note_skipped(key, None, None) == {lk} and ledger.skipped(lk) == []
    assert ledger.govern(key, lk) == {lk} and ledger.govern(key, lk) == set()
    assert ledger.governs_any(lk)


# -- what the detector queues at which priority ---------------------------------------------------


async def test_an_edit_is_queued_normal_and_a_fan_out_low() -> None:
    """A policy or fleet change *may* touch every template of a kind: low, so an edit of one
    template made meanwhile goes first (`federation.informers.Priority`); an edit is normal."""
    from federation.clusters.changes import FleetChange, FleetChangeKind
    from federation.informers import Priority

    hub = FakeHub(fleet("m1", "m2"))
    hub.apply_policy(propagation_policy("pp", kind="ConfigMap", api_version="v1"))
    a, b = hub.apply(configmap("a")), hub.apply(configmap("b"))
    assert hub.bag.priorities == {a: Priority.NORMAL, b: Priority.NORMAL}
    await hub.drain()
    narrower = propagation_policy(
        "pp", kind="ConfigMap", api_version="v1", placement={"clusterNames": ["m1"]}
    )
    hub.apply_policy(narrower)
    assert hub.bag.priorities == {a: Priority.LOW, b: Priority.LOW}
    hub.apply(configmap("a", labels={"edited": "yes"}))
    assert hub.bag.priorities[a] is Priority.NORMAL
    await hub.drain()
    hub.detector.fleet_event(FleetChange("m3", FleetChangeKind.JOINED))
    assert hub.bag.priorities == {a: Priority.LOW, b: Priority.LOW}
    await hub.drain()
    hub.restart()
    assert {hub.bag.priorities[k] for k in hub.bag.keys} == {Priority.LOW}
