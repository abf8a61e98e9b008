"""Placement: which member clusters receive a resource, how many replicas each, and why not the others.

Pure functions over immutable snapshots (no I/O): ``match_policies`` picks the governing policy,
``decide`` (or a ``Placer`` for many resources against one snapshot) filters, scores, picks and
divides replicas, and explains every cluster left out.
"""

from federation.placement.decision import Decision, Target, as_reason
from federation.placement.division import divide
from federation.placement.matching import OVERRIDDEN_CONDITION, PolicyMatch, match_policies, policy_selects
from federation.placement.placer import PerReplica, PlacementRequest, Placer, decide, room
from federation.placement.reasons import TRANSIENT, Reason, ReasonCode
from federation.placement.snapshot import (
    Allocatable,
    ClusterSnapshot,
    snapshot_from_entry,
    snapshot_from_member_cluster,
)

__all__ = [
    "OVERRIDDEN_CONDITION",
    "TRANSIENT",
    "Allocatable",
    "ClusterSnapshot",
    "Decision",
    "PerReplica",
    "PlacementRequest",
    "Placer",
    "PolicyMatch",
    "Reason",
    "ReasonCode",
    "Target",
    "as_reason",
    "decide",
    "divide",
    "match_policies",
    "policy_selects",
    "room",
    "snapshot_from_entry",
    "snapshot_from_member_cluster",
]
