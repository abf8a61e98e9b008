"""Event sinks on the real fleet: the controller (`--event-sinks`) delivers the change log as
CloudEvents to an HTTP receiver run by the test — every expected event, in order, with the
position as its id; a receiver that is down gets the backlog when it returns; a controller
SIGKILLed mid-export resumes with at most a batch repeated (same ids) and nothing missing; a
filter (`clusters: [member-2*], types: [DriftCorrected]`) passes only what it names.

The expected set comes from the change log itself (Postgres), so "nothing missing" is checked
against what really happened, not against a count the test guessed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from federation.devfleet import LocalFleet
from federation.devfleet.brokers import KafkaBroker, NatsServer
from tests.controllerhelpers import ControllerProcess, apply, kubectl, running_controller
from tests.integration.test_propagation import MEMBER_LABELS, policy
from tests.kubehelpers import eventually
from tests.storehelpers import query

MEMBERS = ["member-1", "member-2"]


@dataclass
class Receiver:
    """An HTTP endpoint taking CloudEvents: structured (one per POST) or batched."""

    port: int = 0
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    down: bool = False
    delay: float = 0.0
    posts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        if self.down:
            return web.Response(status=503, text="receiver down")
        if self.delay:
            await anyio.sleep(self.delay)
        body = await request.json()
        kind = request.headers["Content-Type"]
        events = body if kind == "application/cloudevents-batch+json" else [body]
        assert kind in ("application/cloudevents+json", "application/cloudevents-batch+json"), kind
        self.received.setdefault(request.path, []).extend(events)
        return web.Response(status=202)

    def ids(self, path: str, namespace: str | None = None) -> list[int]:
        return [
            int(e["id"])
            for e in self.received.get(path, [])
            if namespace is None or e["data"]["namespace"] == namespace
        ]


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{sink}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec
    await runner.cleanup()


STREAM, SUBJECT = "FLEET", "fleet.changes"


@pytest.fixture(scope="module")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    """A real nats-server (built from its Go module), with a JetStream stream on the subject."""
    server = await anyio.to_thread.run_sync(lambda: NatsServer(tmp_path_factory.mktemp("nats")))
    await anyio.to_thread.run_sync(server.start)
    nc = await nats.connect(server.url)
    try:
        await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT])
    finally:
        await nc.close()
    yield server
    server.stop()


async def stream_events(server: NatsServer) -> list[dict[str, Any]]:
    """Every message of the stream, in the stream's order."""
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        return [json.loads((await js.get_msg(STREAM, seq)).data or b"{}")
                for seq in range(info.state.first_seq, info.state.last_seq + 1)]  # fmt: skip
    finally:
        await nc.close()


TOPIC = "fleet-changes"


@pytest.fixture(scope="module")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KafkaBroker]:
    """A real Kafka broker (KRaft; its jars from Maven Central), a topic of 3 partitions."""
    broker = await anyio.to_thread.run_sync(lambda: KafkaBroker(tmp_path_factory.mktemp("kafka")))
    await anyio.to_thread.run_sync(broker.start)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    yield broker
    broker.stop()


