"""Folders that show the data flow, pinned: the CLI has one module of `federation.cli` per command
group, one ``--state-dir`` option (the flag names the command's directory,
``FEDERATION_STATE_DIR`` the root of all local state, ``FEDERATION_DEV_STATE_DIR`` a deprecated
fallback for ``federation dev``), and ``python -m federation`` runs the same command as the
console script; `federation.validation` exports the checks the webhook and ``plan`` share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from federation import __version__
from federation.cli import main
from federation.cli.common import DEV_STATE_DIR_ENV, STATE_DIR_ENV, state_dir_option
from federation.versions import KUBERNETES, POSTGRES


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, command in sorted(group.commands.items()):
        out.append(((*path, name), command))
        if isinstance(command, click.Group):
            out += _commands(command, (*path, name))
    return out


def test_every_command_group_is_a_module_of_its_own() -> None:
    for name, command in main.commands.items():
        module = command.callback.__module__ if command.callback else ""
        assert module == f"federation.cli.{name}", (name, module)


def test_every_state_dir_is_the_one_option() -> None:
    """Each command that keeps state here declares it with `state_dir_option`: same flag, same
    default rule, a help naming the variable."""
    seen = []
    for path, command in _commands(main):
        for param in command.params:
            if "--state-dir" in getattr(param, "opts", ()):
                seen.append(" ".join(path))
                assert param.callback is not None and param.callback.__qualname__.startswith(
                    "state_dir_option."
                ), path
                assert param.envvar is None, path  # resolved by the option, not by click
                assert f"${STATE_DIR_ENV}" in (getattr(param, "help", "") or ""), path
    assert {"run", "demo", "dev up", "dev down", "dev status", "db upgrade", "status", "events"} <= set(seen)


@click.command()
@state_dir_option(holds="Test state", under="dev", deprecated_env=DEV_STATE_DIR_ENV)
def _show_dev(state_dir: Path) -> None:
    click.echo(str(state_dir))


@click.command()
@state_dir_option(holds="Test state")
def _show_root(state_dir: Path) -> None:
    click.echo(str(state_dir))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (STATE_DIR_ENV, DEV_STATE_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_state_dir_defaults_under_the_data_home(clean_env: Path) -> None:
    assert CliRunner().invoke(_show_dev).stdout.strip() == str(clean_env / "xdg" / "federation" / "dev")
    assert CliRunner().invoke(_show_root).stdout.strip() == str(clean_env / "xdg" / "federation")


def test_the_variable_is_the_root_and_the_flag_the_command_s_own_directory(clean_env: Path) -> None:
    env = {STATE_DIR_ENV: str(clean_env / "root")}
    assert CliRunner().invoke(_show_dev, env=env).stdout.strip() == str(clean_env / "root" / "dev")
    assert CliRunner().invoke(_show_root, env=env).stdout.strip() == str(clean_env / "root")
    flag = ["--state-dir", str(clean_env / "mine")]
    assert CliRunner().invoke(_show_dev, flag, env=env).stdout.strip() == str(clean_env / "mine")
    assert CliRunner().invoke(_show_root, flag, env=env).stdout.strip() == str(clean_env / "mine")


def test_the_deprecated_dev_variable_still_works_and_says_so(clean_env: Path) -> None:
    env = {STATE_DIR_ENV: str(clean_env / "root"), DEV_STATE_DIR_ENV: str(clean_env / "old")}
    result = CliRunner().invoke(_show_dev, env=env)
    assert result.exit_code == 0
    assert result.stdout.strip() == str(clean_env / "old")
    assert f"{DEV_STATE_DIR_ENV} is deprecated" in result.stderr
    assert f"${STATE_DIR_ENV}/dev" in result.stderr
    # The flag still wins, silently.
    flagged = CliRunner().invoke(_show_dev, ["--state-dir", str(clean_env / "mine")], env=env)
    assert flagged.stdout.strip() == str(clean_env / "mine") and not flagged.stderr


def test_dev_status_reads_the_deprecated_variable(clean_env: Path) -> None:
    old = clean_env / "old"
    result = CliRunner().invoke(main, ["dev", "status"], env={DEV_STATE_DIR_ENV: str(old)})
    assert result.exit_code == 1
    assert f"no local fleet is running on {old}" in result.stderr
    assert f"{DEV_STATE_DIR_ENV} is deprecated" in result.stderr


def test_python_dash_m_federation_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "federation", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"federation, version {__version__}\ntested with Kubernetes {KUBERNETES} and PostgreSQL {POSTGRES}"
    )
    helped = subprocess.run(
        [sys.executable, "-m", "federation", "dev", "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: federation dev ")


def test_validation_package() -> None:
    import federation.validation

    assert sorted(federation.validation.__all__) == sorted(
        [
            "PATCH_CHECK_MAX_WORK",
            "Findings",
            "Meter",
            "PatchFailure",
            "credentials_namespace_problems",
            "failing_patches",
            "identity_problems",
            "local_problems",
            "override_findings",
            "override_problems",
            "parse",
            "patch_check_cost",
            "priority_conflicts",
            "secret_problems",
        ]
    )
    for name in federation.validation.__all__:
        assert hasattr(federation.validation, name), name


def test_the_webhook_takes_its_checks_from_validation() -> None:
    """One implementation: the names the webhook calls are validation's own objects."""
    import federation.server.webhook as webhook
    import federation.validation as validation

    for name in ("parse", "local_problems", "override_findings", "priority_conflicts", "secret_problems"):
        assert getattr(webhook, name) is getattr(validation, name), name
