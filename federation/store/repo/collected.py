"""Reads of `member_status` for the leader's status writer, when a member's propagator runs on
another replica (the leader cannot read that member's informers: it reads what was collected).

Each row comes with what the hub-side aggregation needs besides the stored status: the resource's
identity (to key it as the hub does), and the two spec fields health assessment reads
(``replicas``, ``updateStrategy``) from the work's desired manifest — what was applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from federation.store.db import Connection

SINCE = """
SELECT r.api_group, r.kind, r.namespace, r.name, m.cluster, m.status, m.member_resource_version,
       m.collected_at,
       jsonb_strip_nulls(jsonb_build_object(
           'replicas', w.desired->'spec'->'replicas',
           'updateStrategy', w.desired->'spec'->'updateStrategy')) AS spec
FROM member_status m
JOIN resources r ON r.id = m.resource_id
JOIN works w ON w.resource_id = m.resource_id AND w.cluster = m.cluster
WHERE ($1::timestamptz IS NULL OR m.collected_at > $1)
  AND m.cluster = ANY($2::text[])
"""


@dataclass(frozen=True)
class CollectedStatus:
    """One member copy's status as its propagator stored it."""

    api_group: str
    kind: str
    namespace: str
    name: str
    cluster: str
    status: dict[str, Any]
    spec: dict[str, Any]
    member_resource_version: str | None
    collected_at: datetime


async def collected_statuses(
    conn: Connection, *, since: datetime | None, clusters: Sequence[str]
) -> list[CollectedStatus]:
    """Statuses of `clusters` collected after `since` (all of them with None)."""
    records = await conn.fetch(SINCE, since, list(clusters))
    return [CollectedStatus(**dict(r)) for r in records]  # the columns are the fields


async def notify(conn: Connection, channel: str, payloads: Sequence[str]) -> None:
    """One NOTIFY on `channel` per payload, in one statement (see `federation.store.listen`)."""
    await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", channel, list(payloads))
