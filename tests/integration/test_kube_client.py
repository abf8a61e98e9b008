"""The per-cluster client on real apiservers: connecting, discovery, typed errors, apply."""

from __future__ import annotations

import itertools
import secrets
import socket
import time
from pathlib import Path

import pytest
from aiohttp import web

from federation.devfleet import LocalFleet
from federation.errors import (
    ApiError,
    ClusterUnreachableError,
    ConfigError,
    ConflictError,
    InvalidError,
    NotFoundError,
)
from federation.kube import GVK, Discovery, KubeClient
from federation.kube.client import RETRY_AFTER_ATTEMPTS
from federation.kube.config import ConnectionConfig
from federation.metrics import KUBE_THROTTLED
from tests.kubehelpers import crd_manifest, create_crd_and_wait

DEPLOYMENT = GVK("apps", "v1", "Deployment")
CONFIGMAP = GVK("", "v1", "ConfigMap")


async def test_connect_from_kubeconfig_contents_as_held_in_a_secret(fleet: LocalFleet) -> None:
    info = fleet.clusters["member-1"]
    data = info.kubeconfig.read_text()
    async with await KubeClient.connect(
        "member-1", kubeconfig_data=data, source="Secret fleet/member-1 key kubeconfig"
    ) as client:
        version = await client.version()
        assert version["gitVersion"].startswith("v1.36")
        assert await client.ready() == (True, "ok")


async def test_bad_kubeconfigs_name_the_file_and_context(tmp_path: Path, fleet: LocalFleet) -> None:
    with pytest.raises(ConfigError, match=r"kubeconfig .*missing\.yaml: file not found"):
        await KubeClient.connect("x", kubeconfig=tmp_path / "missing.yaml")
    info = fleet.clusters["member-1"]
    with pytest.raises(ConfigError, match=r"context 'no-such-context'"):
        await KubeClient.connect("x", kubeconfig=info.kubeconfig, context="no-such-context")
    with pytest.raises(ConfigError, match=r"Secret a/b key c: not a kubeconfig"):
        await KubeClient.connect("x", kubeconfig_data="- just\n- a list\n", source="Secret a/b key c")


async def test_unreachable_cluster_is_a_typed_error_naming_the_cluster(fleet: LocalFleet) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    info = fleet.clusters["member-1"]
    text = info.kubeconfig.read_text().replace(info.server, f"https://127.0.0.1:{closed_port}")
    async with await KubeClient.connect("ghost", kubeconfig_data=text, timeout=5) as client:
        with pytest.raises(ClusterUnreachableError, match=r"cluster ghost: .*cannot reach"):
            await client.version()
        ready, reason = await client.ready()
        assert not ready and "cannot reach" in reason


async def test_a_closed_client_is_an_unreachable_cluster_not_a_crash(fleet: LocalFleet) -> None:
    """A member that leaves the fleet has its client closed while its probe or a watch may still
    be under way: they must see an unreachable cluster (once, this crashed the controller)."""
    info = fleet.clusters["member-1"]
    client = await KubeClient.connect("leaving", kubeconfig=info.kubeconfig, context=info.context)
    assert (await client.ready())[0]
    await client.close()
    ready, reason = await client.ready()
    assert not ready and "the client was closed" in reason
    with pytest.raises(
        ClusterUnreachableError, match=r"cluster leaving: get /version: the client was closed"
    ):
        await client.version()
    with pytest.raises(ClusterUnreachableError, match=r"the client was closed"):
        async with client.stream_lines("/api/v1/namespaces?watch=1"):
            pass


