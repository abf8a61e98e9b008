"""Members sharded over controller replicas: each replica propagates to the members it leases,
the leader alone runs the hub side, and members move between replicas without rewriting a copy.

Four members: the session fleet's three and one apiserver of this module's own (``member-4``:
one more process, rather than a second hub, four apiservers and a Postgres for a fleet of its
own), registered on the session hub for this module and taken out afterwards. The replicas are
`federation run` processes (`tests.controllerhelpers`) on one database, with a short lease TTL
so that a killed replica's members move within seconds.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from federation.devfleet import LocalFleet
from federation.propagate.shard import owned_by
from tests.controllerhelpers import (
    FEDERATION,
    ControllerProcess,
    apply,
    get,
    kubectl,
    register_member,
    register_members,
    replica_processes,
    works,
)
from tests.integration.test_propagation import deployment, policy, write_member_status
from tests.integration.test_propagation_faults import configmaps
from tests.kubehelpers import create_namespace, delete_namespace, delete_policies, eventually

HUB_ID = "itest-shard"
"""With a suffix per test: each test has a database of its own, and copies an earlier test left
in the members (no namespace controller deletes them) must not look like this test's."""
MEMBERS = ("member-1", "member-2", "member-3", "member-4")
LEASE_TTL = 3.0


def _pair() -> list[str]:
    """Two replica ids (deterministic) that split the four members 2/2 between them: the split
    is what rendezvous hashing gives; these ids are ones for which it is even."""
    pool = [f"r{i}" for i in range(64)]
    for i, first in enumerate(pool):
        for second in pool[i + 1 :]:
            if len(owned_by(first, MEMBERS, [first, second])) == 2:
                return [first, second]
    raise AssertionError(f"no two replica ids split {MEMBERS} 2/2")


def _joining(ids: Sequence[str]) -> str:
    """A third replica id that takes exactly one member, leaving both others some."""
    for candidate in (f"j{i}" for i in range(64)):
        everyone = [*ids, candidate]
        if len(owned_by(candidate, MEMBERS, everyone)) == 1 and all(
            owned_by(r, MEMBERS, everyone) for r in ids
        ):
            return candidate
    raise AssertionError(f"no third replica id takes one member from {ids}")


async def leader(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval("SELECT holder FROM controller_leader"))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def member4(fleet: LocalFleet) -> Iterator[LocalFleet]:
    extra = LocalFleet(members=1, hub=False, postgres=False, names=["member-4"])
    extra.start()
    try:
        yield extra
    finally:
        extra.stop()


def ctl(fleet: LocalFleet, member4: LocalFleet, cluster: str) -> LocalFleet:
    """The fleet whose kubeconfig reaches `cluster`."""
    return member4 if cluster == "member-4" else fleet


@pytest.fixture(scope="module")
async def members(fleet: LocalFleet, member4: LocalFleet, hub_crds: None) -> AsyncIterator[None]:
    labels = {"shard": "yes"}
    register_members(fleet, {m: labels for m in MEMBERS[:3]})
    register_member(fleet, member4.clusters["member-4"], labels)
    yield
    # member-4 leaves the session hub with this module: no later test may find it there. Its
    # finalizer would wait for a controller to drain it; the module's replicas are gone.
    kubectl(fleet, "hub", "patch", "membercluster", "member-4", "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
    kubectl(fleet, "hub", "delete", "membercluster", "member-4", "--ignore-not-found", "--wait=false")
    kubectl(fleet, "hub", "-n", "fleet-system", "delete", "secret", "member-4", "--ignore-not-found")


@pytest.fixture
async def ns(fleet: LocalFleet, member4: LocalFleet, namespace: str) -> AsyncIterator[str]:
    """The test's namespace, in member-4 too (the session's `namespace` makes it elsewhere)."""
    cluster = member4.clusters["member-4"]
    await create_namespace(cluster, namespace)
    yield namespace
    await delete_policies(fleet.clusters["hub"], namespace)
    await delete_namespace(cluster, namespace)


@pytest.fixture
async def database(fleet: LocalFleet, members: None) -> AsyncIterator[str]:
    from tests.storehelpers import create_database, drop_database

    name = f"itest_shard_{secrets.token_hex(4)}"
    url = await create_database(fleet.database_url, name)
    yield url
    await drop_database(fleet.database_url, name)


@pytest.fixture
def start(fleet: LocalFleet, database: str, tmp_path: Path) -> Iterator[Any]:
    """Starts replicas by id (all launched, then each waited for); all stopped after the test."""
    started: list[ControllerProcess] = []
    hub_id = f"{HUB_ID}-{secrets.token_hex(3)}"

    def launch(*ids: str) -> list[ControllerProcess]:
        procs = replica_processes(
            fleet, database_url=database, hub_id=hub_id, log_dir=tmp_path, ids=ids, lease_ttl=LEASE_TTL
        )
        started.extend(procs)
        for p in procs:
            p.launch()
        for p in procs:
            p.wait_ready()
        return procs

    yield launch
    for p in started:
        p.stop()
        print(f"replica log: {p.log_path}")


async def leases(database_url: str) -> dict[str, str]:
    """cluster -> holder of every unexpired lease."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT cluster, holder FROM cluster_leases WHERE expires_at > now()")
        return {r["cluster"]: r["holder"] for r in rows}
    finally:
        await conn.close()


async def settled(database_url: str, ids: Sequence[str]) -> dict[str, str]:
    """Wait until every member is leased to the replica rendezvous hashing gives among `ids`."""
    expected = {c: r for r in ids for c in owned_by(r, MEMBERS, ids)}

    async def as_computed() -> dict[str, str]:
        held = await leases(database_url)
        return held if held == expected else {}

    return await eventually(as_computed, timeout=60, interval=0.2, what=f"leases as computed: {expected}")


def cm_policy(namespace: str, prefix: str) -> dict[str, Any]:
    return policy(
        prefix,
        namespace,
        [{"apiVersion": "v1", "kind": "ConfigMap", "labelSelector": {"matchLabels": {"set": prefix}}}],
        placement={"clusterNames": list(MEMBERS)},
    )


def copies(fleet: LocalFleet, member4: LocalFleet, namespace: str, prefix: str) -> dict[str, dict[str, str]]:
    """cluster -> {name: resourceVersion} of the set's copies."""
    out: dict[str, dict[str, str]] = {}
    for c in MEMBERS:
        text = kubectl(ctl(fleet, member4, c), c, "-n", namespace, "get", "configmaps", "-l", f"set={prefix}",
                       "-o", "json")  # fmt: skip
        out[c] = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in json.loads(text)["items"]}
    return out