async def topic_events(broker: KafkaBroker) -> dict[int, list[dict[str, Any]]]:
    """Every message of the topic, by partition, in each partition's order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: dict[int, list[dict[str, Any]]] = {p.partition: [] for p in partitions}
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for m in messages:
                    event = json.loads(m.value)
                    assert m.key.decode() == event["subject"], "the resource is the key"
                    out[tp.partition].append(event)
        return out
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def sinks_file(
    receiver: Receiver, nats_server: NatsServer, kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("sinks") / "sinks.yaml"
    base = f"http://127.0.0.1:{receiver.port}"
    path.write_text(
        json.dumps(
            {
                "sinks": [
                    {
                        "name": "applied",
                        "filter": {"types": ["CopyApplied"]},
                        "http": {"url": f"{base}/applied", "mode": "batch", "timeout": "5s"},
                        "batchSize": 4,
                    },
                    {
                        "name": "nats-applied",
                        "filter": {"types": ["CopyApplied"]},
                        "nats": {"url": nats_server.url, "subject": SUBJECT, "timeout": "2s"},
                        "batchSize": 4,
                    },
                    {
                        "name": "kafka-applied",
                        "filter": {"types": ["CopyApplied"]},
                        "kafka": {"bootstrapServers": [kafka.bootstrap], "topic": TOPIC, "timeout": "3s"},
                        "batchSize": 4,
                    },
                    {
                        "name": "member-2-drift",
                        "filter": {"types": ["DriftCorrected"], "clusters": ["member-2*"]},
                        "http": {"url": f"{base}/drift"},
                    },
                ]
            }
        )
    )
    return path


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, sinks_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    async with running_controller(
        fleet,
        hub_id="itest-sinks",
        log_dir=tmp_path_factory.mktemp("controller"),
        labels=MEMBER_LABELS,
        extra_args=["--event-sinks", str(sinks_file)],
    ) as proc:
        yield proc


def place(fleet: LocalFleet, namespace: str, names: list[str], value: str = "1") -> None:
    selector = [{"apiVersion": "v1", "kind": "ConfigMap"}]
    objs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": n, "namespace": namespace},
            "data": {"v": value},
        }
        for n in names
    ]
    apply(fleet, "hub", *objs, policy("cms", namespace, selector, placement={"clusterNames": MEMBERS}))


async def logged(controller: ControllerProcess, namespace: str, kind: str) -> list[int]:
    """The positions of `kind` changes of `namespace` in the change log (numbered ones)."""
    rows = await query(
        controller.database_url,
        "SELECT position FROM changes WHERE type = $1 AND namespace = $2 AND position IS NOT NULL "
        "ORDER BY position",
        kind,
        namespace,
    )
    return [r["position"] for r in rows]


async def refused(controller: ControllerProcess, sink: str, words: str) -> None:
    """Until sink `sink` has recorded a failed delivery mentioning `words`."""

    async def recorded() -> bool:
        rows = await query(
            controller.database_url, "SELECT last_error FROM sink_positions WHERE name = $1", sink
        )
        assert rows and rows[0]["last_error"] and words in rows[0]["last_error"], rows
        return True

    await eventually(recorded, timeout=60, what=f"sink {sink} saw its destination down")


async def delivered_everything(
    receiver: Receiver, controller: ControllerProcess, namespace: str, *, expected: int
) -> list[int]:
    async def done() -> list[int]:
        want = await logged(controller, namespace, "CopyApplied")
        assert len(want) >= expected, f"{len(want)} of {expected} applied so far"
        got = receiver.ids("/applied", namespace)
        assert set(got) == set(want), f"missing {sorted(set(want) - set(got))}"
        return got

    got: list[int] = await eventually(done, timeout=90, interval=0.5, what="every CopyApplied delivered")
    return got


async def test_a_rollout_is_delivered_in_order_with_the_position_as_id(
    fleet: LocalFleet, controller: ControllerProcess, receiver: Receiver, namespace: str
) -> None:
    place(fleet, namespace, ["a", "b", "c", "d"])
    got = await delivered_everything(receiver, controller, namespace, expected=8)
    assert got == sorted(got) and len(got) == len(set(got)) == 8, got
    event = next(e for e in receiver.received["/applied"] if e["data"]["namespace"] == namespace)
    assert event["specversion"] == "1.0" and event["type"] == "io.federation.CopyApplied"
    assert event["source"] == "/federation/itest-sinks" and event["id"] == str(event["federationposition"])
    assert event["subject"] == f"core/ConfigMap/{namespace}/{event['data']['name']}"
    assert event["federationcluster"] in MEMBERS and event["datacontenttype"] == "application/json"
    # Its context: who wrote the template (kubectl apply), the policy, the placement revision.
    assert event["federationactor"] == "kubectl-client-side-apply (Update)" == event["data"]["by"]
    assert event["federationpolicy"] == f"PropagationPolicy/{namespace}/cms"
    assert event["federationrevision"] == 1


async def test_a_receiver_that_was_down_gets_the_backlog_in_order(
    fleet: LocalFleet, controller: ControllerProcess, receiver: Receiver, namespace: str
) -> None:
    receiver.down = True
    try:
        place(fleet, namespace, [f"down-{i}" for i in range(5)])

        await refused(controller, "applied", "503")
        assert receiver.ids("/applied", namespace) == []
    finally:
        receiver.down = False
    got = await delivered_everything(receiver, controller, namespace, expected=10)
    assert got == sorted(got) and len(got) == len(set(got)) == 10, got


async def test_a_controller_killed_mid_export_resumes_with_nothing_missing(
    fleet: LocalFleet, controller: ControllerProcess, receiver: Receiver, namespace: str
) -> None:
    receiver.delay = 1.0  # every POST (a batch of 4) takes a second: batches are in flight
    try:
        place(fleet, namespace, [f"k-{i}" for i in range(8)])

        async def some_delivered() -> bool:
            assert receiver.ids("/applied", namespace), "nothing yet"
            return True

        await eventually(some_delivered, timeout=60, what="the export under way")
        controller.stop(kill=True)
        controller.start()
    finally:
        receiver.delay = 0.0
    got = await delivered_everything(receiver, controller, namespace, expected=16)
    # At least once: a batch may come twice after the kill, with the same ids and content.
    events = [e for e in receiver.received["/applied"] if e["data"]["namespace"] == namespace]
    by_id: dict[str, dict[str, Any]] = {}
    for e in events:
        assert by_id.setdefault(e["id"], e) == e, "a repeated id with other content"
    assert len(got) - len(set(got)) <= 4, f"more than a batch repeated: {got}"
    first = {}
    for position in got:
        first.setdefault(position, len(first))
    assert list(first) == sorted(first), "out of order (first deliveries)"


async def test_a_filter_passes_only_the_clusters_and_types_it_names(
    fleet: LocalFleet, controller: ControllerProcess, receiver: Receiver, namespace: str
) -> None:
    place(fleet, namespace, ["drifty"])
    await delivered_everything(receiver, controller, namespace, expected=2)
    for cluster in MEMBERS:
        kubectl(fleet, cluster, "-n", namespace, "patch", "configmap", "drifty", "--type=merge",
                "-p", '{"data": {"v": "tampered"}}')  # fmt: skip

    async def both_restored() -> list[int]:
        positions = await logged(controller, namespace, "DriftCorrected")
        assert len(positions) >= 2, positions
        return positions

    await eventually(both_restored, timeout=60, what="both copies restored")

    async def only_member_2() -> bool:
        drift = [e for e in receiver.received.get("/drift", []) if e["data"]["namespace"] == namespace]
        assert drift, "nothing delivered yet"
        assert {(e["type"], e["federationcluster"]) for e in drift} == {
            ("io.federation.DriftCorrected", "member-2")
        }
        return True

    await eventually(only_member_2, timeout=30, what="member-2's drift, and only it")


async def test_nats_jetstream_gets_every_event_in_order_across_a_broker_outage(
    fleet: LocalFleet, controller: ControllerProcess, nats_server: NatsServer, namespace: str
) -> None:
    async def in_stream(expected: int) -> list[int]:
        async def done() -> list[int]:
            want = await logged(controller, namespace, "CopyApplied")
            assert len(want) >= expected, f"{len(want)} of {expected} applied so far"
            got = [
                int(e["id"]) for e in await stream_events(nats_server) if e["data"]["namespace"] == namespace
            ]
            assert set(got) == set(want), f"missing {sorted(set(want) - set(got))}"
            return got

        got: list[int] = await eventually(
            done, timeout=90, interval=0.5, what="every CopyApplied on the stream"
        )
        return got

    place(fleet, namespace, ["n1", "n2", "n3"])
    first = await in_stream(6)
    assert first == sorted(first) and len(set(first)) == 6, first

    # The broker goes down during a rollout, and comes back with its store.
    await anyio.to_thread.run_sync(nats_server.stop)
    try:
        place(fleet, namespace, [f"o{i}" for i in range(4)])

        await refused(controller, "nats-applied", "NATS")
    finally:
        await anyio.to_thread.run_sync(nats_server.start)
    got = await in_stream(14)
    # The stream dedupes by Nats-Msg-Id: each change once, in the log's order.
    assert got == sorted(got) and len(got) == len(set(got)) == 14, got


async def test_kafka_gets_every_event_in_order_per_resource_across_a_broker_outage(
    fleet: LocalFleet, controller: ControllerProcess, kafka: KafkaBroker, namespace: str
) -> None:
    async def on_topic(expected: int) -> dict[int, list[int]]:
        async def done() -> dict[int, list[int]]:
            want = await logged(controller, namespace, "CopyApplied")
            assert len(want) >= expected, f"{len(want)} of {expected} applied so far"
            parts = {
                p: [int(e["id"]) for e in events if e["data"]["namespace"] == namespace]
                for p, events in (await topic_events(kafka)).items()
            }
            got = {i for ids in parts.values() for i in ids}
            assert got == set(want), f"missing {sorted(set(want) - got)}"
            return parts

        parts: dict[int, list[int]] = await eventually(
            done, timeout=120, interval=1.0, what="every CopyApplied on the topic"
        )
        return parts

    def in_order(parts: dict[int, list[int]]) -> None:
        # Each partition (a set of resources) in the log's order, repeats aside (at least once).
        for p, ids in parts.items():
            first: dict[int, None] = {}
            for i in ids:
                first.setdefault(i, None)
            assert list(first) == sorted(first), (p, ids)

    place(fleet, namespace, ["k1", "k2", "k3"])
    in_order(await on_topic(6))

    await anyio.to_thread.run_sync(kafka.stop)
    try:
        place(fleet, namespace, [f"q{i}" for i in range(4)])

        await refused(controller, "kafka-applied", "Kafka")
    finally:
        await anyio.to_thread.run_sync(kafka.start)
    in_order(await on_topic(14))
