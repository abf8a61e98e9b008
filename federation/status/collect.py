"""Status collection: what the hub keeps of a member copy's status, on its way up.

A member's propagator watches its copies (one informer per kind); each copy it sees passes
through here: its health is assessed by kind (`federation.status.health`), every value the
member supplied is bounded (`federation.status.bounds`: the member's admin writes them), and the
row waits for the propagator's next batched write to `member_status` (the latest per resource
wins, so a burst of updates is one row). The hub's status writer (`federation.status.writer`)
is told the resource changed, and aggregates the members' copies into the template's status.

    member informer ─► StatusCollector ─► member_status rows (Postgres: API, CLI, page)
                                      └─► mark ─► StatusWriter ─► hub template .status
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from federation.kube import Obj
from federation.kube.keys import ResourceKey
from federation.status.bounds import bounded_status, cut
from federation.status.health import assess
from federation.store import Health, MemberStatusRow, ResourceId

#: Told that a member copy of a resource changed (the hub's status writer coalesces these).
StatusListener = Callable[[ResourceKey], None]


def member_status_row(resource_id: ResourceId, cluster: str, obj: Obj) -> MemberStatusRow:
    """The row of one member copy: its health, and its status bounded before it is stored."""
    a = assess(obj)
    status: Any = obj.get("status")
    return MemberStatusRow(
        resource_id=resource_id,
        cluster=cluster,
        status=bounded_status(status if isinstance(status, dict) else {}),
        health=Health(a.health.value),
        observed_generation=a.observed_generation,
        member_resource_version=str((obj.get("metadata") or {}).get("resourceVersion", "")) or None,
        health_reason=cut(a.reason),
    )


class StatusCollector:
    """The statuses one member's copies showed since the last flush, and the hub told of them."""

    def __init__(self, cluster: str, on_status: StatusListener) -> None:
        self.cluster = cluster
        self.on_status = on_status
        self._pending: dict[ResourceId, MemberStatusRow] = {}

    def seen(self, resource_id: ResourceId, key: ResourceKey, obj: Obj) -> None:
        """A copy of ours was added or updated in the member."""
        self._pending[resource_id] = member_status_row(resource_id, self.cluster, obj)
        self.on_status(key)

    def gone(self, key: ResourceKey) -> None:
        """A copy of ours left the member: the aggregate changes (its row goes with its work)."""
        self.on_status(key)

    def take(self) -> list[MemberStatusRow]:
        """What to write now; collected afresh from here."""
        rows, self._pending = list(self._pending.values()), {}
        return rows
