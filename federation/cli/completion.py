"""`federation completion bash|zsh|fish`: the shell completion script, as kubectl prints its own.

Click completes from the command tree itself (commands, options, choices such as ``-o``'s and
``--fail``'s) when the program runs with ``_FEDERATION_COMPLETE`` set; this command only prints
the few lines of shell that set it, so nobody has to know click's convention.
"""

from __future__ import annotations

import os

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    Load it in the current shell:
      source <(federation completion bash)           # bash
      source <(federation completion zsh)            # zsh
      federation completion fish | source            # fish
    \b
    Or for every new shell, e.g. bash:
      federation completion bash > ~/.local/share/bash-completion/completions/federation
    """
    root = click.get_current_context().find_root()
    prog = os.path.basename(root.info_name or "federation")
    cls = get_completion_class(shell)
    assert cls is not None  # the Choice above lists only shells click knows
    click.echo(cls(root.command, {}, prog, complete_var(prog)).source())


def complete_var(prog: str) -> str:
    """The variable click completes under for program `prog` (``kubectl federation`` too: a
    space, like a dash, has no place in a variable's name)."""
    return "_" + prog.replace(" ", "_").replace("-", "_").upper() + "_COMPLETE"
