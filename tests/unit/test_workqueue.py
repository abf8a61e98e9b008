"""The work queue and its rate limiters, in fake time; ported from client-go's workqueue tests
(queue_test.go, delaying_queue_test.go, default_rate_limiters_test.go) plus properties."""

from __future__ import annotations

import itertools
import random

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.informers.clock import FakeClock
from federation.informers.queue import Priority, QueueShutDown, WorkQueue
from federation.informers.ratelimit import (
    ItemExponentialLimiter,
    MaxOfLimiter,
    TokenBucketLimiter,
    default_rate_limiter,
)

_names = itertools.count()


def new_queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    clock = clock or FakeClock()
    return WorkQueue(f"test-{next(_names)}", clock=clock, rate_limiter=default_rate_limiter(clock=clock))


# -- queue_test.go ----------------------------------------------------------------------


async def test_basic_many_producers_and_consumers() -> None:
    q: WorkQueue[int] = WorkQueue(f"basic-{next(_names)}", clock=FakeClock())
    producers, consumers, per_producer = 50, 10, 50
    processed: list[int] = []
    in_flight: set[int] = set()

    async def produce(p: int) -> None:
        for i in range(per_producer):
            q.add(p * 1000 + i)
            await anyio.lowlevel.checkpoint()

    async def consume() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            assert key not in in_flight, "a key was handed to two workers at once"
            in_flight.add(key)
            await anyio.lowlevel.checkpoint()
            processed.append(key)
            in_flight.discard(key)
            q.done(key)

    async with anyio.create_task_group() as workers:
        for _ in range(consumers):
            workers.start_soon(consume)
        async with anyio.create_task_group() as prods:
            for p in range(producers):
                prods.start_soon(produce, p)
        await q.shut_down_with_drain()
    assert sorted(processed) == sorted(p * 1000 + i for p in range(producers) for i in range(per_producer))
    assert len(q) == 0


async def test_add_while_processing_requeues_after_done() -> None:
    q = new_queue()
    q.add("foo")
    assert await q.get() == "foo"
    q.add("foo")  # while processing: marked dirty, not queued
    assert len(q) == 0
    assert q.get_nowait() is None, "a key must not be handed out while it is processing"
    q.done("foo")
    assert len(q) == 1
    assert await q.get() == "foo"
    q.done("foo")
    assert len(q) == 0


async def test_len_counts_distinct_keys() -> None:
    q = new_queue()
    q.add("foo")
    assert len(q) == 1
    q.add("bar")
    assert len(q) == 2
    q.add("foo")  # already queued: collapses
    assert len(q) == 2


async def test_reinsert_after_done() -> None:
    q = new_queue()
    q.add("foo")
    key = await q.get()
    q.add(key)
    q.done(key)
    assert await q.get() == "foo"
    q.done("foo")
    assert len(q) == 0


async def test_collapse() -> None:
    q = new_queue()
    q.add("bar")
    q.add("bar")
    assert await q.get() == "bar"
    q.done("bar")
    assert len(q) == 0
    assert q.get_nowait() is None


async def test_collapse_while_processing() -> None:
    q = new_queue()
    q.add("foo")
    assert await q.get() == "foo"
    q.add("foo")
    q.add("foo")
    q.done("foo")
    assert len(q) == 1
    assert await q.get() == "foo"
    q.done("foo")
    assert len(q) == 0


async def test_shutdown_hands_out_queued_keys_then_raises() -> None:
    q = new_queue()
    q.add("a")
    q.add("b")
    q.shut_down()
    q.add("c")  # ignored after shutdown
    assert await q.get() == "a"
    assert await q.get() == "b"
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_wakes_blocked_workers() -> None:
    q = new_queue()
    results: list[str] = []

    async def worker() -> None:
        try:
            await q.get()
        except QueueShutDown:
            results.append("stopped")

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        q.shut_down()
    assert results == ["stopped"] * 3


async def test_shutdown_with_drain_waits_for_in_flight_keys() -> None:
    q = new_queue()
    q.add("slow")
    key = await q.get()
    drained = anyio.Event()

    async def drain() -> None:
        await q.shut_down_with_drain()
        drained.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert not drained.is_set(), "drain returned while a key was still processing"
        q.done(key)
    assert drained.is_set()


# -- delaying_queue_test.go ---------------------------------------------------------------


async def test_add_after_is_ready_only_when_its_time_comes() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 0.05)
    assert q.get_nowait() is None
    await clock.advance(0.06)
    assert q.get_nowait() == "foo"
    q.done("foo")
    assert len(q) == 0 and q.waiting == 0


