"""An earlier revision's module, for a revision that extends (and on downgrade restores) what
that one defined: views, enum values, trigger functions. Revisions are files alembic loads by
path, not importable modules, so they are loaded the same way here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VERSIONS = Path(__file__).with_name("versions")


def revision_module(file: str) -> ModuleType:
    """The revision in `versions/FILE` (e.g. ``0009_change_log.py``), loaded afresh."""
    path = VERSIONS / file
    spec = importlib.util.spec_from_file_location(f"federation_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
