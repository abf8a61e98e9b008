"""Which replica owns which member (`federation.propagate.shard`): the same answer on every
replica, a fair share each, and a joining or leaving replica moves only what it must."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.propagate.shard import Round, owned_by, owner

names = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12)
replica_sets = st.sets(names, min_size=1, max_size=6)
cluster_sets = st.sets(names, min_size=0, max_size=40)


@given(clusters=cluster_sets, replicas=replica_sets)
def test_every_cluster_has_exactly_one_owner_among_the_replicas(
    clusters: set[str], replicas: set[str]
) -> None:
    shares = [owned_by(r, clusters, replicas) for r in replicas]
    assert sum(len(s) for s in shares) == len(clusters)
    assert set().union(*shares) == clusters
    for c in clusters:
        assert owner(c, replicas) in replicas


@given(clusters=cluster_sets, replicas=replica_sets)
def test_the_answer_does_not_depend_on_the_order_replicas_are_listed(
    clusters: set[str], replicas: set[str]
) -> None:
    ordered = sorted(replicas)
    for c in clusters:
        assert owner(c, ordered) == owner(c, list(reversed(ordered)))


@given(clusters=cluster_sets, replicas=replica_sets, joining=names)
def test_a_joining_replica_takes_clusters_only_for_itself(
    clusters: set[str], replicas: set[str], joining: str
) -> None:
    after = replicas | {joining}
    for c in clusters:
        before_owner, after_owner = owner(c, replicas), owner(c, after)
        assert after_owner in (before_owner, joining)


@given(clusters=cluster_sets, replicas=replica_sets.filter(lambda r: len(r) >= 2))
def test_a_leaving_replica_moves_only_its_own_clusters(clusters: set[str], replicas: set[str]) -> None:
    leaving = sorted(replicas)[0]
    after = replicas - {leaving}
    for c in clusters:
        if owner(c, replicas) != leaving:
            assert owner(c, after) == owner(c, replicas)


def test_a_thousand_clusters_spread_evenly_enough_over_four_replicas() -> None:
    clusters = [f"member-{i}" for i in range(1000)]
    replicas = [f"federation-{i}" for i in range(4)]
    shares = [len(owned_by(r, clusters, replicas)) for r in replicas]
    assert sum(shares) == 1000
    assert min(shares) > 200 and max(shares) < 300, shares


def test_a_replica_counts_itself_even_before_its_heartbeat_is_seen() -> None:
    assert owned_by("new", ["a"], []) == frozenset({"a"})


def test_a_round_renews_what_is_ours_hands_over_what_is_not_and_takes_what_should_be() -> None:
    plan = Round.plan(
        held=frozenset({"kept", "moved", "stolen"}),
        renewed=frozenset({"kept", "moved"}),
        want=frozenset({"kept", "new", "stolen"}),
    )
    assert plan.lost == {"stolen"}  # another replica has it now, whatever we want
    assert plan.release == {"moved"}
    assert plan.take == {"new", "stolen"}  # wanted: taken back if free or expired


@given(held=cluster_sets, renewed=cluster_sets, want=cluster_sets)
def test_after_a_round_we_hold_at_most_what_we_want(
    held: set[str], renewed: set[str], want: set[str]
) -> None:
    plan = Round.plan(held=frozenset(held), renewed=frozenset(renewed), want=frozenset(want))
    after = (frozenset(held) - plan.lost - plan.release) | plan.take
    assert after <= frozenset(want)
    assert plan.take | (frozenset(held) - plan.lost - plan.release) == frozenset(want)
