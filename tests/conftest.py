"""Shared fixtures: one local fleet per test session, a fresh namespace per test.

The fleet is real: kube-apiservers on an embedded etcd built from the Kubernetes Go modules,
and an embedded PostgreSQL server. Starting it needs Go (for the first build); when Go is
missing the fixture fails with the error's hint on how to get it.
"""

from __future__ import annotations

import inspect
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from federation.devfleet import LocalFleet


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every coroutine test runs on asyncio through anyio's plugin (kubernetes-asyncio and
    # asyncpg are asyncio libraries).
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.function):
            item.add_marker(pytest.mark.anyio)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Skipped here rather than by a marker added at collection: anyio's plugin re-creates
    # coroutine test items after collection and drops markers added to them dynamically.
    if item.get_closest_marker("kind") and os.environ.get("FEDERATION_KIND") != "1":
        pytest.skip("opt-in kind test: set FEDERATION_KIND=1 on a machine with Docker and kind")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def fleet() -> Iterator[LocalFleet]:
    """Hub + 3 members + Postgres, shared by every integration test of the session."""
    members = int(os.environ.get("FEDERATION_TEST_MEMBERS", "3"))
    local = LocalFleet(
        members=members, progress=lambda m: print(f"[fleet] {m}", file=sys.__stderr__, flush=True)
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
async def namespace(request: pytest.FixtureRequest, fleet: LocalFleet) -> AsyncIterator[str]:
    """A namespace unique to this test, created in every cluster of the fleet and deleted after."""
    from tests.kubehelpers import create_namespace, delete_namespace

    name = _namespace_name(request.node.name)
    for cluster in fleet.clusters.values():
        await create_namespace(cluster, name)
    yield name
    for cluster in fleet.clusters.values():
        await delete_namespace(cluster, name)
