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
from fractions import Fraction


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
        heap = [(-Fraction(w, 2 * alloc[i] + 1), i) for i, (_, w) in enumerate(items) if w > 0]
        heapq.heapify(heap)
        while given < total:
            _, i = heapq.heappop(heap)
            alloc[i] += 1
            given += 1
            heapq.heappush(heap, (-Fraction(items[i][1], 2 * alloc[i] + 1), i))
    elif given > total:
        # Lowest held priority first; on a tie the later name (higher index) loses its replica.
        heap = [(Fraction(w, 2 * alloc[i] - 1), -i) for i, (_, w) in enumerate(items) if alloc[i] > 0]
        heapq.heapify(heap)
        while given > total:
            _, neg = heapq.heappop(heap)
            i = -neg
            alloc[i] -= 1
            given -= 1
            if alloc[i] > 0:
                heapq.heappush(heap, (Fraction(items[i][1], 2 * alloc[i] - 1), -i))
    for (name, _), n in zip(items, alloc, strict=True):
        out[name] = n
    return out
