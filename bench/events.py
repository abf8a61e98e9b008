"""Exporting the fleet's changes during a bulk rollout, beside the same rollout exporting nothing.

    .venv/bin/python bench/events.py [--deployments 1000] [--members 5] [--watchers 100]

Hub + 5 members, a real NATS server (JetStream) and a real Kafka broker (KRaft) on this machine.
In one invocation:

  A. the controller rolls out N Deployments to every member with no sink (its own database);
  B. the same rollout (another namespace, another database; A orphans its copies first, so B has
     nothing of A to adopt) with two sinks, every change to NATS and to Kafka; both buses are
     read by this process after the rollout (``--live-consumers``: during it, their CPU then
     competing with the rollout's on the same two cores, as no real fleet's consumers do);
  C. with B's controller still up, W watchers of GET /api/v1/watch follow a rollout of N/5 more.

Prints the rollout's time and throughput in A and B (the export's cost is B against A), events
delivered to each bus and their rate, delivery lag p50/p99 (the broker's append time — Kafka's
LogAppendTime, JetStream's stored time — or with ``--live-consumers`` a consumer's receive time,
minus the change's time in Postgres), CPU seconds of the controller and Postgres (on 2 cores the
CPU is the throughput), and for C the events/s all watchers received together, any dropped
watcher, and the controller's CPU. The machine's times swing ±30%: run it more than once.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import asyncpg
import nats
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.propagation import connect, deployment, ensure_namespace, fleet_cpu, pct, proc_usage  # noqa: E402
from federation.changes.exporter import OS_THREAD_NAME  # noqa: E402
from federation.clusters.crds import install_crds  # noqa: E402
from federation.devfleet import LocalFleet  # noqa: E402
from federation.devfleet.brokers import KafkaBroker, NatsServer  # noqa: E402
from federation.devfleet.members import join_members  # noqa: E402
from federation.kube import GVK, Discovery  # noqa: E402
from tests.controllerhelpers import ControllerProcess  # noqa: E402
from tests.storehelpers import create_database  # noqa: E402

DEPLOYMENT = GVK("apps", "v1", "Deployment")
STREAM, SUBJECT, TOPIC = "FLEET", "fleet.changes", "fleet-changes"


async def rollout(fleet: LocalFleet, members: list[str], proc: ControllerProcess, ns: str, n: int,
                  *, tag: str = "1") -> float:  # fmt: skip
    """Write the policy and N templates to the hub; seconds until every copy is applied."""
    hub = await connect(fleet, "hub")
    try:
        await ensure_namespace(hub, ns)
        pol = await Discovery(hub).resource_for(GVK("federation.io", "v1alpha1", "PropagationPolicy"))
        await hub.apply(pol, {
            "apiVersion": "federation.io/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": "bench", "namespace": ns},
            "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                     "placement": {"clusterNames": members}, "deletionPolicy": "Orphan"},
        }, field_manager="bench")  # fmt: skip
        res = await Discovery(hub).resource_for(DEPLOYMENT)
        limiter = anyio.CapacityLimiter(64)
        started = time.monotonic()

        async def one(i: int) -> None:
            async with limiter:
                await hub.apply(res, deployment(i, ns, tag=tag), field_manager="bench", force=True)

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        conn = await asyncpg.connect(proc.database_url)
        try:
            want = n * len(members)
            with anyio.fail_after(900):
                while True:
                    done = await conn.fetchval(
                        "SELECT count(*) FROM works w JOIN resources r ON r.id = w.resource_id"
                        " WHERE r.namespace = $1 AND w.state = 'applied' AND w.applied_hash = w.desired_hash"
                        " AND w.desired #>> '{spec,template,metadata,annotations,tag}' = $2",
                        ns,
                        tag,
                    )
                    if done >= want:
                        return time.monotonic() - started
                    await anyio.sleep(0.2)
        finally:
            await conn.close()
    finally:
        await hub.close()


async def leave_alone(fleet: LocalFleet, proc: ControllerProcess, ns: str) -> None:
    """Delete `ns`'s policy and wait until `proc` has orphaned its copies (they stay on the
    members without our stamp): the next phase's controller then has nothing of this phase to
    adopt or sweep, and measures its own rollout alone."""
    hub = await connect(fleet, "hub")
    try:
        pol = await Discovery(hub).resource_for(GVK("federation.io", "v1alpha1", "PropagationPolicy"))
        await hub.delete(pol, "bench", namespace=ns)
    finally:
        await hub.close()
    conn = await asyncpg.connect(proc.database_url)
    try:
        with anyio.fail_after(600):
            while await conn.fetchval("SELECT count(*) FROM works WHERE state <> 'orphaned'"):
                await anyio.sleep(0.5)
    finally:
        await conn.close()


class Received:
    """Events a consumer got: their ids and when they arrived (epoch seconds) — at the consumer
    (``--live-consumers``), or in the broker's log (its append time), read after the rollout."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.at: dict[int, float] = {}
        self.last = 0.0

    def note(self, event: dict[str, Any], appended: float) -> None:
        at = time.time() if self.live else appended
        self.at.setdefault(int(event["id"]), at)
        self.last = max(self.last, at)


