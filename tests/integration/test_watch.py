"""Watching the fleet: the change log through the watch API and `federation events|status -w`,
on the real fleet with the controller propagating, across a controller SIGKILL and restart.

What is asserted is what a consumer relies on: every change of a rollout arrives, in order per
copy (placed → applied), positions only grow and have no hole (the sequencer numbers without
gaps, so a consumer can tell it missed nothing), and a consumer that reconnects with the last
position it saw gets exactly what came after — including what the controller did after being
killed and restarted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from federation.devfleet import LocalFleet
from tests.controllerhelpers import FEDERATION, ControllerProcess, apply, kubectl, running_controller
from tests.integration.test_propagation import MEMBER_LABELS, policy
from tests.kubehelpers import eventually

MEMBERS = ["member-1", "member-2"]


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    log_dir = tmp_path_factory.mktemp("controller")
    async with running_controller(fleet, hub_id="itest-watch", log_dir=log_dir, labels=MEMBER_LABELS) as proc:
        yield proc


def configmap(name: str, namespace: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"value": value}}  # fmt: skip


def place(fleet: LocalFleet, namespace: str, *names: str, value: str = "1") -> None:
    selector = [{"apiVersion": "v1", "kind": "ConfigMap"}]
    apply(
        fleet,
        "hub",
        *(configmap(n, namespace, value) for n in names),
        policy("cms", namespace, selector, placement={"clusterNames": MEMBERS}),
    )


async def read_stream(
    controller: ControllerProcess,
    query: str,
    until: int | Callable[[list[dict[str, Any]]], bool],
    *,
    timeout: float = 60,
    sse: bool = False,
) -> list[dict[str, Any]]:
    """Lines of GET /api/v1/watch?QUERY until `until` changes (not heartbeats) have come, or
    `until` says enough."""
    done = until if callable(until) else (lambda got: len(got) >= until)
    got: list[dict[str, Any]] = []
    headers = {"Accept": "text/event-stream"} if sse else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(f"{controller.url}/api/v1/watch?{query}", headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            text = raw.decode().strip()
            if sse:
                if not text.startswith("data: "):
                    continue
                text = text[len("data: ") :]
            if not text:
                continue
            item = json.loads(text)
            if item["type"] != "Heartbeat":
                got.append(item)
            if done(got):
                break
    return got


def per_copy(changes: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for c in changes:
        if c["cluster"] and c["kind"] == "ConfigMap":
            out.setdefault((c["name"], c["cluster"]), []).append(c["type"])
    return out


async def test_a_rollout_streams_in_order_and_a_reconnect_after_a_restart_misses_nothing(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    start = controller.api(f"/api/v1/events?namespace={namespace}&limit=1")  # the API answers
    assert start == {"items": []}
    # From now on, this namespace: three ConfigMaps to two members.

    def all_applied(got: list[dict[str, Any]]) -> bool:
        return sum(c["type"] == "CopyApplied" for c in got) == 3 * len(MEMBERS)

    stream = read_stream(controller, f"namespace={namespace}", until=all_applied)
    got: list[dict[str, Any]] = []

    async def reader() -> None:
        got.extend(await stream)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await (
            anyio.lowlevel.checkpoint()
        )  # the stream opens before the changes are made (the API sends from now)
        await eventually(lambda: _opened(controller), timeout=10, what="the watcher connected")
        place(fleet, namespace, "a", "b", "c")
    positions = [c["position"] for c in got]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    copies = per_copy(got)
    for name in ("a", "b", "c"):
        for cluster in MEMBERS:
            # Health comes after the apply (the member's copy is seen), and nothing before placed.
            order = [t for t in copies[(name, cluster)] if t != "HealthChanged"]
            assert order == ["CopyPlaced", "CopyApplied"], copies
    decided = [c for c in got if c["type"] == "PlacementDecided"]
    assert sorted(c["name"] for c in decided) == ["a", "b", "c"]
    assert all(c["data"]["clusters"] == MEMBERS for c in decided), decided

    # The controller dies; the hub changes meanwhile; a new controller does the work. A watcher
    # reconnecting with the last position it saw gets exactly what came after, no hole.
    last = positions[-1]
    controller.stop(kill=True)
    place(fleet, namespace, "a", "b", "c", value="2")
    controller.start()
    after = await read_stream(controller, f"since={last}&namespace={namespace}&type=CopyApplied", until=6)
    assert {(c["name"], c["cluster"]) for c in after} == {(n, m) for n in "abc" for m in MEMBERS}
    assert all(c["position"] > last for c in after)
    # Unfiltered, the positions after `last` are consecutive: nothing in between was lost.
    everything = await read_stream(controller, f"since={last}", until=12)
    numbers = [c["position"] for c in everything]
    assert numbers == list(range(last + 1, last + 1 + len(numbers))), numbers

    # Each change says who changed the template, the policy that placed it, and the revision,
    # as they were then: another manager's edit shows as theirs from that change on.
    applied = [c for c in got if c["type"] == "CopyApplied"]
    assert {c["by"] for c in applied} == {"kubectl-client-side-apply (Update)"}, applied
    assert {c["policy"] for c in applied} == {f"PropagationPolicy/{namespace}/cms"}
    assert {c["placementRevision"] for c in applied} == {1}
    edited_at = max(c["position"] for c in after)  # the restart's applies are done by then
    kubectl(fleet, "hub", "-n", namespace, "patch", "configmap", "a", "--type", "merge",
            "--field-manager", "ops-oncall", "-p", json.dumps({"data": {"value": "3"}}))  # fmt: skip
    edited = await read_stream(
        controller, f"since={edited_at}&namespace={namespace}&type=CopyApplied", until=len(MEMBERS)
    )
    assert {(c["name"], c["by"]) for c in edited} == {("a", "ops-oncall (Update)")}, edited


def _opened_value(controller: ControllerProcess) -> float:
    return controller.metric("federation_change_watchers")


async def _opened(controller: ControllerProcess) -> bool:
    assert _opened_value(controller) >= 1
    return True


async def test_server_sent_events_carry_the_position_as_their_id(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    place(fleet, namespace, "sse")

    async def applied() -> list[dict[str, Any]]:
        got = await read_stream(
            controller, f"since=0&namespace={namespace}&type=CopyApplied", until=2, sse=True
        )
        assert {c["cluster"] for c in got} == set(MEMBERS)
        return got

    await eventually(applied, timeout=60, what="both copies applied, as SSE")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{controller.url}/api/v1/watch?since=0&namespace={namespace}",
            headers={"Accept": "text/event-stream"},
        ) as resp,  # fmt: skip
    ):
        first = (await resp.content.readline()).decode()
        assert first.startswith("id: ") and int(first[4:]) > 0, first
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{controller.url}/api/v1/watch?since=x") as bad,
    ):
        assert bad.status == 400 and "since" in (await bad.json())["field"]


def follow_lines(
    controller: ControllerProcess,
    args: list[str],
    until: int | Callable[[list[dict[str, Any]]], bool],
    *,
    timeout: float = 60,
    started: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """`federation ARGS -o json` (a follow), its lines until `until` of them came (or `until`
    says enough); then Ctrl-C, which must end it with status 0."""
    done = until if callable(until) else (lambda got: len(got) >= until)
    cmd = [FEDERATION, *args, "-o", "json", "--database-url", controller.database_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while not done(lines) and time.monotonic() < deadline and proc.poll() is None:
            text = proc.stdout.readline()  # a line at a time, as a pipe to another tool reads it
            if text.strip():
                lines.append(json.loads(text))
                if started is not None:
                    started.set()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    assert code == 0, proc.stderr.read() if proc.stderr else code
    assert done(lines), lines
    return lines


async def test_events_w_follows_with_a_cluster_glob_and_resumes_from_a_position(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    place(fleet, namespace, "w1", "w2")
    args = ["events", "-w", "-n", namespace, "--cluster", "member-2*", "--type", "CopyApplied"]
    lines = await anyio.to_thread.run_sync(
        lambda: follow_lines(controller, [*args, "--since-position", "0"], 2)
    )
    assert sorted((c["name"], c["cluster"], c["type"]) for c in lines) == [
        ("w1", "member-2", "CopyApplied"),
        ("w2", "member-2", "CopyApplied"),
    ]
    first, second = sorted(lines, key=lambda c: c["position"])
    resumed = await anyio.to_thread.run_sync(
        lambda: follow_lines(controller, [*args, "--since-position", str(first["position"])], 1)
    )
    assert resumed == [second]


async def test_status_w_prints_the_table_then_a_row_per_change(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    place(fleet, namespace, "s1")
    await eventually(lambda: _placed(controller, namespace), timeout=60, what="s1 recorded")

    def s2_applied(rows: list[dict[str, Any]]) -> bool:
        return any(r.get("position") and r["name"] == "s2" and r["clusters"] == "2/2" for r in rows)

    started = threading.Event()
    async with anyio.create_task_group() as tg:
        seen: list[dict[str, Any]] = []

        async def run() -> None:
            args = ["status", "-w", "-n", namespace]
            seen.extend(
                await anyio.to_thread.run_sync(
                    lambda: follow_lines(controller, args, s2_applied, started=started)
                )
            )

        async def printed_the_table() -> bool:
            # It takes its position before the table: what changes after the table's first line
            # is followed.
            assert started.is_set()
            return True

        tg.start_soon(run)
        await eventually(printed_the_table, timeout=30, what="status -w printed its table")
        place(fleet, namespace, "s1", "s2")
    # First the table as it was (s1, before s2 existed), then s2's row at each of its changes.
    assert seen[0]["name"] == "s1" and "position" not in seen[0], seen
    later = [r for r in seen if "position" in r]
    assert later and {r["name"] for r in later} <= {"s1", "s2"}, seen
    assert [r["position"] for r in later] == sorted(r["position"] for r in later)


async def _placed(controller: ControllerProcess, namespace: str) -> bool:
    items = controller.api(f"/api/v1/resources?namespace={namespace}")["items"]
    assert items, "not recorded yet"
    return True
