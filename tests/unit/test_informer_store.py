"""The informer cache (keys, indexes, replace diffs) and the reconnect backoff, without I/O."""

from __future__ import annotations

import copy
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.informers import Backoff, FakeClock, Indexer, InformerFactory, by_label
from federation.informers.informer import SIZE_SAMPLE_PERIOD, Handlers, Informer, InformerKey
from federation.informers.store import deep_size
from federation.informers.transform import keep_all, keep_last_writer, last_writer, strip_managed_fields
from federation.kube import Obj, ResourceInfo


def obj(name: str, ns: str | None = "default", rv: str = "1", **labels: str) -> Obj:
    meta: dict[str, object] = {"name": name, "resourceVersion": rv, "labels": labels}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def test_keys_are_namespace_slash_name_or_name() -> None:
    store = Indexer()
    store.upsert(obj("a"))
    store.upsert(obj("node-1", ns=None))
    assert sorted(store.keys()) == ["default/a", "node-1"]
    assert store.get("default/a") is not None
    assert "node-1" in store


def test_indexes_follow_updates_and_deletes() -> None:
    store = Indexer(indexers={"app": by_label("app")})
    store.upsert(obj("a", app="web"))
    store.upsert(obj("b", app="web"))
    store.upsert(obj("c", ns="other", app="db"))
    assert {o["metadata"]["name"] for o in store.by_index("app", "web")} == {"a", "b"}
    assert store.index_keys("namespace", "other") == {"other/c"}
    store.upsert(obj("b", rv="2", app="db"))  # label changed: moves between index values
    assert store.index_keys("app", "web") == {"default/a"}
    assert store.index_keys("app", "db") == {"default/b", "other/c"}
    store.remove("default/a")
    assert store.index_keys("app", "web") == set()
    assert "web" not in store.index_values("app"), "empty index values are dropped"


def test_indexer_added_late_indexes_existing_objects() -> None:
    store = Indexer()
    store.upsert(obj("a", tier="gold"))
    store.add_indexer("tier", by_label("tier"))
    assert store.index_keys("tier", "gold") == {"default/a"}


def test_replace_reports_exactly_what_changed() -> None:
    store = Indexer()
    for name in "abc":
        store.upsert(obj(name, rv="1"))
    added, updated, deleted = store.replace([obj("a", rv="1"), obj("b", rv="5"), obj("d", rv="6")])
    assert [o["metadata"]["name"] for o in added] == ["d"]
    assert [
        (old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"]) for old, new in updated
    ] == [("1", "5")]
    assert [o["metadata"]["name"] for o in deleted] == ["c"]
    assert sorted(store.keys()) == ["default/a", "default/b", "default/d"]


@settings(max_examples=200)
@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 3)),
    st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 3)),
)
def test_replace_then_contents_equal_the_new_list(before: dict[str, int], after: dict[str, int]) -> None:
    store = Indexer(indexers={"v": lambda o: [o["metadata"]["resourceVersion"]]})
    for name, rv in before.items():
        store.upsert(obj(name, rv=str(rv)))
    added, updated, deleted = store.replace([obj(n, rv=str(v)) for n, v in after.items()])
    assert {o["metadata"]["name"] for o in added} == after.keys() - before.keys()
    assert {o["metadata"]["name"] for o in deleted} == before.keys() - after.keys()
    assert {n["metadata"]["name"] for _, n in updated} == {
        k for k in after.keys() & before.keys() if after[k] != before[k]
    }
    assert {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in store.objects()} == after
    for rv in "123":
        assert store.index_keys("v", rv) == {f"default/{n}" for n, v in after.items() if str(v) == rv}


async def test_backoff_doubles_with_jitter_caps_and_resets_after_a_healthy_period() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30, 30, 30]
    for delay, base in zip(delays, bases, strict=True):
        assert base <= delay <= min(2 * base, 30.0), (delay, base)
    await clock.advance(121)
    assert 0.8 <= backoff.next_delay() <= 1.6, "two healthy minutes forget past failures"


def test_informer_turns_events_into_handler_calls_with_last_known_state() -> None:
    res = ResourceInfo("", "v1", "ConfigMap", "configmaps", True)
    informer = Informer(client=_NoClient(), key=InformerKey(res, "default"))  # type: ignore[arg-type]
    calls: list[tuple[str, str]] = []
    informer.add_handler(
        Handlers(
            on_add=lambda o: calls.append(("add", o["metadata"]["resourceVersion"])),
            on_update=lambda old, new: calls.append(
                ("update", f"{old['metadata']['resourceVersion']}>{new['metadata']['resourceVersion']}")
            ),
            on_delete=lambda o: calls.append(("delete", o["metadata"]["resourceVersion"])),
        )
    )
    informer.replace([obj("a", rv="1"), obj("b", rv="1")], "1")
    assert informer.has_synced
    informer.apply("MODIFIED", obj("a", rv="2"))
    informer.apply("DELETED", obj("b", rv="3"))
    informer.replace([obj("a", rv="2"), obj("c", rv="4")], "4")
    assert calls == [("add", "1"), ("add", "1"), ("update", "1>2"), ("delete", "3"), ("add", "4")]

    late: list[str] = []
    informer.add_handler(Handlers(on_add=lambda o: late.append(o["metadata"]["name"])))
    assert sorted(late) == ["a", "c"], "a late handler first gets the cached world"


