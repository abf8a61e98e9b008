"""Which propagation policy governs a resource when several select it.

DESIGN.md rule 4: higher ``priority`` wins; ties go to the older policy (creationTimestamp),
then to the name (then kind and namespace, so the order is total and the result never depends
on the order policies were listed). Every loser is reported with the reason it lost; the
controller sets condition ``Overridden`` on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from federation.api import PolicyLike, PropagationPolicy

OVERRIDDEN_CONDITION = "Overridden"
"""The condition type a losing policy reports (status False on the winner, True on losers)."""

_NEWEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PolicyMatch:
    """The governing policy of one resource (None: no policy selects it) and the policies it beat."""

    winner: PolicyLike | None
    losers: tuple[tuple[PolicyLike, str], ...] = ()


def policy_selects(policy: PolicyLike, resource: Mapping[str, Any]) -> bool:
    """Whether one policy selects the resource.

    A PropagationPolicy only selects namespaced resources of its own namespace; a
    ClusterPropagationPolicy selects in any namespace and cluster-scoped resources.
    """
    namespace = (resource.get("metadata") or {}).get("namespace") or None
    if isinstance(policy, PropagationPolicy) and (
        namespace is None or namespace != policy.metadata.namespace
    ):
        return False
    return any(sel.matches(resource) for sel in policy.spec.resource_selectors)


def _created(policy: PolicyLike) -> datetime:
    ts = policy.metadata.creation_timestamp
    if not ts:
        return _NEWEST  # not created yet (e.g. `federation plan` from files): younger than any stored policy
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return _NEWEST
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _precedence(policy: PolicyLike) -> tuple[int, datetime, str, str, str]:
    return (
        -policy.spec.priority,
        _created(policy),
        policy.metadata.name,
        policy.kind,
        policy.metadata.namespace or "",
    )


def _why_lost(loser: PolicyLike, winner: PolicyLike) -> str:
    lp, wp = loser.spec.priority, winner.spec.priority
    if lp != wp:
        return f"overridden by {winner.ref}: priority {lp} < {wp}"
    lc, wc = _created(loser), _created(winner)
    if lc != wc:
        when = winner.metadata.creation_timestamp or "?"
        return f"overridden by {winner.ref}: same priority {lp}, and it is older (created {when})"
    return f"overridden by {winner.ref}: same priority {lp} and age, and its name sorts first"


def match_policies(resource: Mapping[str, Any], policies: Sequence[PolicyLike]) -> PolicyMatch:
    """The winner among the policies that select ``resource``, and every loser with its reason."""
    selecting = sorted((p for p in policies if policy_selects(p, resource)), key=_precedence)
    if not selecting:
        return PolicyMatch(winner=None)
    winner = selecting[0]
    return PolicyMatch(winner=winner, losers=tuple((p, _why_lost(p, winner)) for p in selecting[1:]))
