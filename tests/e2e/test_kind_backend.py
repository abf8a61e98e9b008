"""Opt-in: the same fleet API on kind clusters, for machines with Docker (FEDERATION_KIND=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.devfleet import KindBackend, LocalFleet
from tests.kubehelpers import api_client


@pytest.mark.kind
async def test_kind_backend_starts_isolated_clusters(tmp_path: Path) -> None:
    from kubernetes_asyncio import client

    backend = KindBackend(tmp_path / "kind", prefix="federation-test")
    async with LocalFleet(members=1, state_dir=tmp_path, backend=backend, postgres=False) as fleet:
        for cluster in fleet.clusters.values():
            async with api_client(cluster) as api:
                namespaces = await client.CoreV1Api(api).list_namespace()
            assert "kube-system" in {ns.metadata.name for ns in namespaces.items}
