"""Status up, in data-flow order: `collect` (a member copy's status, assessed and bounded, on its
way to Postgres and the writer), `health` and `aggregate` (pure: per-kind health, the members'
statuses summed into the template's), `bounds` (every member-supplied value bounded), and
`writer` (the aggregate written into the hub template, coalesced, refusals reported).

The package exports the pure functions only; import `collect` and `writer` by module (they do
I/O and sit on the store and the runtime)."""

from federation.status.aggregate import aggregate_status, merge_conditions, supports_hub_status
from federation.status.health import Assessment, Health, assess, worst

__all__ = [
    "Assessment",
    "Health",
    "aggregate_status",
    "assess",
    "merge_conditions",
    "supports_hub_status",
    "worst",
]
