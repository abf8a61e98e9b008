"""The leader's view of member copies whose propagators run on other replicas
(`federation.status.remote`), over a fake of the one store read it makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from federation.kube.keys import ResourceKey
from federation.status.aggregate import aggregate_status
from federation.status.remote import RemoteStatuses
from federation.store.repo.collected import CollectedStatus

T0 = datetime(2026, 11, 27, tzinfo=UTC)
WEB = ResourceKey("apps", "Deployment", "default", "web")
CONFIG = ResourceKey("", "ConfigMap", "default", "config")


def row(key: ResourceKey, cluster: str, rv: str, *, at: int, ready: int = 1) -> CollectedStatus:
    return CollectedStatus(
        api_group=key.group,
        kind=key.kind,
        namespace=key.namespace,
        name=key.name,
        cluster=cluster,
        status={"replicas": 2, "updatedReplicas": 2, "readyReplicas": ready, "availableReplicas": ready},
        spec={"replicas": 2},
        member_resource_version=rv,
        collected_at=T0 + timedelta(seconds=at),
    )


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[CollectedStatus] = []
        self.reads: list[tuple[datetime | None, list[str]]] = []

    async def collected_statuses(
        self, *, since: datetime | None, clusters: list[str]
    ) -> list[CollectedStatus]:
        self.reads.append((since, clusters))
        return [r for r in self.rows if r.cluster in clusters and (since is None or r.collected_at > since)]


def remote_statuses(store: FakeStore, remote: set[str]) -> tuple[RemoteStatuses, list[ResourceKey]]:
    changed: list[ResourceKey] = []
    statuses = RemoteStatuses(store=store, remote=lambda: remote, on_change=changed.append, slack=5.0)  # type: ignore[arg-type]
    return statuses, changed


async def test_copies_elsewhere_aggregate_like_live_ones() -> None:
    store = FakeStore()
    store.rows = [row(WEB, "member-2", "7", at=1, ready=1), row(CONFIG, "member-2", "3", at=1)]
    statuses, changed = remote_statuses(store, {"member-2"})
    await statuses._read(full=True)
    assert changed == [WEB, CONFIG]  # both: the policy's status counts every kind
    assert statuses.get(CONFIG, "member-2") is None  # no hub status is aggregated for it
    template = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 1}}
    copy = statuses.get(WEB, "member-2")
    assert copy is not None
    status = aggregate_status(template, {"member-2": copy}, placed=["member-2"], now="t")
    assert status is not None and status["readyReplicas"] == 1
    assert "member-2: 1/2 replicas available" in status["conditions"][1]["message"]


async def test_reads_go_back_by_the_slack_and_report_only_what_changed() -> None:
    store = FakeStore()
    store.rows = [row(WEB, "member-2", "7", at=10)]
    statuses, changed = remote_statuses(store, {"member-2", "member-3"})
    await statuses._read(full=True)
    store.rows = [row(WEB, "member-2", "7", at=10), row(WEB, "member-3", "1", at=8)]  # committed late
    await statuses._read(full=False)
    assert store.reads[-1][0] == T0 + timedelta(seconds=5)  # 10 s, less the slack
    assert changed == [WEB, WEB]  # member-3's, not member-2's again
    assert statuses.get(WEB, "member-3") is not None


async def test_a_full_read_forgets_what_left_and_a_changed_remote_set_reads_in_full() -> None:
    store = FakeStore()
    store.rows = [row(WEB, "member-2", "7", at=10)]
    remote = {"member-2"}
    changed: list[ResourceKey] = []
    statuses = RemoteStatuses(store=store, remote=lambda: remote, on_change=changed.append)  # type: ignore[arg-type]
    await statuses._read(full=True)
    store.rows = []  # the work was deleted
    await statuses._read(full=True)
    assert statuses.get(WEB, "member-2") is None and changed == [WEB, WEB]
    remote.add("member-3")  # handed to another replica: its rows are older than the watermark
    store.rows = [row(WEB, "member-3", "1", at=1)]
    await statuses._read(full=False)
    assert store.reads[-1] == (None, ["member-2", "member-3"])
    assert statuses.get(WEB, "member-3") is not None
    remote.clear()  # everything leased here again: no read at all
    before = len(store.reads)
    await statuses._read(full=False)
    assert len(store.reads) == before and statuses.get(WEB, "member-3") is None
