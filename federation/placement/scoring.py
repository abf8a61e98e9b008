"""Scores in [0, 1] used to rank clusters when not all can be chosen (maxClusters, maxGroups).

The score is the cluster's free capacity relative to the roomiest eligible cluster, averaged
over the dimensions any eligible cluster reports (available replicas, CPU, memory, pods), and
halved for each untolerated PreferNoSchedule taint. Only eligible clusters take part, so adding
a cluster that the filters reject never changes anyone's score. With no capacity data at all
every cluster scores 1.0 and ties fall to the cluster name.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from federation.placement.snapshot import ClusterSnapshot


def _dimensions(cluster: ClusterSnapshot) -> tuple[int | None, int | None, int | None, int | None]:
    a = cluster.allocatable
    if a is None:
        return (cluster.available_replicas, None, None, None)
    return (cluster.available_replicas, a.cpu_millicores, a.memory_bytes, a.pods)


def score_clusters(
    names: Collection[str],
    *,
    clusters: Mapping[str, ClusterSnapshot],
    prefer_no_schedule: Mapping[str, int],
) -> dict[str, float]:
    """Score of each of ``names`` (the eligible clusters of one decision)."""
    dims = {n: _dimensions(clusters[n]) for n in names}
    maxima = [max((d[i] or 0 for d in dims.values()), default=0) for i in range(4)]
    present = [i for i in range(4) if any(d[i] is not None for d in dims.values())]
    scores: dict[str, float] = {}
    for name, d in dims.items():
        if present:
            parts = [(d[i] or 0) / maxima[i] if maxima[i] > 0 else 0.0 for i in present]
            score = sum(parts) / len(parts)
        else:
            score = 1.0
        penalty = prefer_no_schedule.get(name, 0)
        scores[name] = score * (0.5**penalty) if penalty else score
    return scores
