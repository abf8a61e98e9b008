"""The `federation` subcommands beyond `run`/`dev`/`db`: status, events, clusters, demo, keys.

Each module defines click commands; `register` adds them to the top-level group. Shared CLI
plumbing (consoles, database options, output formats) lives in `federation.commands.base`.
"""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from federation.commands.clusters import clusters
    from federation.commands.demo import demo
    from federation.commands.events import events
    from federation.commands.keys import keys
    from federation.commands.status import status

    for command in (status, events, clusters, demo, keys):
        main.add_command(command)
