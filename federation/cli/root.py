"""The root of the `federation` command: the click group, and how errors end a command.

Errors we raise on purpose (`FederationError`) are printed as one line plus a hint and exit
with status 1; anything else is a bug and shows its traceback only with ``--debug``. Each
command group is a module of `federation.cli`; `main` assembles them.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from federation import __version__
from federation.cli.clusters import clusters
from federation.cli.common import err_console
from federation.cli.completion import completion
from federation.cli.crds import crds
from federation.cli.db import db
from federation.cli.demo import demo
from federation.cli.dev import dev
from federation.cli.events import events
from federation.cli.keys import keys
from federation.cli.plan import plan
from federation.cli.rollout import rollout
from federation.cli.run import run
from federation.cli.status import status
from federation.cli.webhook import webhook
from federation.errors import FederationError
from federation.versions import VERSION_MESSAGE


def _leaves(err: BaseException) -> list[BaseException]:
    """The errors inside exception groups (a task group raises its tasks' errors as one)."""
    if isinstance(err, BaseExceptionGroup):
        return [leaf for inner in err.exceptions for leaf in _leaves(inner)]
    return [err]


def _fail(err: BaseException, *, debug: bool) -> NoReturn:
    """One line (plus a hint) per error we raised on purpose, also when a task group wrapped
    them; anything else is an internal error."""
    if debug:
        err_console.print_exception()
    leaves = _leaves(err)
    ours = [leaf for leaf in leaves if isinstance(leaf, FederationError)]
    bugs = [leaf for leaf in leaves if not isinstance(leaf, FederationError)]
    shown: set[str] = set()
    for leaf in ours:
        if str(leaf) in shown:
            continue
        shown.add(str(leaf))
        err_console.print(f"[bold red]error:[/] {leaf}", markup=True, soft_wrap=True)
        if leaf.hint:
            err_console.print(f"[yellow]hint:[/] {leaf.hint}", soft_wrap=True)
    if bugs:
        bug = bugs[0]
        err_console.print(f"[bold red]internal error:[/] {type(bug).__name__}: {bug}", soft_wrap=True)
        if not debug:
            err_console.print("[yellow]hint:[/] run again with --debug for the traceback, and report it")
    sys.exit(1)


class FederationGroup(click.Group):
    """A click group that turns our errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except Exception as exc:
            debug = bool(ctx.find_root().params.get("debug"))
            _fail(exc, debug=debug)


@click.group(cls=FederationGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="federation", message=VERSION_MESSAGE)
@click.option("--debug", is_flag=True, envvar="FEDERATION_DEBUG", help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """federation: propagate Kubernetes resources from a hub cluster to a fleet of member
    clusters, and aggregate their status back, with per-cluster state in Postgres.

    \b
    Start here:
      federation dev up          a local fleet (hub + members + Postgres) on this machine
      federation dev down        stop it
      federation plan -f policy.yaml -f app.yaml --clusters clusters.yaml
                                 where would it go, and why (a dry run)
    """


#: The command groups, in the order a newcomer meets them (``--help`` lists them sorted).
COMMANDS: tuple[click.Command, ...] = (
    dev,
    run,
    demo,
    plan,
    crds,
    status,
    events,
    rollout,
    clusters,
    keys,
    db,
    webhook,
    completion,
)
for _command in COMMANDS:
    main.add_command(_command)
