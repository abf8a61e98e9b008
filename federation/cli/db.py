"""`federation db`: the Postgres state store's schema migrations."""

from __future__ import annotations

from pathlib import Path

import click

from federation.cli.common import database_options, err_console, out_console, with_database


@click.group("db")
def db() -> None:
    """The Postgres state store: schema migrations.

    \b
    Which database: --database-url (or FEDERATION_DATABASE_URL); with neither, an embedded
    Postgres with its data in STATE_DIR/db, started for the command and stopped after it
    (STATE_DIR: --state-dir, FEDERATION_STATE_DIR, or ~/.local/share/federation).
    """


def _where(database_url: str | None, state_dir: Path) -> str:
    from federation.store.url import describe

    if database_url:
        return describe(database_url)
    return f"the embedded database in {state_dir / 'db'}"


def _revision_label(revision: str | None, head: str) -> str:
    if revision is None:
        return "none (empty database)"
    return f"{revision} (head)" if revision == head else revision


@db.command("upgrade")
@click.argument("revision", default="head")
@database_options
def db_upgrade(revision: str, database_url: str | None, state_dir: Path) -> None:
    """Upgrade the schema to REVISION (default: head, the newest)."""
    from federation.store import migrate

    head = migrate.head_revision()
    result = with_database(database_url, state_dir, lambda url: migrate.upgrade(url, revision))
    where = _where(database_url, state_dir)
    before, after = _revision_label(result.before, head), _revision_label(result.after, head)
    message = f"{where}: already at {after}" if before == after else f"{where}: upgraded {before} → {after}"
    out_console.print(message, soft_wrap=True)


@db.command("downgrade")
@click.argument("revision")
@database_options
def db_downgrade(revision: str, database_url: str | None, state_dir: Path) -> None:
    """Downgrade the schema to REVISION ('base' removes every table and view)."""
    from federation.store import migrate

    head = migrate.head_revision()
    result = with_database(database_url, state_dir, lambda url: migrate.downgrade(url, revision))
    where = _where(database_url, state_dir)
    before, after = _revision_label(result.before, head), _revision_label(result.after, head)
    out_console.print(f"{where}: downgraded {before} → {after}", soft_wrap=True)


@db.command("current")
@database_options
def db_current(database_url: str | None, state_dir: Path) -> None:
    """Show the schema revision of the database (and whether it is the newest)."""
    from federation.store import migrate

    head = migrate.head_revision()
    current = with_database(database_url, state_dir, migrate.current)
    out_console.print(_revision_label(current, head))
    if current != head:
        err_console.print(
            f"[yellow]hint:[/] the newest revision is {head}: run `federation db upgrade`", soft_wrap=True
        )