async def consume_nats(server: NatsServer, got: Received) -> None:
    nc = await nats.connect(server.url)
    try:
        sub = await nc.jetstream().subscribe(SUBJECT, ordered_consumer=True)
        async for msg in sub.messages:
            got.note(json.loads(msg.data), msg.metadata.timestamp.timestamp())
    finally:
        await nc.close()


async def consume_kafka(broker: KafkaBroker, got: Received) -> None:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async for message in consumer:
            got.note(json.loads(message.value), message.timestamp / 1000)  # the topic's LogAppendTime
    finally:
        await consumer.stop()


def thread_cpu(pid: int, name: str) -> float:
    """CPU seconds of the threads of `pid` the OS knows by `name`."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm == name:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / 100.0
    return total


def others_cpu(nats_server: NatsServer, kafka: KafkaBroker) -> dict[str, float]:
    """CPU seconds so far of what shares the 2 cores with the rollout besides the controller and
    Postgres: the brokers, and this process (the rollout's driver and, in B, both consumers)."""
    usage = {"this bench (driver, consumers)": time.process_time()}
    for name, broker in (("nats-server", nats_server), ("kafka broker", kafka)):
        usage[name] = proc_usage(broker.pid)[1] if broker.pid is not None else 0.0
    return usage


async def change_times(database_url: str) -> dict[int, float]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT position, extract(epoch FROM time)::float8 AS t FROM changes WHERE position IS NOT NULL"
        )
    finally:
        await conn.close()
    return {r["position"]: float(r["t"]) for r in rows}


async def watchers(proc: ControllerProcess, count: int, stop: anyio.Event) -> tuple[list[int], int]:
    """`count` watchers of the API from now until `stop`: changes each received, and drops."""
    received = [0] * count
    dropped = 0

    async def one(i: int) -> None:
        nonlocal dropped
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{proc.url}/api/v1/watch") as resp,
        ):
            assert resp.status == 200, await resp.text()
            with anyio.CancelScope() as scope:

                async def until_stopped() -> None:
                    await stop.wait()
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(until_stopped)
                    async for line in resp.content:
                        kind = json.loads(line)["type"]
                        if kind == "Dropped":
                            dropped += 1
                        elif kind != "Heartbeat":
                            received[i] += 1

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return received, dropped


