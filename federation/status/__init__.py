"""Status up: per-kind health of member copies, aggregation into the hub object's status."""

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
