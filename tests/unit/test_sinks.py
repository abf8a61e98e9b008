"""The event sinks file and the CloudEvents the sinks send: validated with the file, line and
field named; the example parses; an event carries its position as id and names its object."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api.sinksfile import HttpMode, load_sinks_file
from federation.changes.filters import ChangeFilter
from federation.changes.sinks import Pages, cloud_event, partition_key
from federation.errors import ConfigError, InvalidObjectError
from federation.store import ChangeRow, ObjectRef

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sinks.yaml"
    path.write_text(text)
    return path


def test_the_example_parses_with_its_files_resolved(tmp_path: Path) -> None:
    text = (REPO / "examples" / "event-sinks.yaml").read_text()
    files = {
        "/var/run/secrets/events/token": "token",
        "/etc/federation/events-ca.pem": "events-ca.pem",
        "/var/run/secrets/nats/fleet.creds": "fleet.creds",
    }
    for absolute, name in files.items():
        (tmp_path / name).write_text("x")
        text = text.replace(absolute, name)
    sinks = load_sinks_file(write(tmp_path, text))
    assert [s.name for s in sinks] == ["eu-activity", "shop-health", "bus", "failures"]
    assert sinks[2].nats is not None and sinks[2].nats.credentials_file == tmp_path / "fleet.creds"
    first = sinks[0]
    assert first.http is not None and first.http.bearer_token_file == tmp_path / "token"
    assert first.filter.clusters == ("eu-*",) and sinks[1].http is not None
    assert sinks[1].http.mode is HttpMode.BATCH and sinks[1].batch_size == 100


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        (
            "sinks:\n  - name: a\n",
            InvalidObjectError,
            "sinks[0]: give the sink's destination: exactly one of",
        ),
        (
            "sinks:\n  - name: a\n    http: {url: 'http://x'}\n    nats: {url: 'nats://x', subject: s}\n",
            InvalidObjectError,
            "exactly one of http, nats, kafka",
        ),
        (
            "sinks:\n  - name: a\n    nats: {url: 'nats://x', subject: 'a.>'}\n",
            InvalidObjectError,
            "nats.subject",
        ),
        ("sinks:\n  - name: a\n    http: {url: 'ftp://x'}\n", InvalidObjectError, "sinks[0].http.url"),
        ("sinks:\n  - name: a\n    http: {url: 'http://x'}\n    colour: red\n", InvalidObjectError, "colour"),
        (
            "sinks:\n  - name: a\n    http: {url: 'http://x'}\n  - name: a\n    http: {url: 'http://y'}\n",
            InvalidObjectError,
            "duplicate sink name 'a'",
        ),
        (
            "sinks:\n  - name: a\n    http: {url: 'http://x', bearerTokenFile: nope}\n",
            ConfigError,
            "sinks[0].http.bearerTokenFile: no such file",
        ),
        ("sinks: [\n", ConfigError, "sinks.yaml"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(
    tmp_path: Path, text: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as info:
        load_sinks_file(write(tmp_path, text))
    assert words in str(info.value) and "sinks.yaml" in str(info.value), str(info.value)


def change(**over: object) -> ChangeRow:
    base: dict[str, object] = {
        "position": 42,
        "time": datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
        "type": "CopyApplied",
        "cluster": "eu-west",
        "ref": ObjectRef("apps", "Deployment", "shop", "web"),
        "data": {"state": "applied"},
    }
    return ChangeRow(**{**base, **over})  # type: ignore[arg-type]


def test_a_cloud_event_has_the_position_as_id_and_names_its_object() -> None:
    event = cloud_event(change(), hub="prod-hub")
    assert event["specversion"] == "1.0" and event["id"] == "42" and event["federationposition"] == 42
    assert event["type"] == "io.federation.CopyApplied" and event["source"] == "/federation/prod-hub"
    assert event["subject"] == "apps/Deployment/shop/web" == partition_key(event)
    assert event["federationcluster"] == "eu-west" and event["data"]["kind"] == "Deployment"
    core = cloud_event(change(ref=ObjectRef("", "ConfigMap", "", "cm")), hub="h")
    assert core["subject"] == "core/ConfigMap/_/cm"
    cluster = cloud_event(change(type="ClusterNotReady", ref=None), hub="h")
    assert cluster["subject"] == "clusters/eu-west"
    assert "federationactor" not in cluster and "federationrevision" not in cluster
    placed = cloud_event(
        change(actor="kubectl-edit (Update)", policy="PropagationPolicy/shop/web", placement_revision=3),
        hub="h",
    )
    assert placed["federationactor"] == "kubectl-edit (Update)" and placed["federationrevision"] == 3
    assert placed["federationpolicy"] == "PropagationPolicy/shop/web"
    assert placed["data"]["by"] == "kubectl-edit (Update)" and placed["data"]["placementRevision"] == 3


def test_a_filter_with_several_values_matches_any_of_them() -> None:
    f = ChangeFilter.of(
        types="CopyApplied,DriftCorrected", namespace=["shop", "ops"], cluster=["eu-*", "us-east"]
    )
    assert f.matches(change())
    assert f.matches(change(cluster="us-east", type="DriftCorrected"))
    assert not f.matches(change(cluster="ap-south"))
    assert not f.matches(change(ref=ObjectRef("apps", "Deployment", "other", "web")))
    assert not f.matches(change(type="HealthChanged"))
    # Several values: the store filters by none of them, `matches` by all.
    assert f.query()["namespace"] is None and f.query()["types"] == ["CopyApplied", "DriftCorrected"]


class LogStore:
    """The change log's reads, over a list that grows as the test says; counts rows read."""

    def __init__(self) -> None:
        self.rows: list[ChangeRow] = []
        self.read = 0

    def append(self, count: int) -> None:
        start = len(self.rows) + 1
        self.rows += [change(position=p) for p in range(start, start + count)]

    async def changes_after(self, position: int, *, limit: int) -> list[ChangeRow]:
        page = [r for r in self.rows if r.position > position][:limit]
        self.read += len(page)
        return page


