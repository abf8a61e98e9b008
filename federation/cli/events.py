"""`federation events`: what happened in the fleet (drift corrected, conflicts, failovers, …)."""

from __future__ import annotations

from pathlib import Path

import click

from federation.cli.common import database_options, parse_since, with_database
from federation.cli.output import Listing, Output, emit, output_option
from federation.store import Store

#: ``-o name`` gives ``event/ID``: the id orders events and is what the API pages by.
EVENTS = Listing(
    columns=("age", "type", "cluster", "object", "message"),
    wide=("time",),
    elastic=("message",),
    name=lambda r: f"event/{r['id']}",
)


@click.command("events")
@click.option("--cluster", help="Only events of this member cluster.")
@click.option("-n", "--namespace", help="Only events of objects in this namespace.")
@click.option("--kind", help="Only events of objects of this kind (e.g. Deployment).")
@click.option("--name", help="Only events of objects with this name.")
@click.option(
    "--type", "type_", help="Only this event type (DriftCorrected, Conflict, Failover, ApplyFailed, …)."
)
@click.option("--since", help="Only events newer than this (30s, 10m, 2h, 7d).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@database_options
@output_option
def events(cluster: str | None, namespace: str | None, kind: str | None, name: str | None, type_: str | None,
           since: str | None, limit: int, database_url: str | None, state_dir: Path,
           output: Output) -> None:  # fmt: skip
    """Show the fleet's event history, newest first.

    Events are kept in Postgres (retention: a week by default): drift corrected (with the diff
    in -o json), conflicts, adoptions, failed applies, failovers, deletions.

    \b
    Examples:
      federation events --since 1h
      federation events --cluster member-2 --type DriftCorrected -o json
    """
    bound = parse_since(since)

    async def show(url: str) -> None:
        store = await Store.connect(url)
        try:
            found = await store.list_events(
                cluster=cluster,
                namespace=namespace,
                kind=kind,
                name=name,
                type_=type_,
                since=bound,
                limit=limit,
            )
        finally:
            await store.close()
        rows = [
            {
                "id": e.id,
                "age": e.time,
                "type": e.type.value,
                "cluster": e.cluster,
                "object": str(e.ref) if e.ref else None,
                "message": e.message,
                "time": e.time.isoformat(),
                "details": e.details,
            }
            for e in found
        ]
        emit(rows, EVENTS, output)

    with_database(database_url, state_dir, show)
