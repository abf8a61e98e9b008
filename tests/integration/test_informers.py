"""Informers against real apiservers: sync, ordering, 410 Gone, apiserver restarts, bookmarks,
and one shared watch for many consumers."""

from __future__ import annotations

import contextlib
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from federation.devfleet import LocalFleet
from federation.informers import Handlers, Informer, InformerFactory, InformerKey
from federation.informers.transform import strip_managed_fields
from federation.kube import GVK, Discovery, KubeClient, Obj, ResourceInfo, object_key
from federation.kube.resources import resource_version
from federation.metrics import WATCH_EVENTS, WATCH_RESTARTS
from tests.kubehelpers import crd_manifest, create_crd_and_wait, eventually

CONFIGMAP = GVK("", "v1", "ConfigMap")


@contextlib.asynccontextmanager
async def connect(fleet: LocalFleet, cluster: str) -> AsyncIterator[KubeClient]:
    info = fleet.clusters[cluster]
    client = await KubeClient.connect(cluster, kubeconfig=info.kubeconfig, context=info.context)
    try:
        yield client
    finally:
        await client.close()


async def configmaps(client: KubeClient) -> ResourceInfo:
    return await Discovery(client).resource_for(CONFIGMAP)


def cm(name: str, namespace: str, value: str = "v0") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"v": value},
    }


async def create_many(
    client: KubeClient, res: ResourceInfo, objs: list[Obj], *, concurrency: int = 32
) -> None:
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(obj: Obj) -> None:
        async with limiter:
            await client.create(res, obj)

    async with anyio.create_task_group() as tg:
        for obj in objs:
            tg.start_soon(one, obj)


