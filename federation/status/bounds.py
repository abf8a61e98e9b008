"""Values from members are bounded before they reach the hub.

A member cluster's admin writes the status of the copies in their cluster (and can make its
apiserver answer anything): those values are summed into hub objects, stored in Postgres and
served by the API. Unbounded, one member could freeze the hub's status (replicas 2147483647 on
two members overflowed the int32 sum: every hub status write then failed, forever — issue 10),
or fill the database and the API with megabytes per object. Every member-supplied value passes
through here on its way up:

- counters are integers clamped to the int32 range the hub's field has (clamping is monotonic,
  so sums that kept ``ready <= replicas`` per member still keep it);
- text (health reasons, condition messages, apply errors) is cut to a few hundred characters;
- a status object larger than `STATUS_LIMIT` bytes is stored reduced to its scalar fields and
  condition summaries (marked ``federation.io/truncated``), never whole;
- lists are capped (load-balancer ingress entries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

INT32_MAX = 2**31 - 1
TEXT_LIMIT = 512
"""Characters of one member-supplied message kept (health reasons, condition messages)."""
ERROR_LIMIT = 2048
"""Characters of an apply error kept (the member's apiserver or its webhooks write it)."""
STATUS_LIMIT = 64 * 1024
"""Bytes of one member object's status stored whole in Postgres."""
LIST_LIMIT = 64
"""Entries of a member-supplied list merged into a hub status (e.g. load-balancer ingress)."""
TRUNCATED = "federation.io/truncated"


def clamp_int32(value: Any) -> int:
    """A counter as the hub's int32 field can hold it; anything not an integer counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, min(INT32_MAX, value))


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` of at most ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    more = f"… ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(more))] + more


def bounded_status(status: Mapping[str, Any], limit: int = STATUS_LIMIT) -> dict[str, Any]:
    """``status`` as stored for one member copy: whole when small, else reduced (see above)."""
    raw = orjson.dumps(status)
    if len(raw) <= limit:
        return dict(status)
    reduced: dict[str, Any] = {
        TRUNCATED: f"the member's status was {len(raw)} bytes; kept: scalars, conditions"
    }
    for key, value in status.items():
        if isinstance(value, bool | int | float) or value is None:
            reduced[key] = value
        elif isinstance(value, str):
            reduced[key] = cut(value)
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        reduced["conditions"] = [
            {k: cut(str(v)) for k, v in c.items() if k in ("type", "status", "reason", "message")}
            for c in conditions[:LIST_LIMIT]
            if isinstance(c, Mapping)
        ]
    if len(orjson.dumps(reduced)) > limit:  # thousands of scalar fields: keep only the mark
        return {TRUNCATED: reduced[TRUNCATED]}
    return reduced
