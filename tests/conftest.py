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
from hypothesis import HealthCheck, settings

from federation.devfleet import EmbeddedPostgres, LocalFleet
from federation.store import Store

# Properties assert what is computed, never how fast: on 2 shared cores under load an example
# can take seconds, which hypothesis' default 200 ms deadline and its "too slow" health check
# would report as a failure. Speed is measured in bench/, not asserted here.
settings.register_profile("federation", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("federation")


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
    # Under pytest-xdist each worker has a fleet of its own (say whose in its progress lines).
    who = os.environ.get("PYTEST_XDIST_WORKER")
    tag = f"[fleet {who}]" if who else "[fleet]"
    local = LocalFleet(
        members=members, progress=lambda m: print(f"{tag} {m}", file=sys.__stderr__, flush=True)
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
    from tests.kubehelpers import create_namespace, delete_namespace, delete_policies

    name = _namespace_name(request.node.name)
    for cluster in fleet.clusters.values():
        await create_namespace(cluster, name)
    yield name
    # No namespace controller runs in the local fleet, so a deleted namespace keeps its objects:
    # delete this test's policies first, so no later controller places its templates again.
    await delete_policies(fleet.clusters["hub"], name)
    for cluster in fleet.clusters.values():
        await delete_namespace(cluster, name)


# -- the state store: a Postgres of its own, a fresh database per test -----------------------

STORE_TEMPLATE_DB = "federation_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server for store tests (no apiservers); fsync off, as for any throwaway fleet."""
    from tests.storehelpers import temporary_postgres

    with temporary_postgres("federation-test-postgres-") as server:
        yield server


@pytest.fixture(scope="session")
async def store_template(postgres: EmbeddedPostgres) -> str:
    """A database migrated to head once; each test's database is a copy of it (CREATE ... TEMPLATE)."""
    from federation.store import migrate
    from tests.storehelpers import create_database

    url = await create_database(postgres.url, STORE_TEMPLATE_DB)
    await migrate.upgrade(url)
    return STORE_TEMPLATE_DB


@pytest.fixture
async def database_url(postgres: EmbeddedPostgres, store_template: str) -> AsyncIterator[str]:
    """A database of this test's own, at the newest schema revision; dropped afterwards."""
    from tests.storehelpers import create_database, drop_database

    name = f"t_{secrets.token_hex(6)}"
    url = await create_database(postgres.url, name, template=store_template)
    yield url
    await drop_database(postgres.url, name)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A `federation.store.Store` on this test's database."""
    opened = await Store.connect(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
async def hub_crds(fleet: LocalFleet) -> None:
    """Every generated CRD installed on the hub (replacing an older copy) and served."""
    from tests.kubehelpers import install_hub_crds

    await install_hub_crds(fleet)
