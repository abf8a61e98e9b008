"""Reason codes: why a cluster is left out of a placement, and why a placement cannot be made.

Every exclusion and every unschedulable verdict carries a `ReasonCode`, so the controller
decides on codes (is this cluster out for a transient cause? was it moved off an unreachable
cluster?) and never on the words. The words are rendered once, here, when the reason is made;
they are what the store, the status, the API and `federation plan` show, so they do not change.

A `Reason` is a `str` (its words) that also carries its code and, for a taint, the taint's key:
it compares, prints and stores as the words it always was, and code that decides reads
`.code`. (A plain dataclass would have made every reader of a decision render it; the words
are part of the contract with the store and the tests, the codes are the contract with code.)
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a cluster is not a target, or why nothing can be placed."""

    EXCLUDED_BY_NAME = "ExcludedByName"
    """Listed in excludeClusters."""
    NOT_IN_CLUSTER_NAMES = "NotInClusterNames"
    SELECTOR_MISMATCH = "SelectorMismatch"
    """Not matched by clusterSelector."""
    TAINT_NO_EXECUTE = "TaintNoExecute"
    """An untolerated NoExecute taint (`Reason.subject` is the taint's key)."""
    NO_SPREAD_LABEL = "NoSpreadLabel"
    NO_WEIGHT = "NoWeight"
    """Matched by no replicaScheduling.weights entry."""
    TAINT_NO_SCHEDULE = "TaintNoSchedule"
    """An untolerated NoSchedule taint (soft: kept where already placed)."""
    NOT_READY = "NotReady"
    """Soft: kept where already placed."""
    DROPPED_BY_SPREAD = "DroppedBySpread"
    DROPPED_BY_MAX_CLUSTERS = "DroppedByMaxClusters"
    ZERO_SHARE = "ZeroShare"
    """Divided: the cluster's share of the replicas is 0."""
    UNSCHEDULABLE = "Unschedulable"
    """The placement as a whole cannot be met (the cluster itself passed the filters)."""
    NO_CLUSTER = "NoCluster"
    """Unschedulable: no cluster passed the filters."""
    SPREAD_UNMET = "SpreadUnmet"
    """Unschedulable: a spread constraint's minGroups cannot be met."""
    NO_CAPACITY = "NoCapacity"
    """Unschedulable: Divided by available replicas, and no chosen cluster reports any."""
    NO_WORKLOAD_HERE = "NoWorkloadHere"
    """A dependency: no workload that references it is placed on the cluster."""
    RECORDED = "Recorded"
    """Words read back from a stored decision: the code was not stored (nothing decides on it)."""


#: Verdicts about the cluster's state rather than about what the policy asks of it: a resource
#: already placed there stays (see `federation.hub.pipeline`). The unreachable NoExecute taint
#: is transient too, but the placement engine does not know taint keys; the pipeline adds it.
TRANSIENT: frozenset[ReasonCode] = frozenset(
    {ReasonCode.NOT_READY, ReasonCode.TAINT_NO_SCHEDULE, ReasonCode.UNSCHEDULABLE}
)


class Reason(str):
    """Words a person can act on, with the code code decides on."""

    __slots__ = ("code", "subject")
    code: ReasonCode
    subject: str | None

    def __new__(cls, code: ReasonCode, words: str, *, subject: str | None = None) -> Reason:
        self = super().__new__(cls, words)
        self.code = code
        self.subject = subject
        return self

    def __reduce__(self) -> tuple[type[Reason], tuple[ReasonCode, str], dict[str, str | None]]:
        return (Reason, (self.code, str.__str__(self)), {"subject": self.subject})

    def __setstate__(self, state: dict[str, str | None]) -> None:
        self.subject = state.get("subject")