class Recorder:
    """Records what handlers are told, per key, with the object's resourceVersion."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.count: dict[str, int] = defaultdict(int)

    def handlers(self) -> Handlers:
        return Handlers(
            on_add=lambda o: self._rec("add", o),
            on_update=lambda _old, new: self._rec("update", new),
            on_delete=lambda o: self._rec("delete", o),
        )

    def _rec(self, kind: str, obj: Obj) -> None:
        self.events[object_key(obj)].append((kind, resource_version(obj)))
        self.count[kind] += 1

    def kinds(self, key: str) -> list[str]:
        return [k for k, _ in self.events[key]]


@contextlib.asynccontextmanager
async def running(factory: InformerFactory) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(factory.run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def test_initial_sync_of_thousands_then_changes_in_order_per_key(
    fleet: LocalFleet, namespace: str
) -> None:
    async with connect(fleet, "member-1") as client:
        res = await configmaps(client)
        await create_many(client, res, [cm(f"pre-{i:04d}", namespace) for i in range(3000)])

        factory = InformerFactory(client, reflector_options={"page_size": 500})
        informer = factory.informer(res, namespace=namespace)
        rec = Recorder()
        informer.add_handler(rec.handlers())
        async with running(factory):
            with anyio.fail_after(60):
                await informer.wait_for_sync()

            # The first list is served from the apiserver's watch cache (resourceVersion=0, as
            # client-go does), which may lag writes already acknowledged when the machine is
            # loaded: the watch from the list's resourceVersion brings the rest, each once.
            async def all_listed() -> bool:
                return len(informer.store) == 3000

            await eventually(all_listed, timeout=30, what="all 3000 in the informer's store")
            assert rec.count["add"] == 3000
            assert informer.reflector.lists == 1, "3000 objects in pages of 500 are one list"

            keys = [f"{namespace}/live-{i}" for i in range(20)]
            for i in range(20):
                name = f"live-{i}"
                await client.create(res, cm(name, namespace))
                for v in ("v1", "v2"):
                    await client.replace(res, cm(name, namespace, v))
                await client.delete(res, name, namespace)

            async def all_deleted() -> bool:
                return all(rec.kinds(k)[-1:] == ["delete"] for k in keys)

            await eventually(all_deleted, timeout=30, what="every live-* delete seen")
            for key in keys:
                assert rec.kinds(key) == ["add", "update", "update", "delete"], key
                rvs = [int(rv) for _, rv in rec.events[key][:3]]
                assert rvs == sorted(rvs), f"{key}: events out of order: {rvs}"
                assert key not in informer.store
            assert len(informer.store) == 3000


@pytest.fixture(scope="module")
def uncached_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """One cluster whose apiserver serves watches straight from etcd (no watch cache).

    With the watch cache on, an apiserver may serve an old resourceVersion from its own
    history even after etcd compacted it; without it, compaction means 410 at once, which
    is the fault under test.
    """
    state: Path = tmp_path_factory.mktemp("uncached")
    local = LocalFleet(members=0, state_dir=state, postgres=False, apiserver_args=["--watch-cache=false"])
    local.start()
    try:
        yield local
    finally:
        local.stop()


async def test_410_gone_after_compaction_relists_and_delivers_exactly_the_missed_changes(
    uncached_fleet: LocalFleet,
) -> None:
    ns = f"gone-{secrets.token_hex(3)}"
    async with connect(uncached_fleet, "hub") as client:
        await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
        res = await configmaps(client)
        await create_many(client, res, [cm(f"cm-{i}", ns) for i in range(10)])

        informer = Informer(client, InformerKey(res, ns))
        rec = Recorder()
        informer.add_handler(rec.handlers())
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(informer.run)
                await informer.wait_for_sync()
                await client.replace(res, cm("cm-0", ns, "seen-live"))
                await eventually(lambda: _has(rec, f"{ns}/cm-0", "update"), what="a live update")
                scope.cancel()  # the watch is now disconnected
        rv_before = informer.reflector.last_resource_version
        seen_before = {k: list(v) for k, v in rec.events.items()}

        # While nobody watches: one create, one update, one delete; then compact etcd.
        await client.create(res, cm("new", ns))
        await client.replace(res, cm("cm-1", ns, "changed-offline"))
        await client.delete(res, "cm-2", ns)
        revision = await anyio.to_thread.run_sync(uncached_fleet.compact_etcd)
        assert revision > int(rv_before)

        gone = WATCH_RESTARTS.labels("hub", "configmaps", "gone")
        gone_before = gone._value.get()
        async with anyio.create_task_group() as tg:
            tg.start_soon(informer.run)  # resumes the watch from rv_before: 410, then relist
            await eventually(lambda: _has(rec, f"{ns}/cm-2", "delete"), timeout=30, what="the missed delete")
            await eventually(lambda: _has(rec, f"{ns}/new", "add"), timeout=30, what="the missed add")
            tg.cancel_scope.cancel()

        assert gone._value.get() == gone_before + 1, "the resume must have hit 410 Gone"
        assert informer.reflector.lists == 2, "exactly one relist after the 410"
        new_events = {k: v[len(seen_before.get(k, [])) :] for k, v in rec.events.items()}
        new_events = {k: [kind for kind, _ in v] for k, v in new_events.items() if v}
        assert new_events == {
            f"{ns}/new": ["add"],
            f"{ns}/cm-1": ["update"],
            f"{ns}/cm-2": ["delete"],
        }
        # The delete carries the last state we knew of the object.
        assert rec.events[f"{ns}/cm-2"][-1][1] == seen_before[f"{ns}/cm-2"][-1][1]
        live = await client.list(res, ns)
        assert {object_key(o): resource_version(o) for o in live["items"]} == {
            object_key(o): resource_version(o) for o in informer.store.objects()
        }


async def _has(rec: Recorder, key: str, kind: str) -> bool:
    return kind in rec.kinds(key)


async def test_apiserver_restart_mid_stream_loses_no_event(fleet: LocalFleet, namespace: str) -> None:
    async with connect(fleet, "member-2") as client:
        res = await configmaps(client)
        factory = InformerFactory(client)
        informer = factory.informer(res, namespace=namespace)
        rec = Recorder()
        informer.add_handler(rec.handlers())
        async with running(factory):
            await informer.wait_for_sync()
            await create_many(client, res, [cm(f"before-{i}", namespace) for i in range(50)])
            await anyio.to_thread.run_sync(fleet.stop_cluster, "member-2")
            await anyio.to_thread.run_sync(fleet.start_cluster, "member-2")
            # After the restart: more creates, updates and deletes, mixed.
            await create_many(client, res, [cm(f"after-{i}", namespace) for i in range(50)])
            for i in range(0, 50, 5):
                await client.replace(res, cm(f"before-{i}", namespace, "after-restart"))
                await client.delete(res, f"after-{i}", namespace)

            async def store_matches_fresh_list() -> bool:
                live = await client.list(res, namespace)
                want = {object_key(o): resource_version(o) for o in live["items"]}
                have = {object_key(o): resource_version(o) for o in informer.store.objects()}
                assert have == want, f"{len(have)} cached vs {len(want)} live"
                return True

            await eventually(store_matches_fresh_list, timeout=60, interval=0.5, what="cache == fresh list")
            assert len(informer.store) == 90
            for i in range(0, 50, 5):
                assert rec.kinds(f"{namespace}/after-{i}")[-1] == "delete"


async def test_bookmarks_advance_a_quiet_watch(fleet: LocalFleet, namespace: str) -> None:
    async with connect(fleet, "member-1") as client:
        res = await configmaps(client)
        # A short server-side timeout makes the apiserver send its bookmark within seconds
        # (it sends one shortly before a watch's timeout, and about once a minute otherwise).
        factory = InformerFactory(client, reflector_options={"min_watch_timeout": 4.0})
        informer = factory.informer(res, namespace=namespace)  # this namespace stays empty
        rec = Recorder()
        informer.add_handler(rec.handlers())
        bookmarks = WATCH_EVENTS.labels("member-1", "configmaps", "BOOKMARK")
        bookmarks_before = bookmarks._value.get()
        async with running(factory):
            await informer.wait_for_sync()
            start_rv = int(informer.reflector.last_resource_version)
            # Writes elsewhere move the resource's resourceVersion forward; our watch sees
            # none of them as events, only through bookmarks.
            other = f"{namespace}-other"
            await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": other}})
            try:
                await create_many(client, res, [cm(f"elsewhere-{i}", other) for i in range(5)])

                async def advanced() -> bool:
                    return int(informer.reflector.last_resource_version) > start_rv

                await eventually(advanced, timeout=30, what="a bookmark advancing the resourceVersion")
            finally:
                await client.request("DELETE", f"/api/v1/namespaces/{other}")
        assert dict(rec.events) == {}, "a quiet watch delivers no events"
        assert bookmarks._value.get() > bookmarks_before
        assert informer.reflector.lists == 1, "the resourceVersion moved by bookmark, not by a relist"


async def test_a_stalled_watch_is_detected_and_reopened(fleet: LocalFleet, namespace: str) -> None:
    async with connect(fleet, "member-1") as client:
        res = await configmaps(client)
        # Nothing is written in this namespace and bookmarks come about once a minute: with a
        # 1.5 s stall deadline the stream looks stalled, and must be re-opened, not abandoned.
        factory = InformerFactory(client, reflector_options={"stall_timeout": 1.5})
        informer = factory.informer(res, namespace=namespace)
        rec = Recorder()
        informer.add_handler(rec.handlers())
        stalls = WATCH_RESTARTS.labels("member-1", "configmaps", "stall")
        before = stalls._value.get()
        async with running(factory):
            await informer.wait_for_sync()

            async def stalled() -> bool:
                return stalls._value.get() > before

            await eventually(stalled, timeout=20, what="the stall to be detected")
            await client.create(res, cm("after-stall", namespace))
            await eventually(
                lambda: _has(rec, f"{namespace}/after-stall", "add"),
                timeout=20,
                what="an event after re-opening",
            )
        assert informer.reflector.watches_opened >= 2
        assert informer.reflector.lists == 1, "a stall re-opens the watch; it does not relist"


async def test_two_consumers_share_one_watch(fleet: LocalFleet, namespace: str) -> None:
    group = f"t{secrets.token_hex(4)}.example.com"
    await create_crd_and_wait(fleet.clusters["member-1"], crd_manifest(group, "Gadget", "gadgets"))
    async with connect(fleet, "member-1") as client:
        res = await Discovery(client).resource_for(GVK(group, "v1", "Gadget"))
        factory = InformerFactory(client)
        first, second = Recorder(), Recorder()
        a = factory.informer(res)
        b = factory.informer(res)
        assert a is b
        a.add_handler(first.handlers())
        async with running(factory):
            await a.wait_for_sync()
            b.add_handler(second.handlers())
            await client.create(
                res,
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Gadget",
                    "metadata": {"name": "g1", "namespace": namespace},
                },
            )

            async def both_saw_it() -> bool:
                return first.kinds(f"{namespace}/g1") == ["add"] and second.kinds(f"{namespace}/g1") == [
                    "add"
                ]

            await eventually(both_saw_it, what="both consumers told about g1")
            assert a.reflector.watches_opened == 1

            # The apiserver's own view: exactly one long-running WATCH on this resource.
            assert await _server_watches(client, group, "gadgets") == 1
        factory.release(a)
        factory.release(b)
        assert factory.informers == []


async def _server_watches(client: KubeClient, group: str, plural: str) -> int:
    """Count open WATCH requests on group/plural from the apiserver's /metrics."""
    raw = await client.request_text("GET", "/metrics", what="apiserver metrics")
    total = 0
    for line in raw.splitlines():
        if not line.startswith("apiserver_longrunning_requests{"):
            continue
        if f'group="{group}"' in line and f'resource="{plural}"' in line and 'verb="WATCH"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def test_the_transform_trims_listed_and_watched_objects_before_the_cache(
    fleet: LocalFleet, namespace: str
) -> None:
    """managedFields never reach the cache (from the list nor from a watch event), and a
    consumer's own transform sees every object before the store and the handlers do."""
    async with connect(fleet, "member-1") as client:
        res = await configmaps(client)
        await client.apply(res, cm("listed", namespace), field_manager="test")
        live = await client.get(res, "listed", namespace)
        assert live["metadata"].get("managedFields"), "an applied object carries managedFields"

        def tag(obj: Obj) -> Obj:
            obj["metadata"]["annotations"] = {"seen-by": "transform"}
            return strip_managed_fields(obj)

        plain, tagged = InformerFactory(client), InformerFactory(client, transform=tag)
        recorder = Recorder()
        a = plain.informer(res, namespace=namespace)
        b = tagged.informer(res, namespace=namespace)
        b.add_handler(recorder.handlers())
        async with running(plain), running(tagged):
            await a.wait_for_sync()
            await b.wait_for_sync()
            await client.apply(res, cm("watched", namespace), field_manager="test")
            await client.apply(res, cm("listed", namespace, "v1"), field_manager="test")

            async def both_updated() -> bool:
                return all(
                    informer.store.get(f"{namespace}/{name}") is not None
                    and informer.store.get(f"{namespace}/{name}")["data"]["v"] == value  # type: ignore[index]
                    for informer in (a, b)
                    for name, value in (("listed", "v1"), ("watched", "v0"))
                )

            await eventually(both_updated, what="both objects in both caches, updated")
            for informer in (a, b):
                for obj in informer.store.objects():
                    assert "managedFields" not in obj["metadata"], object_key(obj)
            assert all(o["metadata"]["annotations"] == {"seen-by": "transform"} for o in b.store.objects())
            assert all("annotations" not in o["metadata"] for o in a.store.objects())
            assert recorder.kinds(f"{namespace}/watched") == ["add"]
            assert recorder.kinds(f"{namespace}/listed") == ["add", "update"]
            assert a.store.estimated_bytes() > 0
