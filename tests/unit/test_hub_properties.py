"""Issue 11's property, in fake time through the detector, the binder, the tracker and the pure
pipeline (the store's save stood in by `FakeStore`): for any interleaving of template,
dependency, policy and cluster events with reconciles of any queued key,

(i) a dependency is never removed from a cluster while a workload placed there references it
    (unless the dependency itself left the hub), and is removed once none does;
(ii) the copies the members are to hold are a function of the hub's final state, whatever
    the order of the events and reconciles that led there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.hub.keys import ResourceKey
from federation.placement import ClusterSnapshot
from tests.unit.hub_fakes import FakeHub, configmap, deployment, propagation_policy, references_in

CLUSTERS = ("m1", "m2", "m3")
DEPENDENCIES = ("c0", "c1", "c2")
WORKLOADS = ("w0", "w1", "w2")

placements = st.one_of(
    st.just({}),
    st.lists(st.sampled_from(CLUSTERS), unique=True).map(lambda names: {"clusterNames": sorted(names)}),
    st.just({"clusterSelector": {"matchLabels": {"tier": "gold"}}}),
)

events = st.one_of(
    st.tuples(
        st.just("workload"),
        st.sampled_from(WORKLOADS),
        st.lists(st.sampled_from(DEPENDENCIES), unique=True, max_size=2),
    ),
    st.tuples(st.just("delete-workload"), st.sampled_from(WORKLOADS)),
    st.tuples(st.just("dependency"), st.sampled_from(DEPENDENCIES)),
    st.tuples(st.just("delete-dependency"), st.sampled_from(DEPENDENCIES)),
    st.tuples(st.just("policy"), placements),
    st.tuples(st.just("delete-policy")),
    st.tuples(st.just("gold"), st.lists(st.sampled_from(CLUSTERS), unique=True)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("settle")),
    st.tuples(st.just("reconcile"), st.integers(0, 50)),
    st.tuples(st.just("reconcile"), st.integers(0, 50)),
    st.tuples(st.just("reconcile"), st.integers(0, 50)),
)


def fleet(gold: list[str]) -> list[ClusterSnapshot]:
    return [ClusterSnapshot(name=c, labels={"tier": "gold"} if c in gold else {}) for c in CLUSTERS]


Copies = dict[str, dict[ResourceKey, Mapping[str, Any]]]


def referenced(copies: Copies, cluster: str) -> set[ResourceKey]:
    """The dependencies the workload copies on `cluster` reference."""
    out: set[ResourceKey] = set()
    for manifest in copies.get(cluster, {}).values():
        out |= references_in(manifest)
    return out


def apply_event(hub: FakeHub, event: tuple[Any, ...]) -> None:
    match event:
        case ("workload", name, refs):
            hub.apply(deployment(name, refs=refs))
        case ("delete-workload", name):
            hub.delete(ResourceKey("apps", "Deployment", "shop", name))
        case ("dependency", name):
            hub.apply(configmap(name))
        case ("delete-dependency", name):
            hub.delete(ResourceKey("", "ConfigMap", "shop", name))
        case ("policy", placement):
            hub.apply_policy(propagation_policy("pp", placement=placement))
        case ("delete-policy",):
            hub.delete_policy(propagation_policy("pp"))
        case ("gold", gold):
            hub.set_clusters(fleet(gold))
        case ("restart",):
            hub.restart()


def check_never_removed_while_referenced(hub: FakeHub, before: Copies, after: Copies) -> None:
    for cluster in CLUSTERS:
        gone = before.get(cluster, {}).keys() - after.get(cluster, {}).keys()
        still = referenced(after, cluster)
        for key in gone:
            if key.kind == "ConfigMap" and key in hub.templates:
                assert key not in still, f"{key} removed from {cluster} while a workload there references it"


def check_converged(hub: FakeHub) -> None:
    copies = hub.store.copies()
    for cluster in CLUSTERS:
        deps = {k for k in copies.get(cluster, {}) if k.kind == "ConfigMap"}
        wanted = {k for k in referenced(copies, cluster) if k in hub.templates}
        assert deps == wanted, f"{cluster}: dependencies {deps} but workloads reference {wanted}"


async def play(script: list[tuple[Any, ...]]) -> tuple[FakeHub, Copies]:
    hub = FakeHub(fleet([]))
    hub.apply_policy(propagation_policy("pp"))
    gold: list[str] = []
    for event in script:
        if event[0] == "gold":
            gold = list(event[1])
        if event[0] == "settle":
            before = hub.store.copies()
            await hub.drain()
            check_never_removed_while_referenced(hub, before, hub.store.copies())
            continue
        if event[0] == "reconcile":
            if hub.bag.keys:
                before = hub.store.copies()
                await hub.step(event[1])
                check_never_removed_while_referenced(hub, before, hub.store.copies())
            continue
        apply_event(hub, event)
    before = hub.store.copies()
    await hub.drain()
    check_never_removed_while_referenced(hub, before, hub.store.copies())
    check_converged(hub)

    # The same final hub state, reconciled from scratch in the plainest order.
    fresh = FakeHub(fleet(gold))
    for obj in hub.policies.all():
        raw = hub.policies.raw(obj[0])
        assert raw is not None
        fresh.apply_policy(raw)
    for template in hub.templates.values():
        fresh.apply(template)
    await fresh.drain()
    return hub, fresh.store.copies()


@settings(max_examples=250, deadline=None)
@given(st.lists(events, max_size=40))
def test_dependencies_and_copies_are_a_function_of_the_hub(script: list[tuple[Any, ...]]) -> None:
    hub, fresh = anyio.run(play, script)
    assert hub.store.copies() == fresh