async def test_add_after_dedupes_keeping_the_earliest_time() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("foo", 0.05)
    q.add_after("foo", 0.07)  # later: ignored
    assert q.waiting == 1
    await clock.advance(0.06)
    assert q.get_nowait() == "foo"
    q.done("foo")
    q.add_after("foo", 0.05)
    q.add_after("foo", 0.03)  # earlier: wins
    await clock.advance(0.04)
    assert q.get_nowait() == "foo"
    q.done("foo")
    await clock.advance(0.02)
    assert q.get_nowait() is None, "the superseded later entry must not fire again"


async def test_two_delayed_keys_fire_in_time_order() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add_after("late", 1.0)
    q.add_after("early", 0.5)
    await clock.advance(0.6)
    assert q.get_nowait() == "early"
    assert q.get_nowait() is None
    await clock.advance(0.5)
    assert q.get_nowait() == "late"


async def test_blocked_get_wakes_when_a_delayed_key_is_due() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    got: list[str] = []

    async def worker() -> None:
        got.append(await q.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        q.add_after("foo", 10)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        await clock.advance(9.9)
        assert got == []
        await clock.advance(0.2)
    assert got == ["foo"]


# -- default_rate_limiters_test.go --------------------------------------------------------


def test_item_exponential_backoff_grows_caps_and_forgets() -> None:
    limiter = ItemExponentialLimiter(0.001, 1.0)
    assert [limiter.when("one") for _ in range(5)] == [0.001, 0.002, 0.004, 0.008, 0.016]
    assert limiter.num_requeues("one") == 5
    assert limiter.when("two") == 0.001
    for _ in range(20):
        limiter.when("one")
    assert limiter.when("one") == 1.0, "the backoff is capped"
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 0.001


def test_default_backoff_is_5ms_doubling_to_1000s() -> None:
    limiter = ItemExponentialLimiter()
    delays = [limiter.when("k") for _ in range(40)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert max(delays) == 1000.0
    assert all(b >= a for a, b in itertools.pairwise(delays))


def test_token_bucket_allows_a_burst_then_spreads_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucketLimiter(10.0, 100, clock=clock)
    assert all(bucket.when(i) == 0 for i in range(100))
    assert bucket.when("a") == pytest.approx(0.1)
    assert bucket.when("b") == pytest.approx(0.2)


async def test_token_bucket_refills_with_time() -> None:
    clock = FakeClock()
    bucket = TokenBucketLimiter(10.0, 2, clock=clock)
    assert bucket.when(1) == 0 and bucket.when(2) == 0
    assert bucket.when(3) == pytest.approx(0.1)
    await clock.advance(1.0)
    assert bucket.when(4) == 0


def test_max_of_takes_the_longest_delay() -> None:
    clock = FakeClock()
    limiter = MaxOfLimiter(ItemExponentialLimiter(0.001, 1.0), TokenBucketLimiter(1.0, 1, clock=clock))
    assert limiter.when("one") == 0.001  # bucket has its token
    assert limiter.when("one") == pytest.approx(1.0)  # bucket empty: 1 s beats 2 ms
    assert limiter.num_requeues("one") == 2
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0


async def test_add_rate_limited_retries_with_backoff_and_forget_resets() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(
        f"rl-{next(_names)}", clock=clock, rate_limiter=ItemExponentialLimiter(1.0, 8.0)
    )
    delays = []
    for _ in range(5):
        q.add_rate_limited("k")
        start = clock.now()
        while q.get_nowait() is None:
            await clock.advance(0.5)
        delays.append(clock.now() - start)
        q.done("k")
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    q.forget("k")
    q.add_rate_limited("k")
    await clock.advance(1.0)
    assert q.get_nowait() == "k"


# -- priorities (controller-runtime's priorityqueue tests, the parts we use) -------------------


def drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while (key := q.get_nowait()) is not None:
        out.append(key)
        q.done(key)
    return out


async def test_a_fresh_event_goes_before_an_initial_list() -> None:
    q = new_queue()
    for key in ("l1", "l2", "l3"):
        q.add(key, Priority.LOW)
    q.add("fresh")
    assert drain(q) == ["fresh", "l1", "l2", "l3"]


async def test_an_edit_goes_before_a_bulk_of_creations_which_go_before_an_initial_list() -> None:
    q = new_queue()
    q.add("l1", Priority.LOW)
    for key in ("new1", "new2"):
        q.add(key, Priority.CREATED)
    q.add("edit")
    q.add("new1")  # a created object edited while still queued moves up, behind the edit
    assert drain(q) == ["edit", "new1", "new2", "l1"]


async def test_adding_a_queued_key_at_a_higher_priority_moves_it_up_once() -> None:
    q = new_queue()
    for key in ("l1", "l2", "l3"):
        q.add(key, Priority.LOW)
    q.add("l3")
    assert q.queued_at("l3") is Priority.NORMAL
    assert len(q) == 3
    q.add("l3", Priority.LOW)  # never down
    assert q.queued_at("l3") is Priority.NORMAL
    assert drain(q) == ["l3", "l1", "l2"]


async def test_an_add_while_processing_requeues_at_the_highest_priority_it_was_added_with() -> None:
    q = new_queue()
    q.add("k", Priority.LOW)
    q.add("other", Priority.LOW)
    assert q.get_nowait() == "k"
    q.add("k", Priority.LOW)
    q.add("k")
    q.add("k", Priority.LOW)
    q.done("k")
    assert q.queued_at("k") is Priority.NORMAL
    assert drain(q) == ["k", "other"]


async def test_a_requeue_keeps_the_priority_the_key_was_handed_out_at() -> None:
    clock = FakeClock()
    q = new_queue(clock)
    q.add("low", Priority.LOW)
    assert q.get_nowait() == "low"
    q.add_rate_limited("low")
    q.add_after("low", 0.001)
    q.done("low")
    q.add("late", Priority.LOW)
    await clock.advance(1.0)
    assert drain(q) == ["late", "low"]  # FIFO within LOW: "low" came back after "late"
    q.add("n")
    assert q.get_nowait() == "n"
    q.add_after("n", 0.5)
    q.done("n")
    q.add("late", Priority.LOW)
    await clock.advance(1.0)
    assert q.get_nowait() == "n" and q.processing_at("n") is Priority.NORMAL


async def test_a_low_key_moved_up_then_queued_low_again_is_handed_out_once() -> None:
    q = new_queue()
    q.add("a", Priority.LOW)
    q.add("b", Priority.LOW)
    q.add("a")
    assert q.get_nowait() == "a"
    q.done("a")
    q.add("a", Priority.LOW)
    assert drain(q) == ["a", "b"]  # its older entry below is valid again; the newer one is skipped
    assert len(q) == 0 and q.get_nowait() is None


# -- properties ---------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcde")),
        st.tuples(st.just("add_low"), st.sampled_from("abcde")),
        st.tuples(st.just("get"), st.integers(0, 3)),
        st.tuples(st.just("done"), st.integers(0, 3)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_random_schedules_never_overlap_a_key_and_never_lose_an_add(
    schedule: list[tuple[str, object]],
) -> None:
    """Four workers take, hold and finish keys in random orders while keys are added, at
    either priority.

    Invariants: a key is never held by two workers; no key is handed out while a key of a
    higher priority is queued; once everyone is done, every add was followed by a processing
    that started after it (no lost update), and nothing is left.
    """
    q: WorkQueue[str] = WorkQueue(f"prop-{next(_names)}", clock=FakeClock())
    held: dict[int, str] = {}
    needs_processing: set[str] = set()
    for op, arg in schedule:
        if op in ("add", "add_low"):
            q.add(str(arg), Priority.NORMAL if op == "add" else Priority.LOW)
            needs_processing.add(str(arg))
        elif op == "get":
            worker = int(str(arg))
            if worker in held:
                continue
            best = max((p for k in "abcde" if (p := q.queued_at(k)) is not None), default=None)
            key = q.get_nowait()
            if key is None:
                assert best is None
                continue
            assert q.processing_at(key) == best, f"{key} handed out before a key of priority {best}"
            assert key not in held.values(), f"{key} handed to two workers"
            held[worker] = key
            needs_processing.discard(key)
        elif op == "done":
            worker = int(str(arg))
            if worker in held:
                q.done(held.pop(worker))
    for worker in list(held):
        q.done(held.pop(worker))
    while (key := q.get_nowait()) is not None:
        needs_processing.discard(key)
        q.done(key)
    assert needs_processing == set(), f"adds never processed: {needs_processing}"
    assert len(q) == 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_concurrent_workers_with_random_interleavings(seed: int) -> None:
    anyio.run(_concurrent_workers, seed)


async def _concurrent_workers(seed: int) -> None:
    rng = random.Random(seed)
    q: WorkQueue[int] = WorkQueue(f"conc-{next(_names)}", clock=FakeClock())
    holders: dict[int, int] = {}
    last_add: dict[int, int] = {}
    last_start: dict[int, int] = {}
    tick = itertools.count()

    async def worker(wid: int) -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            assert key not in holders, f"key {key} processed by {holders.get(key)} and {wid}"
            holders[key] = wid
            last_start[key] = next(tick)
            for _ in range(rng.randint(0, 3)):
                await anyio.lowlevel.checkpoint()
            del holders[key]
            q.done(key)

    async with anyio.create_task_group() as tg:
        for w in range(4):
            tg.start_soon(worker, w)
        for _ in range(200):
            key = rng.randint(0, 9)
            q.add(key)
            last_add[key] = next(tick)
            if rng.random() < 0.5:
                await anyio.lowlevel.checkpoint()
        await q.shut_down_with_drain()
    for key, added in last_add.items():
        assert last_start[key] > added, f"the last add of {key} was never processed"
