"""The `federation` command as a kubectl plugin: ``kubectl federation status``.

kubectl runs any executable named ``kubectl-NAME`` on PATH for ``kubectl NAME``, with the
plugin's path as ``argv[0]``. click would name the program after that file, so usage lines and
errors would tell the user to type ``kubectl-federation ...``; under kubectl the command the user
typed is ``kubectl federation``, so that is the name shown. Otherwise it is the same `main`.
"""

from __future__ import annotations

import os
import sys

from federation.cli.completion import complete_var
from federation.cli.root import main

PLUGIN_PREFIX = "kubectl-"


def program_name(argv0: str) -> str | None:
    """``kubectl NAME`` for a ``kubectl-NAME`` executable, None otherwise (click's usual rule).

    kubectl's own mapping of file names to commands: ``-`` separates words of the command
    (``kubectl-a-b`` is ``kubectl a b``) and ``_`` stands for a ``-`` inside one."""
    base = os.path.basename(argv0)
    if not base.startswith(PLUGIN_PREFIX) or base == PLUGIN_PREFIX:
        return None
    words = base.removeprefix(PLUGIN_PREFIX).split("-")
    return " ".join(["kubectl", *(word.replace("_", "-") for word in words)])


def kubectl_plugin() -> None:
    """The ``kubectl-federation`` console script."""
    name = program_name(sys.argv[0]) if sys.argv else None
    # click derives shell completion's variable from the program name; `completion` prints
    # scripts that set the same one.
    main(prog_name=name, complete_var=complete_var(name) if name else None)
