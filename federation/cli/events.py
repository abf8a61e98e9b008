"""`federation events`: what happened in the fleet (drift corrected, conflicts, failovers, …)."""

from __future__ import annotations

from pathlib import Path

import anyio
import click

from federation.changes import ChangeFilter
from federation.cli.common import database_options, parse_since, with_database, with_database_async
from federation.cli.follow import follow, run_until_interrupted
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
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Follow every change in the fleet as it happens (the change log: copies placed, applied, "
    "failed; health; placements; clusters; and these events), a line each, until Ctrl-C.",
)
@click.option(
    "--since-position",
    type=click.IntRange(0),
    help="With -w: start after this position (every line shows its own), e.g. to resume.",
)
@database_options
@output_option
def events(cluster: str | None, namespace: str | None, kind: str | None, name: str | None, type_: str | None,
           since: str | None, limit: int, watch: bool, since_position: int | None, database_url: str | None,
           state_dir: Path, output: Output) -> None:  # fmt: skip
    """Show the fleet's event history, newest first; with -w, follow every change as it happens.

    Events are kept in Postgres (retention: a week by default): drift corrected (with the diff
    in -o json), conflicts, adoptions, failed applies, failovers, deletions. The change log that
    -w follows holds those and every other state change, each with a position to resume from;
    --cluster takes a glob there (eu-*), --type a comma-separated list.

    \b
    Examples:
      federation events --since 1h
      federation events --cluster member-2 --type DriftCorrected -o json
      federation events -w --cluster 'eu-*' -o json         # one JSON object per line
      federation events -w --since-position 1200            # resume after position 1200
    """
    if watch:
        watched = ChangeFilter.of(
            types=(type_ or "").split(","), namespace=namespace, kind=kind, cluster=cluster
        )

        async def follow_log(url: str) -> None:
            store = await Store.connect(url)
            try:
                await follow(store, watched, since=since_position, output=output, name=name)
            finally:
                with anyio.CancelScope(shield=True):
                    await store.close()

        run_until_interrupted(lambda: with_database_async(database_url, state_dir, follow_log))
        return
    if since_position is not None:
        raise click.UsageError("--since-position goes with -w")
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
