"""Sharing replicas among clusters in proportion to weights, summing exactly to the total.

We use the Sainte-Laguë (Webster) highest-averages method rather than Hamilton's largest
remainder. Both give exact sums and near-proportional shares, but largest remainder is not
*population monotone*: with weights a=1, b=1, c=4 and 2 replicas it gives a=1, c=1, and removing
b (which had none!) gives a=0, c=2 — an unrelated change moves a running replica. A divisor
method cannot do that (Balinski & Young): removing a cluster only hands its own share to the
others, and growing the total never takes a replica away. Ties go to the earlier cluster name.

Each cluster's k-th replica (k = 0, 1, ...) has the priority ``w / (k + 1/2)``; the allocation is
the ``total`` highest priorities, ties broken by name. It is computed by rounding the exact
quotas (which yields a prefix of that order) and then adding or removing single replicas.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def divide(total: int, weights: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Replicas per name; ``weights`` are (name, weight >= 0) with unique names in any order."""
    if total < 0:
        raise ValueError(f"cannot divide a negative number of replicas ({total})")
    items = sorted(weights)
    out = {name: 0 for name, _ in items}
    weight_sum = sum(w for _, w in items)
    if total == 0 or weight_sum == 0:
        return out
    if any(w < 0 for _, w in items):
        raise ValueError("weights must not be negative")
    # Round half up of the exact quota: every replica whose priority is >= weight_sum / total.
    alloc = [(2 * w * total + weight_sum) // (2 * weight_sum) for _, w in items]
    given = sum(alloc)
    if given < total:
        # Highest next priority first; on a tie the earlier name (lower index) wins.
        gain = [_Priority(w, 2 * alloc[i] + 1, i, first=True) for i, (_, w) in enumerate(items) if w > 0]
        heapq.heapify(gain)
        while given < total:
            i = heapq.heappop(gain).index
            alloc[i] += 1
            given += 1
            heapq.heappush(gain, _Priority(items[i][1], 2 * alloc[i] + 1, i, first=True))
    elif given > total:
        # Lowest held priority first; on a tie the later name (higher index) loses its replica.
        loss = [
            _Priority(w, 2 * alloc[i] - 1, i, first=False) for i, (_, w) in enumerate(items) if alloc[i] > 0
        ]
        heapq.heapify(loss)
        while given > total:
            i = heapq.heappop(loss).index
            alloc[i] -= 1
            given -= 1
            if alloc[i] > 0:
                heapq.heappush(loss, _Priority(items[i][1], 2 * alloc[i] - 1, i, first=False))
    for (name, _), n in zip(items, alloc, strict=True):
        out[name] = n
    return out


class _Priority:
    """The exact priority ``weight / divisor`` of one cluster's next (or last) replica, as a
    heap entry: compared by cross-multiplying integers, which is exact like a Fraction without
    building one per comparison (a Divided spec over hundreds of clusters builds hundreds).

    ``first=True`` orders the highest priority first (ties: lower index), for handing out
    replicas; ``first=False`` the lowest first (ties: higher index), for taking them back.
    """

    __slots__ = ("divisor", "first", "index", "weight")

    def __init__(self, weight: int, divisor: int, index: int, *, first: bool) -> None:
        self.weight = weight
        self.divisor = divisor
        self.index = index
        self.first = first

    def __lt__(self, other: _Priority) -> bool:
        mine, theirs = self.weight * other.divisor, other.weight * self.divisor
        if mine != theirs:
            return (mine > theirs) is self.first
        return (self.index < other.index) is self.first