def handovers(*replicas: ControllerProcess) -> float:
    return sum(r.metric("federation_cluster_lease_handover_seconds_count") for r in replicas)


def writes(replica: ControllerProcess, cluster: str) -> float:
    return replica.metric("federation_member_writes_total", cluster=cluster)


async def test_two_replicas_split_four_members_and_each_writes_only_its_own(
    fleet: LocalFleet, member4: LocalFleet, ns: str, start: Any
) -> None:
    ids = _pair()
    a, b = start(*ids)
    held = await settled(a.database_url, ids)
    mine = {r: sorted(c for c, h in held.items() if h == r) for r in ids}
    assert [len(v) for v in mine.values()] == [2, 2], mine
    listed = await anyio.run_process(
        [FEDERATION, "clusters", "list", "-o", "json", "--database-url", a.database_url]
    )
    assert {c["name"]: c["owner"] for c in json.loads(listed.stdout)} == held

    apply(fleet, "hub", *configmaps(ns, 10, "split"), cm_policy(ns, "split"))

    async def everywhere() -> bool:
        return all(len(v) == 10 for v in copies(fleet, member4, ns, "split").values())

    await eventually(everywhere, timeout=60, what="10 copies in each of the 4 members")
    for replica, rid in ((a, ids[0]), (b, ids[1])):
        for cluster in MEMBERS:
            if cluster in mine[rid]:
                assert writes(replica, cluster) >= 10, (rid, cluster)
            else:
                assert writes(replica, cluster) == 0, f"{rid} wrote to {cluster}, leased to another replica"

    # Status comes up from every member, whichever replica propagates to it: the leader reads
    # the other replica's members from Postgres. Each member reports 1 of 2 replicas ready.
    apply(fleet, "hub", deployment("web", ns, replicas=2),
          policy("web", ns, [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                 placement={"clusterNames": list(MEMBERS)}))  # fmt: skip

    async def deployed() -> bool:
        return all(get(ctl(fleet, member4, c), c, "deployment", "web", ns) is not None for c in MEMBERS)

    await eventually(deployed, timeout=60, what="the Deployment in every member")
    for c in MEMBERS:
        write_member_status(ctl(fleet, member4, c), c, "web", ns, ready=1)

    async def summed() -> bool:
        status = (get(fleet, "hub", "deployment", "web", ns) or {}).get("status") or {}
        assert status.get("replicas") == 8 and status.get("readyReplicas") == 4, status
        conds = {c["type"]: c for c in status.get("conditions") or []}
        message = conds["Progressing"]["message"]
        assert all(f"{c}: 1/2 replicas available" in message for c in MEMBERS), message
        return True

    await eventually(summed, timeout=60, what="the hub status summed over both replicas' members")


async def test_a_killed_replica_s_members_are_taken_over_and_finished_without_rewrites(
    fleet: LocalFleet, member4: LocalFleet, ns: str, start: Any
) -> None:
    ids = _pair()
    procs = dict(zip(ids, start(*ids), strict=True))
    held = await settled(procs[ids[0]].database_url, ids)
    # The leader is killed: the hub side moves too (the other's advisory lock is granted at once).
    victim_id = await leader(procs[ids[0]].database_url)
    (survivor_id,) = [r for r in ids if r != victim_id]
    victim, survivor = procs[victim_id], procs[survivor_id]
    lost = sorted(c for c, h in held.items() if h == victim_id)

    apply(fleet, "hub", *configmaps(ns, 80, "kill"), cm_policy(ns, "kill"))

    async def under_way() -> dict[str, dict[str, str]]:
        seen = copies(fleet, member4, ns, "kill")
        return seen if sum(len(seen[c]) for c in lost) >= 10 else {}

    await eventually(
        under_way, timeout=60, interval=0.05, what="the rollout under way on the victim's members"
    )
    await anyio.to_thread.run_sync(lambda: victim.stop(kill=True))
    before = copies(fleet, member4, ns, "kill")
    applied_before = sum(len(v) for v in before.values())

    await settled(survivor.database_url, [survivor_id])

    async def converged() -> bool:
        return all(len(v) == 80 for v in copies(fleet, member4, ns, "kill").values())

    await eventually(converged, timeout=90, what="all 320 copies, by the survivor")
    after = copies(fleet, member4, ns, "kill")
    rewritten = [(c, n) for c in before for n, rv in before[c].items() if after[c][n] != rv]
    assert rewritten == [], (
        f"{len(rewritten)} of {applied_before} copies applied before the kill were rewritten"
    )

    async def recorded() -> bool:
        rows = await works(survivor.database_url, ns)
        return len(rows) == 320 and all(r["state"] == "applied" for r in rows)

    await eventually(recorded, timeout=60, what="every work recorded as applied")


async def test_a_joining_replica_gets_its_share_without_rewriting_anything(
    fleet: LocalFleet, member4: LocalFleet, ns: str, start: Any
) -> None:
    ids = _pair()
    third = [_joining(ids)]
    a, b = start(*ids)
    await settled(a.database_url, ids)
    apply(fleet, "hub", *configmaps(ns, 40, "join"), cm_policy(ns, "join"))

    async def everywhere() -> bool:
        return all(len(v) == 40 for v in copies(fleet, member4, ns, "join").values())

    await eventually(everywhere, timeout=60, what="40 copies in each member")
    before = copies(fleet, member4, ns, "join")

    handovers_before = handovers(a, b)
    (c,) = start(*third)
    everyone = [*ids, *third]
    held = await settled(a.database_url, everyone)
    moved = sorted(cl for cl, h in held.items() if h == third[0])
    assert len(moved) == 1, held
    for proc, rid in ((a, ids[0]), (b, ids[1]), (c, third[0])):
        held_here = sum(1 for h in held.values() if h == rid)
        assert proc.metric("federation_cluster_leases_held", replica=rid) == held_here
    assert c.metric("federation_cluster_lease_changes_total", cluster=moved[0], change="taken") == 1
    # The member's previous owner stopped its propagator and let it go: one handover, no more.
    assert handovers(a, b) == handovers_before + 1

    # The newcomer's propagator of its member has loaded and checked every copy: a few claim
    # rounds after its informers synced, it has written nothing, and no copy changed.
    rounds = c.metric("federation_claim_rounds_total", cluster=moved[0])

    async def working() -> bool:
        return c.metric("federation_claim_rounds_total", cluster=moved[0]) >= rounds + 3

    await eventually(working, timeout=30, what=f"{third[0]} propagating to {moved[0]}")
    assert c.metric("federation_member_writes_total") == 0
    assert copies(fleet, member4, ns, "join") == before

    # And it propagates what changes next; the others no longer write there.
    others = {r: writes(r, moved[0]) for r in (a, b)}
    updated = configmaps(ns, 40, "join")
    for cm in updated:
        cm["data"]["v"] = "2"
    apply(fleet, "hub", *updated)

    async def updated_everywhere() -> bool:
        for cl in MEMBERS:
            text = kubectl(ctl(fleet, member4, cl), cl, "-n", ns, "get", "configmaps", "-l", "set=join",
                           "-o", "json")  # fmt: skip
            if sorted(i["data"].get("v", "") for i in json.loads(text)["items"]) != ["2"] * 40:
                return False
        return True

    await eventually(updated_everywhere, timeout=60, what="the update in every member")
    assert writes(c, moved[0]) >= 40
    assert {r: writes(r, moved[0]) for r in (a, b)} == others
