"""``python -m federation``: the `federation` command, for when the console script is not on
PATH (a virtualenv that is not activated, or a container image's interpreter)."""

from federation.cli import main

main(prog_name="federation")
