"""The closed vocabularies of the store, shared by the models, the rows and the SQL.

They are `StrEnum`s so a value is its own database spelling: `WorkState.APPLIED == "applied"`.
"""

from __future__ import annotations

from enum import StrEnum


class WorkState(StrEnum):
    """Where one (resource, cluster) work stands; the propagator moves it, the store records it.

    ``pending``    the desired manifest has not been applied yet (new, or changed since)
    ``applied``    the member holds the desired manifest (``applied_hash == desired_hash``)
    ``conflict``   the member has an object we do not own; stays until the input changes
    ``failed``     the last apply failed; retried at ``next_attempt_at`` (NULL: terminal until
                   the input changes)
    ``deleting``   the cluster is no longer chosen: the member object must be deleted, then the
                   row is removed (`finish_deletion`)
    ``orphaning``  the cluster is no longer chosen and the policy says deletionPolicy=Orphan:
                   our ownership marks must be removed from the member object, which stays
    ``orphaned``   done orphaning: the row remains as a record until the resource goes away or
                   the cluster is chosen again (then it becomes ``pending``: adopted back)
    """

    PENDING = "pending"
    APPLIED = "applied"
    CONFLICT = "conflict"
    FAILED = "failed"
    DELETING = "deleting"
    ORPHANING = "orphaning"
    ORPHANED = "orphaned"


#: States in which a work is being taken away from its cluster (not "desired" there any more).
UNPLACED_STATES: frozenset[WorkState] = frozenset(
    {WorkState.DELETING, WorkState.ORPHANING, WorkState.ORPHANED}
)


class Health(StrEnum):
    """The health of a propagated object in one member, from the status collector.

    Declared from best to worst: Postgres orders enum values by declaration, so ``max(health)``
    in SQL is the worst health (a chosen cluster with no status yet counts as Unknown).
    """

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    UNKNOWN = "Unknown"
    DEGRADED = "Degraded"


class EventType(StrEnum):
    """What an event records (a CHECK constraint in the `events` table keeps to this list)."""

    APPLIED = "Applied"
    DRIFT_CORRECTED = "DriftCorrected"
    CONFLICT = "Conflict"
    FAILOVER = "Failover"
    APPLY_FAILED = "ApplyFailed"
    DELETED = "Deleted"
    ORPHANED = "Orphaned"
    ADOPTED = "Adopted"
    UNSCHEDULABLE = "Unschedulable"
    CLUSTER_NOT_READY = "ClusterNotReady"
    CLUSTER_READY = "ClusterReady"
    STATUS_REJECTED = "StatusRejected"
    """The hub's apiserver refused an aggregated status write (migration 0005)."""
    ROLLOUT_STARTED = "RolloutStarted"
    """A template's new revision started a staged rollout (migration 0008 for the five)."""
    ROLLOUT_STAGE_PASSED = "RolloutStagePassed"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLOUT_HALTED = "RolloutHalted"
    ROLLOUT_ROLLED_BACK = "RolloutRolledBack"


class PolicyKind(StrEnum):
    """The policy objects the hub holds."""

    PROPAGATION_POLICY = "PropagationPolicy"
    CLUSTER_PROPAGATION_POLICY = "ClusterPropagationPolicy"
    OVERRIDE_POLICY = "OverridePolicy"
    CLUSTER_OVERRIDE_POLICY = "ClusterOverridePolicy"