async def main_async(args: argparse.Namespace) -> None:
    members = [f"member-{i}" for i in range(1, args.members + 1)]
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    fleet = LocalFleet(members=args.members, progress=lambda m: print(f"  {m}", flush=True))
    await anyio.to_thread.run_sync(fleet.start)
    nats_server = await anyio.to_thread.run_sync(lambda: NatsServer(work / "nats", progress=print))
    kafka = await anyio.to_thread.run_sync(lambda: KafkaBroker(work / "kafka", progress=print))
    try:
        await anyio.to_thread.run_sync(nats_server.start)
        await anyio.to_thread.run_sync(kafka.start)
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT])
        await nc.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        appended = {"message.timestamp.type": "LogAppendTime"}  # a record's time: when the broker took it
        await admin.create_topics(
            [NewTopic(TOPIC, num_partitions=5, replication_factor=1, topic_configs=appended)]
        )
        await admin.close()
        hub = await connect(fleet, "hub")
        await install_crds(hub)
        await join_members(hub, {m: fleet.clusters[m] for m in members}, labels={})
        await hub.close()
        n = args.deployments

        # A: no sink.
        url_a = await create_database(fleet.database_url, "bench_a")
        proc_a = ControllerProcess(fleet, database_url=url_a, hub_id="bench-hub", log_path=work / "a.log")
        await anyio.to_thread.run_sync(proc_a.start)
        assert proc_a.proc is not None
        cpu_a0, pg_a0 = proc_usage(proc_a.proc.pid)[1], fleet_cpu(fleet).get("postgres", 0.0)
        others_a0 = others_cpu(nats_server, kafka)
        print(f"A: {n} Deployments → {n * len(members)} copies, no sink …", flush=True)
        time_a = await rollout(fleet, members, proc_a, "bench-a", n)
        cpu_a, pg_a = proc_usage(proc_a.proc.pid)[1] - cpu_a0, fleet_cpu(fleet).get("postgres", 0.0) - pg_a0
        others_a = {k: v - others_a0[k] for k, v in others_cpu(nats_server, kafka).items()}
        await leave_alone(fleet, proc_a, "bench-a")
        await anyio.to_thread.run_sync(proc_a.stop)

        # B: the same with every change to NATS and Kafka, consumed live.
        sinks = work / "sinks.yaml"
        sinks.write_text(json.dumps({"sinks": [
            {"name": "nats", "nats": {"url": nats_server.url, "subject": SUBJECT}, "batchSize": 500},
            {"name": "kafka", "kafka": {"bootstrapServers": [kafka.bootstrap], "topic": TOPIC},
             "batchSize": 500},
        ]}))  # fmt: skip
        url_b = await create_database(fleet.database_url, "bench_b")
        proc_b = ControllerProcess(fleet, database_url=url_b, hub_id="bench-hub", log_path=work / "b.log",
                                   extra_args=["--event-sinks", str(sinks)])  # fmt: skip
        await anyio.to_thread.run_sync(proc_b.start)
        assert proc_b.proc is not None
        got_nats, got_kafka = Received(args.live_consumers), Received(args.live_consumers)
        async with anyio.create_task_group() as consumers:
            if args.live_consumers:
                consumers.start_soon(consume_nats, nats_server, got_nats)
                consumers.start_soon(consume_kafka, kafka, got_kafka)
            cpu_b0, pg_b0 = proc_usage(proc_b.proc.pid)[1], fleet_cpu(fleet).get("postgres", 0.0)
            others_b0 = others_cpu(nats_server, kafka)
            export_b0 = thread_cpu(proc_b.proc.pid, OS_THREAD_NAME)
            print("B: the same, every change exported to NATS and Kafka …", flush=True)
            started = time.time()
            time_b = await rollout(fleet, members, proc_b, "bench-b", n)
            cpu_b, pg_b = (
                proc_usage(proc_b.proc.pid)[1] - cpu_b0,
                fleet_cpu(fleet).get("postgres", 0.0) - pg_b0,
            )
            others_b = {k: v - others_b0[k] for k, v in others_cpu(nats_server, kafka).items()}
            export_b = thread_cpu(proc_b.proc.pid, OS_THREAD_NAME) - export_b0
            # Everything numbered by the time the copies were applied, delivered to both.
            await anyio.sleep(1.0)  # the last batch of statuses after the last apply
            times = await change_times(url_b)
            wanted = {p for p, t in times.items() if t >= started - 1}
            if not args.live_consumers:
                consumers.start_soon(consume_nats, nats_server, got_nats)
                consumers.start_soon(consume_kafka, kafka, got_kafka)
            with anyio.fail_after(300):
                while not (wanted <= got_nats.at.keys() and wanted <= got_kafka.at.keys()):
                    await anyio.sleep(0.2)
            consumers.cancel_scope.cancel()

        def lag(got: Received) -> tuple[float, float]:
            values = [got.at[p] - times[p] for p in wanted]
            return pct(values, 0.5), pct(values, 0.99)

        # C: W watchers during a rollout of N/5 changed templates.
        stop = anyio.Event()
        cpu_c0 = proc_usage(proc_b.proc.pid)[1]
        async with anyio.create_task_group() as tg:
            result: list[Any] = []

            async def watch() -> None:
                result.append(await watchers(proc_b, args.watchers, stop))

            tg.start_soon(watch)
            with anyio.fail_after(60):
                while proc_b.metric("federation_change_watchers") < args.watchers:
                    await anyio.sleep(0.2)
            c_started = time.monotonic()
            time_c = await rollout(fleet, members, proc_b, "bench-b", n // 5, tag="2")
            await anyio.sleep(2.0)  # what the last applies' statuses add
            c_elapsed = time.monotonic() - c_started
            stop.set()
        cpu_c = proc_usage(proc_b.proc.pid)[1] - cpu_c0
        received, dropped = result[0]
        await anyio.to_thread.run_sync(proc_b.stop)

        copies = n * len(members)
        events = len(wanted)
        print()
        print(f"{'measure':<58}{'no sink':>12}{'NATS+Kafka':>12}")
        print(
            f"{'rollout: time to all ' + str(copies) + ' copies applied (s)':<58}{time_a:12.2f}{time_b:12.2f}"
        )
        print(f"{'rollout throughput (copies/s)':<58}{copies / time_a:12.1f}{copies / time_b:12.1f}")
        print(f"{'  export cost: 1 - B/A (target <= 10%)':<58}{'':>12}{100 * (1 - time_a / time_b):11.1f}%")
        print(f"{'controller CPU during the rollout (s)':<58}{cpu_a:12.1f}{cpu_b:12.1f}")
        print(f"{'postgres CPU during the rollout (s)':<58}{pg_a:12.1f}{pg_b:12.1f}")
        for party, used in others_a.items():
            print(f"{party + ' CPU during the rollout (s)':<58}{used:12.1f}{others_b[party]:12.1f}")
        print(f"{'  controller CPU-ms per change exported':<58}{'':>12}"
              f"{1000 * (cpu_b - cpu_a) / max(1, len(wanted)):12.3f}")  # fmt: skip
        print(f"{'  of it, the export thread (sequencer + sinks), CPU s':<58}{'':>12}{export_b:12.1f}")
        print(f"{'  the export thread, CPU-ms per change':<58}{'':>12}"
              f"{1000 * export_b / max(1, len(wanted)):12.3f}")  # fmt: skip
        where = "at the live consumers" if args.live_consumers else "to each broker's append time"
        print(f"changes exported: {events} ({events / copies:.1f} per copy); lag measured {where}")
        for name, got in (("NATS", got_nats), ("Kafka", got_kafka)):
            p50, p99 = lag(got)
            rate = events / max(0.001, got.last - started)
            print(
                f"  {name:<6} {rate:8.0f} events/s over the run; "
                f"lag p50 {p50:.3f} s, p99 {p99:.3f} s (target < 1 s)"
            )
        total = sum(received)
        print(f"watch fan-out: {args.watchers} watchers through a rollout of {n // 5} templates "
              f"({time_c:.1f} s): {total} changes received in all, {total / c_elapsed:.0f}/s, "
              f"min {min(received)} max {max(received)} per watcher, {dropped} dropped; "
              f"controller CPU {cpu_c:.1f} s")  # fmt: skip
    finally:
        await anyio.to_thread.run_sync(kafka.stop)
        await anyio.to_thread.run_sync(nats_server.stop)
        await anyio.to_thread.run_sync(fleet.stop)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument(
        "--live-consumers",
        action="store_true",
        help="consume both buses during B (their CPU competes with the rollout; lag measured at the "
        "consumer) instead of after it (lag measured to each broker's append time)",
    )
    anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
