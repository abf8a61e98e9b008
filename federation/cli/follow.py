"""``-w``: follow the fleet's change log from a shell, like ``kubectl get -w``.

Reads the change log in Postgres (`federation.store.repo.changes`) after a position, so it works
wherever the database is reachable, with or without a controller running (it numbers new rows
itself: the sequencer is safe to run from anywhere). Every line carries the change's position;
``--since-position N`` resumes after N with no gap and no repeat, after a dropped connection or
a restart of anything. Ctrl-C ends it cleanly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import click
import orjson

from federation.changes import ChangeFilter
from federation.cli.output import Output, cell, table_lines
from federation.errors import StoreError
from federation.store import ChangeRow, Store

#: BY: who last changed the template when the change happened (its field manager).
COLUMNS = ("POSITION", "TIME", "TYPE", "CLUSTER", "OBJECT", "BY", "DETAIL")
#: Seconds between reads when nothing new came.
INTERVAL = 0.5
PAGE = 500


def describe(change: ChangeRow) -> str:
    """The change in a few words (the JSON form has every field)."""
    d = change.data
    kind = change.type
    if kind == "HealthChanged":
        why = f": {d['reason']}" if d.get("reason") else ""
        return f"{d.get('from') or 'none'} → {d.get('health')}{why}"
    if kind == "PlacementDecided":
        clusters = ", ".join(d.get("clusters") or ()) or "none"
        return f"revision {d.get('revision')}: {clusters}" + (f" ({d['policy']})" if d.get("policy") else "")
    if kind.startswith("Copy"):
        error = f": {str(d['error'])[:120]}" if d.get("error") else ""
        return (f"{d['from']} → {d.get('state')}" if d.get("from") else str(d.get("state") or "")) + error
    if kind.startswith("Cluster"):
        return str(d.get("reason") or d.get("taints") or d.get("labels") or "")
    return str(d.get("message") or "")


def line(change: ChangeRow) -> list[str]:
    ref = change.ref
    obj = (
        (f"{ref.kind} {ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind} {ref.name}")
        if ref
        else "-"
    )
    return [
        str(change.position),
        change.time.strftime("%H:%M:%S"),
        change.type,
        cell(change.cluster),
        obj,
        cell(change.actor),
        describe(change),
    ]


async def follow(
    store: Store,
    filter: ChangeFilter,
    *,
    since: int | None,
    output: Output,
    name: str | None = None,
    on_change: Callable[[ChangeRow], Awaitable[None]] | None = None,
) -> None:
    """Print every change after `since` (None: from now on) that `filter` (and `name`) pass,
    until cancelled. `on_change` replaces the printing (``status -w`` prints rows instead)."""
    await store.sequence_changes()
    position = await store.last_position() if since is None else since
    first = True
    while True:
        try:
            await store.sequence_changes()
            changes = await store.changes_after(position, limit=PAGE, **filter.query())
        except StoreError as exc:
            click.echo(f"warning: {exc}; retrying (resume point: --since-position {position})", err=True)
            await anyio.sleep(2.0)
            continue
        for change in changes:
            position = change.position
            if not filter.matches(change) or (
                name is not None and (change.ref is None or change.ref.name != name)
            ):
                continue
            if on_change is not None:
                await on_change(change)
            elif output.format in ("json", "jmespath", "yaml", "name"):
                click.echo(orjson.dumps(change.to_json()).decode())
            else:
                headers = list(COLUMNS) if first and output.headers else None
                for text in table_lines([line(change)], headers=headers, elastic=[5], width=None):
                    click.echo(text)
                first = False
        if len(changes) < PAGE:
            await anyio.sleep(INTERVAL)


def run_until_interrupted(action: Callable[[], Awaitable[Any]]) -> None:
    """Ctrl-C ends a follow with exit status 0 and no traceback."""
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(action)
