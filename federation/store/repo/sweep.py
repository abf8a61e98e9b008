"""What the level-based sweep compares with the hub and the members: every work, in one read.

The sweep (`federation.hub.sweep`) looks for copies that outlived their reason to exist: a work
whose template is gone from the hub, or whose cluster its placement no longer chooses, and a
member copy that no work records. It needs, per work, the template's identity, the cluster,
the state, whether the stored decision still chooses that cluster, and the policy that governed
it (its deletionPolicy says delete or orphan). No manifest is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from federation.store.db import Connection
from federation.store.enums import PolicyKind, WorkState
from federation.store.rows import ObjectRef

SWEEP_ROWS = """
SELECT r.api_group, r.kind, r.namespace, r.name, r.deleted_at IS NOT NULL AS resource_deleted,
       w.cluster, w.state::text AS state, COALESCE(d.chosen, false) AS chosen,
       p.kind AS policy_kind, p.namespace AS policy_namespace, p.name AS policy_name
FROM works w
JOIN resources r ON r.id = w.resource_id
LEFT JOIN placement_decisions d ON d.resource_id = w.resource_id AND d.cluster = w.cluster
LEFT JOIN placements pl ON pl.resource_id = w.resource_id
LEFT JOIN policies p ON p.id = pl.policy_id
"""


@dataclass(frozen=True, slots=True)
class RecordedWork:
    """One work as the sweep sees it."""

    template: ObjectRef
    cluster: str
    state: WorkState
    chosen: bool
    """Whether the stored placement decision still chooses `cluster`."""
    resource_deleted: bool
    """The template's row is marked deleted (`mark_resource_deleted`)."""
    policy: tuple[PolicyKind, str, str] | None
    """(kind, namespace, name) of the policy that placed it, when it is still recorded."""


async def recorded_works(conn: Connection) -> list[RecordedWork]:
    """Every work of every cluster (one row each, no manifest), with its template, cluster,
    state, decision and policy: what the sweep (`federation.hub.sweep`) checks against the hub
    and the members."""
    records = await conn.fetch(SWEEP_ROWS)
    return [
        RecordedWork(
            template=ObjectRef(r["api_group"], r["kind"], r["namespace"], r["name"]),
            cluster=r["cluster"],
            state=WorkState(r["state"]),
            chosen=bool(r["chosen"]),
            resource_deleted=bool(r["resource_deleted"]),
            policy=(PolicyKind(r["policy_kind"]), r["policy_namespace"], r["policy_name"])
            if r["policy_kind"] is not None
            else None,
        )
        for r in records
    ]
