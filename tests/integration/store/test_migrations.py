"""The migrations on a real Postgres: up, down, up again, and in agreement with the models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from federation.devfleet import EmbeddedPostgres
from federation.store import migrate
from federation.store.models import VIEW_NAMES, Base
from tests.storehelpers import create_database, drop_database, query

TABLES = sorted(Base.metadata.tables)


@pytest.fixture
async def empty_url(postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    """An empty database (no schema at all)."""
    url = await create_database(postgres.url, "migrations_test")
    yield url
    await drop_database(postgres.url, "migrations_test")


async def relations(url: str) -> dict[str, str]:
    """Tables ('r') and views ('v') of the public schema, and the types we create ('e' for enums)."""
    rows = await query(
        url,
        """
        SELECT c.relname AS name, c.relkind::text AS kind FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')
        UNION ALL
        SELECT t.typname, 'e' FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype = 'e'
        """,
    )
    return {r["name"]: r["kind"] for r in rows}


async def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    assert await migrate.current(empty_url) is None

    revisions = await migrate.upgrade(empty_url)
    assert revisions.before is None
    assert revisions.after == migrate.head_revision() == "0010"
    found = await relations(empty_url)
    for table in TABLES:
        assert found.get(table) == "r", table
    for view in VIEW_NAMES:
        assert found.get(view) == "v", view
    assert found.get("work_state") == "e" and found.get("health") == "e"

    assert found.get("controller_leader") == "r"
    reason = "SELECT health_reason FROM fleet_work_status LIMIT 0"
    await query(empty_url, reason)

    since = "SELECT healthy_since FROM fleet_work_status LIMIT 0"
    await query(empty_url, since)
    assert found.get("rollouts") == "r" and found.get("changes") == "r"
    context = (
        "SELECT count(*) AS n FROM information_schema.columns"
        " WHERE (table_name, column_name) IN (('changes', 'actor'), ('resources', 'last_writer'))"
    )
    assert (await query(empty_url, context))[0]["n"] == 2
    revisions = await migrate.downgrade(empty_url, "0009")
    assert (revisions.before, revisions.after) == ("0010", "0009")
    assert (await query(empty_url, context))[0]["n"] == 0
    # 0009's triggers are back: a cluster's row is still logged, without the context columns.
    await query(empty_url, "INSERT INTO clusters (name) VALUES ('m')")
    assert [r["type"] for r in await query(empty_url, "SELECT type FROM changes")] == ["ClusterJoined"]
    await query(empty_url, "DELETE FROM clusters")
    revisions = await migrate.downgrade(empty_url, "0008")
    assert (revisions.before, revisions.after) == ("0009", "0008")
    assert "changes" not in await relations(empty_url)
    revisions = await migrate.downgrade(empty_url, "0007")
    assert (revisions.before, revisions.after) == ("0008", "0007")
    assert "rollouts" not in await relations(empty_url)
    await query(empty_url, since)
    revisions = await migrate.downgrade(empty_url, "0006")
    assert (revisions.before, revisions.after) == ("0007", "0006")
    with pytest.raises(asyncpg.UndefinedColumnError):
        await query(empty_url, since)
    await query(empty_url, reason)  # the view is 0004's again, its reason column kept
    assert set(await relations(empty_url)) >= VIEW_NAMES

    assert found.get("controller_replicas") == "r"
    revisions = await migrate.downgrade(empty_url, "0005")
    assert (revisions.before, revisions.after) == ("0006", "0005")
    assert "controller_replicas" not in await relations(empty_url)

    rejected = "INSERT INTO events (event_key, type) VALUES (gen_random_uuid(), 'StatusRejected')"
    await query(empty_url, rejected)
    revisions = await migrate.downgrade(empty_url, "0004")
    assert (revisions.before, revisions.after) == ("0005", "0004")
    with pytest.raises(asyncpg.CheckViolationError):
        await query(empty_url, rejected)

    revisions = await migrate.downgrade(empty_url, "0003")
    assert (revisions.before, revisions.after) == ("0004", "0003")
    with pytest.raises(asyncpg.UndefinedColumnError):
        await query(empty_url, reason)
    assert set(await relations(empty_url)) >= VIEW_NAMES  # rebuilt without it

    revisions = await migrate.downgrade(empty_url, "0002")
    assert (revisions.before, revisions.after) == ("0003", "0002")
    assert "controller_leader" not in await relations(empty_url)

    revisions = await migrate.downgrade(empty_url, "0001")
    assert (revisions.before, revisions.after) == ("0002", "0001")
    assert not VIEW_NAMES & set(await relations(empty_url))

    revisions = await migrate.downgrade(empty_url, "base")
    assert (revisions.before, revisions.after) == ("0001", None)
    # Only alembic's own bookkeeping table is left: no table, view or enum type of ours.
    assert set(await relations(empty_url)) == {"alembic_version"}

    revisions = await migrate.upgrade(empty_url, "head")
    assert (revisions.before, revisions.after) == (None, "0010")
    assert await migrate.current(empty_url) == "0010"
    assert set(TABLES) | VIEW_NAMES <= set(await relations(empty_url))


async def test_models_and_migrations_agree(database_url: str) -> None:
    # What `alembic revision --autogenerate` would write: nothing (views are not compared).
    assert await migrate.schema_diff(database_url) == []


async def test_the_comparison_does_see_a_difference(database_url: str) -> None:
    # Guard against a comparison that finds nothing because it looks at nothing.
    await query(database_url, "ALTER TABLE works ADD COLUMN stray text")
    await query(database_url, "DROP INDEX ix_works_due")
    diff = await migrate.schema_diff(database_url)
    rendered = repr(diff)
    assert "stray" in rendered and "ix_works_due" in rendered, rendered


async def test_upgrading_twice_is_a_no_op(database_url: str) -> None:
    revisions = await migrate.upgrade(database_url)
    assert revisions.before == revisions.after == "0010"
