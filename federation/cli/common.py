"""Plumbing shared by the command groups: consoles, the one ``--state-dir`` option, the hub
and database options (output formats are `output`'s).

Every command that keeps something on this machine takes the same ``--state-dir``
(`state_dir_option`): the flag names the directory the command's own state lives in, and
``FEDERATION_STATE_DIR`` the root of all of federation's local state, under which each command
has its place (the embedded database in ``ROOT/db``, the dev fleet in ``ROOT/dev``, the demo's
in ``ROOT/demo``), so one variable moves everything. ``FEDERATION_DEV_STATE_DIR`` (the dev
fleet's directory itself) still works for ``federation dev``, with a warning: it is deprecated.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click
from rich.console import Console

from federation.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def progress(message: str) -> None:
    err_console.print(f"[dim]•[/] {message}", soft_wrap=True)


def default_kubeconfig(given: Path | None) -> Path:
    """The hub kubeconfig: the flag's, else $KUBECONFIG's first file, else ~/.kube/config."""
    if given is not None:
        return given
    env = os.environ.get("KUBECONFIG")
    path = Path(env.split(os.pathsep)[0]) if env else Path.home() / ".kube" / "config"
    if not path.is_file():
        raise ConfigError(
            f"no hub kubeconfig: {path} does not exist",
            hint="pass --hub-kubeconfig (or set KUBECONFIG) to the hub cluster's kubeconfig",
        )
    return path


STATE_DIR_ENV = "FEDERATION_STATE_DIR"
"""The root of federation's local state (default ``~/.local/share/federation``)."""
DEV_STATE_DIR_ENV = "FEDERATION_DEV_STATE_DIR"
"""Deprecated: the dev fleet's directory itself (now ``$FEDERATION_STATE_DIR/dev``)."""


def state_root() -> Path:
    """``$FEDERATION_STATE_DIR``, else ``$XDG_DATA_HOME/federation`` (~/.local/share/federation)."""
    from federation.localdb import default_state_dir

    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else default_state_dir()


def state_dir_option(
    *, holds: str, under: str | None = None, deprecated_env: str | None = None
) -> Callable[[F], F]:
    """The ``--state-dir`` option of every command that keeps state here: ``holds`` says what
    the directory holds, ``under`` its place under the state root when the flag is not given
    (None: the root itself). The command receives the resolved directory, never None."""
    where = f"/{under}" if under else ""
    deprecated = (
        f" {deprecated_env}, deprecated, still names this directory itself (it wins over {STATE_DIR_ENV})."
        if deprecated_env
        else ""
    )

    def resolve(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
        if value is not None:
            return value
        if deprecated_env and os.environ.get(deprecated_env):
            err_console.print(
                f"[yellow]warning:[/] {deprecated_env} is deprecated: set {STATE_DIR_ENV} (this "
                f"command then uses ${STATE_DIR_ENV}{where}) or pass --state-dir",
                soft_wrap=True,
            )
            return Path(os.environ[deprecated_env])
        root = state_root()
        return root / under if under else root

    return click.option(
        "--state-dir",
        "state_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        callback=resolve,
        help=f"{holds} [default: ${STATE_DIR_ENV}{where}, else ~/.local/share/federation{where}]."
        + deprecated,
    )


def hub_options(f: F) -> F:
    """``--hub-kubeconfig`` and ``--hub-context``: the hub cluster, for every command that talks
    to it."""
    f = click.option(
        "--hub-context", envvar="FEDERATION_HUB_CONTEXT", help="Context of the hub in that kubeconfig."
    )(f)
    return click.option(
        "--hub-kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FEDERATION_HUB_KUBECONFIG",
        help="Kubeconfig of the hub cluster [default: $KUBECONFIG or ~/.kube/config].",
    )(f)


def database_options(f: F) -> F:
    """``--database-url``, and the ``--state-dir`` of the embedded database used without one."""
    f = state_dir_option(
        holds="Where the embedded database keeps its data (in STATE_DIR/db) when no URL is given",
    )(f)
    return click.option(
        "--database-url",
        "database_url",
        default=None,
        envvar="FEDERATION_DATABASE_URL",
        help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or postgresql+asyncpg://…).",
    )(f)


def with_database(database_url: str | None, state_dir: Path, action: Callable[[str], Awaitable[T]]) -> T:
    """Run `action(url)` on the configured database (or the embedded one, for this command only)."""
    from federation.localdb import database

    with database(database_url, state_dir=state_dir, progress=progress) as url:
        return anyio.run(action, url)


async def with_database_async(
    database_url: str | None, state_dir: Path, action: Callable[[str], Awaitable[T]]
) -> T:
    """`with_database` inside an event loop the caller runs (to handle its Ctrl-C itself)."""
    from federation.localdb import database

    with database(database_url, state_dir=state_dir, progress=progress) as url:
        return await action(url)


def parse_since(value: str | None) -> datetime | None:
    """`30s`, `10m`, `2h`, `7d` → that long ago; None → no bound."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        amount, unit = float(value[:-1]), value[-1]
        return datetime.now(UTC) - timedelta(seconds=amount * units[unit])
    except (ValueError, KeyError):
        raise ConfigError(f"--since {value!r}: expected a duration such as 30s, 10m, 2h or 7d") from None