async def test_typed_api_errors_carry_the_apiservers_message(fleet: LocalFleet, namespace: str) -> None:
    info = fleet.clusters["member-1"]
    async with await KubeClient.connect(
        "member-1", kubeconfig=info.kubeconfig, context=info.context
    ) as client:
        disco = Discovery(client)
        deployments = await disco.resource_for(DEPLOYMENT)
        assert (deployments.plural, deployments.namespaced, deployments.has_status) == (
            "deployments",
            True,
            True,
        )
        with pytest.raises(NotFoundError) as nf:
            await client.get(deployments, "nope", namespace)
        assert nf.value.status == 404 and "member-1" in str(nf.value)

        bad = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {
                "replicas": -1,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
        with pytest.raises(InvalidError) as inv:
            await client.create(deployments, bad)
        assert inv.value.status == 422
        assert "spec.replicas" in str(inv.value), str(inv.value)

        cms = await disco.resource_for(CONFIGMAP)
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace}}
        await client.create(cms, cm)
        with pytest.raises(ConflictError):
            await client.create(cms, cm)

        # Server-side apply with a field manager, then a conflicting manager is refused
        # unless it forces.
        applied = await client.apply(cms, {**cm, "data": {"k": "ours"}}, field_manager="federation")
        assert applied["data"] == {"k": "ours"}
        with pytest.raises(ConflictError, match="conflict"):
            await client.apply(cms, {**cm, "data": {"k": "theirs"}}, field_manager="someone-else")
        forced = await client.apply(
            cms, {**cm, "data": {"k": "theirs"}}, field_manager="someone-else", force=True
        )
        assert forced["data"] == {"k": "theirs"}


async def test_discovery_learns_a_crd_created_after_it_loaded(fleet: LocalFleet) -> None:
    info = fleet.clusters["member-2"]
    async with await KubeClient.connect(
        "member-2", kubeconfig=info.kubeconfig, context=info.context
    ) as client:
        disco = Discovery(client, min_refresh_interval=0)
        await disco.refresh()
        group = f"t{secrets.token_hex(4)}.example.com"
        gvk = GVK(group, "v1", "Sprocket")
        with pytest.raises(NotFoundError, match="no resource serves"):
            await disco.resource_for(gvk)
        await create_crd_and_wait(info, crd_manifest(group, "Sprocket", "sprockets", scope="Cluster"))
        res = await disco.resource_for(gvk)
        assert (res.plural, res.namespaced) == ("sprockets", False)
        assert res.collection_path() == f"/apis/{group}/v1/sprockets"


async def test_a_429_is_sent_again_after_its_retry_after() -> None:
    """The apiserver did not process a 429, so it is sent again after the Retry-After it
    names (the client's other requests wait too: tests/unit/test_kube_throttle.py); past
    `RETRY_AFTER_ATTEMPTS` the 429 goes to the caller.

    A loopback HTTP server plays the apiserver's answer here: a real apiserver answers 429
    from API Priority and Fairness, which exempts the fleet's admin credentials
    (system:masters), so the fleet cannot be made to refuse our test client."""
    refusals = {"/busy": 2, "/always": 10**6}
    seen: list[tuple[str, float]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path, time.monotonic()))
        if refusals.get(request.path, 0) > 0:
            refusals[request.path] -= 1
            return web.json_response(
                {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "too many requests"},
                status=429,
                headers={"Retry-After": "0.3"},
            )
        return web.json_response({"kind": "Status", "path": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def no_auth() -> None:
        return None

    config = ConnectionConfig(server=f"http://127.0.0.1:{port}", ssl_context=False, auth_header=no_auth)
    client = KubeClient("loopback", config)
    try:
        started = time.monotonic()
        answer = await client.request("GET", "/busy")
        assert answer["path"] == "/busy"
        assert [p for p, _ in seen] == ["/busy"] * 3
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(seen)]
        assert all(gap >= 0.29 for gap in gaps), gaps
        seen.clear()
        throttled_before = KUBE_THROTTLED.labels("loopback")._value.get()
        with pytest.raises(ApiError) as refused:
            await client.request("GET", "/always")
        assert refused.value.status == 429
        assert len(seen) == RETRY_AFTER_ATTEMPTS
        assert KUBE_THROTTLED.labels("loopback")._value.get() - throttled_before >= RETRY_AFTER_ATTEMPTS - 1
        assert time.monotonic() - started >= 0.3 * (2 + RETRY_AFTER_ATTEMPTS - 1)
    finally:
        await client.close()
        await runner.cleanup()
