"""The store's side of sharding members over replicas (`federation.store.repo.leases`,
`collected`, migration 0006's notification): real Postgres, one database per test."""

from __future__ import annotations

import anyio

from federation.store import Health, MemberStatusRow, Store
from federation.store.listen import MEMBER_STATUS_CHANNEL, WORKS_CHANNEL, Listener
from federation.store.url import asyncpg_dsn
from tests.integration.store.factories import placed_resource
from tests.kubehelpers import eventually


async def test_taking_an_expired_lease_releases_the_old_holder_s_claims(store: Store) -> None:
    await placed_resource(store, "web", ["member-1", "member-2"])
    assert await store.take_cluster_lease("member-1", holder="dead", ttl_seconds=2) == (True, 0)
    assert await store.take_cluster_lease("member-1", holder="alive", ttl_seconds=30) == (False, 0)
    claimed = await store.claim_due_works("member-1", holder="dead", limit=10, lease_seconds=600)
    assert len(claimed) == 1
    # member-2's works are no concern of a lease of member-1.
    assert len(await store.claim_due_works("member-2", holder="dead", limit=10, lease_seconds=600)) == 1

    async def taken() -> tuple[bool, int] | None:
        got = await store.take_cluster_lease("member-1", holder="alive", ttl_seconds=30)
        return got if got[0] else None

    assert await eventually(taken, timeout=15, what="the expired lease taken") == (True, 1)
    (work,) = await store.claim_due_works("member-1", holder="alive", limit=10, lease_seconds=60)
    assert work.version > claimed[0].version, "the dead holder's result would be refused"
    assert await store.claim_due_works("member-2", holder="alive", limit=10, lease_seconds=60) == []
    # Taking what one holds already renews it and releases nothing of one's own.
    assert await store.take_cluster_lease("member-1", holder="alive", ttl_seconds=30) == (True, 0)


async def test_renewal_keeps_only_what_the_holder_still_has(store: Store) -> None:
    assert (await store.take_cluster_lease("member-1", holder="a", ttl_seconds=30))[0]
    assert (await store.take_cluster_lease("member-2", holder="b", ttl_seconds=30))[0]
    assert await store.renew_cluster_leases(["member-1", "member-2"], holder="a", ttl_seconds=30) == [
        "member-1"
    ]
    assert await store.release_cluster_lease("member-1", holder="a")
    assert await store.renew_cluster_leases(["member-1"], holder="a", ttl_seconds=30) == []
    leases = {lease.cluster: lease.holder for lease in await store.list_cluster_leases()}
    assert leases == {"member-2": "b"}


async def test_handing_over_gives_back_only_the_holder_s_claims_on_that_cluster(store: Store) -> None:
    await placed_resource(store, "web", ["member-1", "member-2"])
    await store.claim_due_works("member-1", holder="a", limit=10, lease_seconds=600)
    await store.claim_due_works("member-2", holder="a", limit=10, lease_seconds=600)
    assert await store.release_cluster_claims("member-1", holder="b") == 0
    assert await store.release_cluster_claims("member-1", holder="a") == 1
    assert len(await store.claim_due_works("member-1", holder="b", limit=10, lease_seconds=60)) == 1
    assert await store.claim_due_works("member-2", holder="b", limit=10, lease_seconds=60) == []


async def test_replicas_heartbeat_and_leave(store: Store) -> None:
    assert await store.heartbeat_replica("r1", ttl_seconds=30) == ["r1"]
    assert await store.heartbeat_replica("r2", ttl_seconds=0.2) == ["r1", "r2"]

    async def r2_expired() -> bool:
        return await store.live_replicas() == ["r1"]

    await eventually(r2_expired, timeout=10, what="r2's heartbeat to expire")
    assert await store.heartbeat_replica("r1", ttl_seconds=30) == ["r1"]
    assert await store.retire_replica("r1")
    assert await store.live_replicas() == []
    assert await store.prune_replicas(older_than_seconds=0) == 1  # r2, expired


async def test_collected_statuses_are_read_by_time_and_cluster_with_the_applied_spec(store: Store) -> None:
    rid = await placed_resource(store, "web", ["member-1", "member-2"], replicas=3)
    rows = [
        MemberStatusRow(
            resource_id=rid, cluster=c, status={"readyReplicas": 1}, health=Health.PROGRESSING,
            member_resource_version=f"{c}-7",
        )
        for c in ("member-1", "member-2")
    ]  # fmt: skip
    await store.upsert_member_statuses(rows)
    found = await store.collected_statuses(since=None, clusters=["member-2"])
    assert [(r.cluster, r.name, r.kind, r.status, r.spec) for r in found] == [
        ("member-2", "web", "Deployment", {"readyReplicas": 1}, {"replicas": 3})
    ]
    assert found[0].member_resource_version == "member-2-7"
    assert await store.collected_statuses(since=found[0].collected_at, clusters=["member-2"]) == []
    assert len(await store.collected_statuses(since=None, clusters=["member-1", "member-2"])) == 2


async def test_every_batch_of_statuses_notifies_and_notifications_reach_a_listener(
    store: Store, database_url: str
) -> None:
    rid = await placed_resource(store, "web", ["member-1"])
    heard: list[tuple[str, str]] = []
    listener = Listener(
        asyncpg_dsn(database_url),
        {
            MEMBER_STATUS_CHANNEL: lambda c, p: heard.append((c, p)),
            WORKS_CHANNEL: lambda c, p: heard.append((c, p)),
        },
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.run)
        await listener.connected.wait()
        row = MemberStatusRow(resource_id=rid, cluster="member-1", status={}, health=Health.HEALTHY)
        await store.upsert_member_statuses([row])
        await store.notify(WORKS_CHANNEL, ["member-1", "member-2"])

        async def all_heard() -> bool:
            expected = [(WORKS_CHANNEL, "member-1"), (WORKS_CHANNEL, "member-2"), (MEMBER_STATUS_CHANNEL, "")]
            return sorted(heard) == sorted(expected)

        await eventually(all_heard, timeout=10, what=f"three notifications (heard {heard})")
        tg.cancel_scope.cancel()
