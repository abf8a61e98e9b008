"""The `federation` command line: one module per command group, assembled in `root`.

`root` holds the click group and the error policy (one line and a hint for our errors, a
traceback only with ``--debug``); `common` the plumbing every group shares (consoles, the one
``--state-dir``, the hub and database options, output formats). The groups: `run` (the
controller), `dev` (a local fleet), `demo`, `plan` and `crds` (policy tooling), `status`,
`events` and `clusters` (reading the state store), `keys` (encryption keys), `db` (schema
migrations), `webhook` (certificates and configuration for the admission webhook).

The console script ``federation`` and ``python -m federation`` both run `main`; the console
script ``kubectl-federation`` (a kubectl plugin) runs it too, through `kubectl_plugin`, which only
names the program ``kubectl federation`` in usage lines.
"""

from federation.cli.kubectl import kubectl_plugin
from federation.cli.root import main

__all__ = ["kubectl_plugin", "main"]