def test_a_failing_handler_does_not_stop_the_others() -> None:
    res = ResourceInfo("", "v1", "ConfigMap", "configmaps", True)
    informer = Informer(client=_NoClient(), key=InformerKey(res))  # type: ignore[arg-type]
    seen: list[str] = []

    def boom(_o: Obj) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(Handlers(on_add=boom))
    informer.add_handler(Handlers(on_add=lambda o: seen.append(o["metadata"]["name"])))
    informer.replace([obj("a")], "1")
    assert seen == ["a"]


class _NoClient:
    """The informer only needs a cluster name until it runs."""

    cluster = "unit"


def test_one_watch_has_one_transform() -> None:
    """A later user of a shared informer cannot ask for another cache than the first got."""
    res = ResourceInfo("", "v1", "ConfigMap", "configmaps", True)
    factory = InformerFactory(_NoClient())  # type: ignore[arg-type]
    first = factory.informer(res)
    assert first.transform is strip_managed_fields
    assert factory.informer(res, transform=strip_managed_fields) is first
    with pytest.raises(ValueError, match="one watch has one cache"):
        factory.informer(res, transform=keep_all)


def test_managed_fields_are_stripped_and_nothing_else() -> None:
    whole = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "managedFields": [{"manager": "x", "fieldsV1": {"f:data": {}}}]},
        "data": {"k": "v"},
    }
    assert strip_managed_fields(copy.deepcopy(whole)) == {
        **whole,
        "metadata": {"name": "a"},
    }
    assert strip_managed_fields({"kind": "Status"}) == {"kind": "Status"}  # no metadata: as is


def test_the_hub_keeps_only_the_last_writer_of_the_object_itself() -> None:
    """The latest entry that is not a status writer (our own status PUTs must not become the
    template's "last writer"), cut to manager, operation and time."""
    entries = [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-11-28T08:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
        {"manager": "argocd-controller", "operation": "Apply", "time": "2026-11-28T09:00:00Z",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "federation", "operation": "Update", "time": "2026-11-28T10:00:00Z",
         "subresource": "status", "fieldsV1": {"f:status": {}}},
        {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-28T07:00:00Z"},
    ]  # fmt: skip
    obj = {
        "kind": "Deployment",
        "metadata": {"name": "web", "managedFields": entries},
        "spec": {"replicas": 2},
    }
    kept = keep_last_writer(copy.deepcopy(obj))
    assert kept["metadata"]["managedFields"] == [
        {"manager": "argocd-controller", "operation": "Apply", "time": "2026-11-28T09:00:00Z"}
    ]
    assert kept["spec"] == obj["spec"] and last_writer(kept) == "argocd-controller"
    edited = keep_last_writer({"metadata": {"managedFields": entries[:1]}})
    assert last_writer(edited) == "kubectl-client-side-apply (Update)"
    only_status = keep_last_writer({"metadata": {"name": "x", "managedFields": entries[2:3]}})
    assert only_status == {"metadata": {"name": "x"}} and last_writer(only_status) is None
    assert keep_last_writer({"kind": "Status"}) == {"kind": "Status"}


def test_estimated_bytes_counts_shared_values_once_and_scales_with_the_count() -> None:
    store = Indexer()
    assert store.estimated_bytes() == 0
    shared = "x" * 1000
    for i in range(100):
        store.upsert({"metadata": {"name": f"o{i}", "namespace": "d", "resourceVersion": "1"}, "v": shared})
    estimate = store.estimated_bytes(sample=10)
    one = deep_size([store.get("d/o0")])
    assert one > 1000  # the shared string is in a single object's size
    # ...but a sample of ten holds it once, so a hundred objects cost far less than 100 × one.
    assert estimate < 100 * one // 2
    assert estimate == deep_size([store.get(f"d/o{i}") for i in range(10)]) * 10
    assert store.estimated_bytes(sample=100) == deep_size(store.objects())


async def test_the_bytes_gauge_samples_at_most_once_a_period() -> None:
    clock = FakeClock()
    res = ResourceInfo("", "v1", "ConfigMap", "configmaps", True)
    informer = Informer(client=_NoClient(), key=InformerKey(res), clock=clock)  # type: ignore[arg-type]
    assert informer._estimated_bytes() == 0
    informer.replace([obj(f"o{i}") for i in range(10)], "1")
    first = informer._estimated_bytes()
    assert first == informer.store.estimated_bytes(sample=16)
    informer.apply("ADDED", obj("big", **{"k": "x" * 10_000}))
    # Within the period the per-object size is kept; the count is always current.
    assert informer._estimated_bytes() == pytest.approx(first / 10 * 11)
    await clock.advance(SIZE_SAMPLE_PERIOD)
    assert informer._estimated_bytes() == informer.store.estimated_bytes(sample=16) > first / 10 * 11
