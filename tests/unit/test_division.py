"""Replica division: exact sums, proportionality, determinism, and population monotonicity."""

from __future__ import annotations

import heapq
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.placement import divide

weights = st.dictionaries(st.sampled_from([f"c{i}" for i in range(10)]), st.integers(0, 20), min_size=1)


@settings(deadline=None)
@given(total=st.integers(0, 500), w=weights)
def test_shares_sum_exactly_to_the_total(total: int, w: dict[str, int]) -> None:
    shares = divide(total, list(w.items()))
    assert set(shares) == set(w)
    if sum(w.values()) == 0:
        assert sum(shares.values()) == 0
    else:
        assert sum(shares.values()) == total
        assert all(shares[n] == 0 for n, weight in w.items() if weight == 0)


@settings(deadline=None)
@given(total=st.integers(0, 500), w=weights, data=st.data())
def test_order_of_input_does_not_matter(total: int, w: dict[str, int], data: st.DataObject) -> None:
    items = list(w.items())
    shuffled = data.draw(st.permutations(items))
    assert divide(total, items) == divide(total, shuffled)


@settings(deadline=None)
@given(total=st.integers(1, 500), w=weights)
def test_a_heavier_cluster_never_gets_fewer_replicas(total: int, w: dict[str, int]) -> None:
    shares = divide(total, list(w.items()))
    for a in w:
        for b in w:
            if w[a] > w[b]:
                assert shares[a] >= shares[b], (a, b, shares)


@settings(deadline=None)
@given(total=st.integers(1, 500), wa=st.integers(1, 50), wb=st.integers(1, 50))
def test_two_clusters_get_their_quota_rounded(total: int, wa: int, wb: int) -> None:
    shares = divide(total, [("a", wa), ("b", wb)])
    quota = total * wa / (wa + wb)
    assert abs(shares["a"] - quota) <= 0.5 + 1e-9


@settings(deadline=None)
@given(total=st.integers(0, 200), w=weights, data=st.data())
def test_removing_a_cluster_moves_only_its_share(total: int, w: dict[str, int], data: st.DataObject) -> None:
    if len(w) < 2:
        return
    removed = data.draw(st.sampled_from(sorted(w)))
    before = divide(total, list(w.items()))
    after = divide(total, [(n, x) for n, x in w.items() if n != removed])
    for name in after:
        assert after[name] >= before[name], (name, before, after)


@settings(deadline=None)
@given(total=st.integers(0, 200), w=weights)
def test_growing_the_total_never_takes_a_replica_away(total: int, w: dict[str, int]) -> None:
    before = divide(total, list(w.items()))
    after = divide(total + 1, list(w.items()))
    assert all(after[n] >= before[n] for n in w)


def test_two_to_one() -> None:
    assert divide(6, [("eu", 2), ("us", 1)]) == {"eu": 4, "us": 2}
    assert divide(3, [("us", 1), ("eu", 2)]) == {"eu": 2, "us": 1}


def test_ties_go_to_the_earlier_name() -> None:
    assert divide(1, [("b", 1), ("a", 1)]) == {"a": 1, "b": 0}
    assert divide(3, [("c", 1), ("b", 1), ("a", 1), ("d", 1)]) == {"a": 1, "b": 1, "c": 1, "d": 0}


def test_largest_remainder_counterexample_is_stable_here() -> None:
    # Hamilton's method gives a=1,c=1 then, without b (which had nothing), a=0,c=2.
    assert divide(2, [("a", 1), ("b", 1), ("c", 4)]) == {"a": 0, "b": 0, "c": 2}
    assert divide(2, [("a", 1), ("c", 4)]) == {"a": 0, "c": 2}


def test_negative_total_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        divide(-1, [("a", 1)])


def _fraction_divide(total: int, weights: dict[str, int]) -> dict[str, int]:
    """The divisor method as first written, with a heap of Fractions: the reference for the
    integer cross-multiplying heap entries `divide` uses now."""
    items = sorted(weights.items())
    out = {name: 0 for name, _ in items}
    weight_sum = sum(w for _, w in items)
    if total == 0 or weight_sum == 0:
        return out
    alloc = [(2 * w * total + weight_sum) // (2 * weight_sum) for _, w in items]
    given = sum(alloc)
    if given < total:
        heap = [(-Fraction(w, 2 * alloc[i] + 1), i) for i, (_, w) in enumerate(items) if w > 0]
        heapq.heapify(heap)
        while given < total:
            _, i = heapq.heappop(heap)
            alloc[i] += 1
            given += 1
            heapq.heappush(heap, (-Fraction(items[i][1], 2 * alloc[i] + 1), i))
    elif given > total:
        heap2 = [(Fraction(w, 2 * alloc[i] - 1), -i) for i, (_, w) in enumerate(items) if alloc[i] > 0]
        heapq.heapify(heap2)
        while given > total:
            _, neg = heapq.heappop(heap2)
            alloc[-neg] -= 1
            given -= 1
            if alloc[-neg] > 0:
                heapq.heappush(heap2, (Fraction(items[-neg][1], 2 * alloc[-neg] - 1), neg))
    return {name: n for (name, _), n in zip(items, alloc, strict=True)}


many_weights = st.dictionaries(
    st.sampled_from([f"c{i:03d}" for i in range(300)]),
    st.integers(0, 2**31 - 1) | st.integers(0, 6),
    min_size=1,
)


@settings(deadline=None, max_examples=300)
@given(total=st.integers(0, 2000), w=weights | many_weights)
def test_the_integer_heap_gives_what_fractions_give(total: int, w: dict[str, int]) -> None:
    assert divide(total, list(w.items())) == _fraction_divide(total, w)


def test_both_directions_of_the_correction_are_exercised() -> None:
    # Rounded quotas too few (four quotas of 0.25 round to 0): ties go to the earliest name ...
    assert divide(1, [("a", 1), ("b", 1), ("c", 1), ("d", 1)]) == {"a": 1, "b": 0, "c": 0, "d": 0}
    # ... too many (three quotas of 0.67 round to 1): the latest name gives its replica back.
    assert divide(2, [("a", 1), ("b", 1), ("c", 1)]) == {"a": 1, "b": 1, "c": 0}
    assert divide(7, [("a", 3), ("b", 3), ("c", 1)]) == _fraction_divide(7, {"a": 3, "b": 3, "c": 1})