# A step: (reader, limit) reads from where that reader stands; an int appends that many rows.
steps = st.lists(st.one_of(st.tuples(st.integers(0, 2), st.integers(1, 7)), st.integers(0, 6)), max_size=60)


@given(steps=steps, keep=st.integers(1, 30))
@settings(max_examples=300, deadline=None)
def test_shared_pages_answer_what_the_log_would_and_read_each_change_once(
    steps: list[tuple[int, int] | int], keep: int
) -> None:
    """Three sinks reading at their own pace through `Pages`: each answer is a non-empty prefix
    of what the store would answer then (empty only when it would be), so no sink skips a
    change; and while the readers stay within the window, no change is read twice."""

    async def run() -> None:
        log = LogStore()
        pages = Pages(log, hub="h", keep=keep)  # type: ignore[arg-type]
        at = [0, 0, 0]
        for step in steps:
            if isinstance(step, int):
                log.append(step)
                continue
            reader, limit = step
            direct = [r.position for r in log.rows if r.position > at[reader]][:limit]
            got = [e.change.position for e in await pages.after(at[reader], limit)]
            assert got == direct[: len(got)] and bool(got) == bool(direct)
            if got:
                at[reader] = got[-1]
        if keep >= len(log.rows):
            assert log.read <= len(log.rows) + 3 * 7, "a change read again while in the window"

    anyio.run(run)


def test_readers_in_step_read_each_change_once() -> None:
    async def run() -> None:
        log = LogStore()
        log.append(1000)
        pages = Pages(log, hub="h")  # type: ignore[arg-type]
        a = b = 0
        while a < 1000 or b < 1000:
            if a < 1000:
                a = (await pages.after(a, 100))[-1].change.position
            if b < 1000:
                b = (await pages.after(b, 60))[-1].change.position
        assert log.read == 1000

    anyio.run(run)


def test_a_reader_left_behind_a_trimmed_window_skips_nothing() -> None:
    async def run() -> None:
        log = LogStore()
        log.append(10)
        pages = Pages(log, hub="h", keep=6)  # type: ignore[arg-type]
        slow = (await pages.after(0, 1))[-1].change.position
        fast = 0
        while fast < 10:
            fast = (await pages.after(fast, 7))[-1].change.position
        got = []
        while slow < 10:
            page = await pages.after(slow, 3)
            got += [e.change.position for e in page]
            slow = page[-1].change.position
        assert got == list(range(2, 11))

    anyio.run(run)
