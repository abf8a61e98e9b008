"""The local fleet is made of real, isolated clusters, and its Postgres is a real server."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import asyncpg
import pytest
from kubernetes_asyncio import client, watch

from federation.devfleet import LocalFleet
from federation.errors import KindNotServedError
from federation.kube import GVK, Discovery, KubeClient
from tests.kubehelpers import api_client, crd_manifest, create_crd_and_wait, eventually

CLUSTERS = ("hub", "member-1", "member-2")


async def _names(fleet: LocalFleet, cluster: str, group: str, plural: str, namespace: str) -> set[str]:
    async with api_client(fleet.clusters[cluster]) as api:
        listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
            group, "v1", namespace, plural
        )
    return {item["metadata"]["name"] for item in listed["items"]}


async def test_crd_and_custom_resources_are_isolated_per_cluster(fleet: LocalFleet, namespace: str) -> None:
    group = f"t{secrets.token_hex(4)}.example.com"
    plural = "widgets"
    for name in CLUSTERS:
        await create_crd_and_wait(fleet.clusters[name], crd_manifest(group, "Widget", plural))

    # One custom resource per cluster, named after the cluster that holds it.
    for name in CLUSTERS:
        async with api_client(fleet.clusters[name]) as api:
            body = {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": f"from-{name}"},
                "spec": {"cluster": name},
            }
            await client.CustomObjectsApi(api).create_namespaced_custom_object(
                group, "v1", namespace, plural, body
            )

    for name in CLUSTERS:
        assert await _names(fleet, name, group, plural, namespace) == {f"from-{name}"}

    # A watch on member-1 sees member-1's new object, and never member-2's, which is written
    # first: had it leaked, the watch would have delivered it before member-1's object.
    async with api_client(fleet.clusters["member-1"]) as api:
        custom = client.CustomObjectsApi(api)
        listed = await custom.list_namespaced_custom_object(group, "v1", namespace, plural)
        rv = listed["metadata"]["resourceVersion"]
        seen: list[str] = []

        async def watch_member_1() -> None:
            w = watch.Watch()
            async with w.stream(
                custom.list_namespaced_custom_object,
                group,
                "v1",
                namespace,
                plural,
                resource_version=rv,
                timeout_seconds=30,
            ) as stream:
                async for event in stream:
                    seen.append(event["object"]["metadata"]["name"])
                    if event["object"]["metadata"]["name"] == "second-in-member-1":
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_member_1)
            async with api_client(fleet.clusters["member-2"]) as api2:
                await client.CustomObjectsApi(api2).create_namespaced_custom_object(
                    group,
                    "v1",
                    namespace,
                    plural,
                    {
                        "apiVersion": f"{group}/v1",
                        "kind": "Widget",
                        "metadata": {"name": "second-in-member-2"},
                    },
                )
            await custom.create_namespaced_custom_object(
                group,
                "v1",
                namespace,
                plural,
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": "second-in-member-1"},
                },
            )
            with anyio.fail_after(30):
                await eventually(lambda: _contains(seen, "second-in-member-1"), what="member-1's watch event")
    assert seen == ["second-in-member-1"]
    assert await _names(fleet, "member-2", group, plural, namespace) == {
        "from-member-2",
        "second-in-member-2",
    }
    assert await _names(fleet, "hub", group, plural, namespace) == {"from-hub"}


async def _contains(items: list[str], wanted: str) -> bool:
    return wanted in items


async def test_etcd_prefixes_keep_clusters_isolated_after_an_apiserver_restart(
    fleet: LocalFleet, namespace: str
) -> None:
    for name in CLUSTERS:
        async with api_client(fleet.clusters[name]) as api:
            await client.CoreV1Api(api).create_namespaced_config_map(
                namespace, {"metadata": {"name": f"cm-{name}"}, "data": {"owner": name}}
            )

    pid_before = fleet.cluster_pid("member-1")
    await anyio.to_thread.run_sync(fleet.restart_cluster, "member-1")
    assert fleet.backend.cluster_pid("member-1") not in (None, pid_before)  # type: ignore[attr-defined]

    # A write while member-1 is fresh must land in member-1 only.
    async with api_client(fleet.clusters["member-1"]) as api:
        await client.CoreV1Api(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": "after-restart"}, "data": {"owner": "member-1"}}
        )

    for name in CLUSTERS:
        async with api_client(fleet.clusters[name]) as api:
            cms = await client.CoreV1Api(api).list_namespaced_config_map(namespace)
        names = {cm.metadata.name for cm in cms.items if cm.metadata.name != "kube-root-ca.crt"}
        expected = {f"cm-{name}"} | ({"after-restart"} if name == "member-1" else set())
        assert names == expected, f"{name} sees {sorted(names)}"
        owners = {cm.data["owner"] for cm in cms.items if cm.data and "owner" in cm.data}
        assert owners == {name}


async def test_postgres_accepts_a_connection_and_a_write(fleet: LocalFleet) -> None:
    schema = f"t_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(fleet.database_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        assert int(version.split(".")[0]) >= 16
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.notes (id serial PRIMARY KEY, body text NOT NULL)")
        await conn.execute(f"INSERT INTO {schema}.notes (body) VALUES ($1)", "hello fleet")
    finally:
        await conn.close()
    # A second connection sees the committed row: it was really written, not buffered.
    conn = await asyncpg.connect(fleet.database_url)
    try:
        assert await conn.fetchval(f"SELECT body FROM {schema}.notes") == "hello fleet"
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def test_light_members_serve_what_copies_need_and_the_hub_keeps_every_group(tmp_path: Path) -> None:
    """The light profile (bench/scale.py --light) trims the members only, and still takes
    server-side applies of the kinds the benchmarks propagate."""
    async with LocalFleet(members=1, light=True, state_dir=tmp_path, postgres=False) as light:
        member, hub = light.clusters["member-1"], light.clusters["hub"]
        async with await KubeClient.connect(
            "member-1", kubeconfig=member.kubeconfig, context="member-1"
        ) as m:
            disco = Discovery(m, min_refresh_interval=0)
            for gvk in (GVK("apps", "v1", "Deployment"), GVK("", "v1", "ConfigMap")):
                await disco.resource_for(gvk)
            with pytest.raises(KindNotServedError):
                await disco.resource_for(GVK("batch", "v1", "Job"))
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}
            applied = await m.apply(
                await disco.resource_for(GVK("", "v1", "ConfigMap")), cm, field_manager="t"
            )
            assert applied["metadata"]["name"] == "c"
        async with await KubeClient.connect("hub", kubeconfig=hub.kubeconfig, context="hub") as h:
            await Discovery(h, min_refresh_interval=0).resource_for(GVK("batch", "v1", "Job"))
        # GOGC reaches the apiservers through the binary's environment.
        pid = light.cluster_pid("member-1")
        assert pid is not None
        environ = (await anyio.Path(f"/proc/{pid}/environ").read_bytes()).split(b"\0")
        assert b"GOGC=50" in environ
