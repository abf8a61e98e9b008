"""A kubeconfig user with a `tokenFile` (how deploy/ reaches the hub from inside its pod): the
token is read from the file and re-read as the kubelet rotates it, in fake time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.errors import ConfigError
from federation.kube import load_config
from federation.kube.config import TOKEN_FILE_REFRESH, FileToken, token_file_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kubeconfig(user: dict[str, Any], *, context: str = "hub") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hub", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "sa", "user": user}, {"name": "admin", "user": {"token": "admin-token"}}],
        "contexts": [
            {"name": "hub", "context": {"cluster": "hub", "user": "sa"}},
            {"name": "admin", "context": {"cluster": "hub", "user": "admin"}},
        ],
        "current-context": context,
    }


def test_file_token_is_reread_after_the_refresh_period(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    clock = FakeClock()
    source = FileToken(path, clock=clock)
    assert source.token() == "first"
    path.write_text("second")
    clock.now += TOKEN_FILE_REFRESH - 1
    assert source.token() == "first", "cached within the refresh period"
    clock.now += 1
    assert source.token() == "second"


def test_file_token_keeps_the_last_token_while_the_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    clock = FakeClock()
    source = FileToken(path, clock=clock)
    assert source.token() == "first"
    path.unlink()
    clock.now += TOKEN_FILE_REFRESH
    assert source.token() == "first"
    path.write_text("")
    clock.now += TOKEN_FILE_REFRESH
    assert source.token() == "first", "an empty file (mid-rotation) keeps the last token"
    path.write_text("third")
    assert source.token() == "third", "a failed re-read is retried on the next request"


def test_file_token_never_read_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tokenFile .*missing"):
        FileToken(tmp_path / "missing").token()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        FileToken(tmp_path / "empty").token()


def test_token_file_of_follows_the_context_and_kubectl_precedence(tmp_path: Path) -> None:
    config = kubeconfig({"tokenFile": "sa/token"})
    assert token_file_of(config, context=None, base_dir=tmp_path) == tmp_path / "sa" / "token"
    assert token_file_of(config, context="admin", base_dir=tmp_path) is None
    assert token_file_of(config, context="nope", base_dir=tmp_path) is None
    absolute = kubeconfig({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"})
    assert token_file_of(absolute, context=None, base_dir=tmp_path) == Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
    both = kubeconfig({"token": "inline", "tokenFile": "sa/token"})
    assert token_file_of(both, context=None, base_dir=tmp_path) is None, "token wins, as in kubectl"


async def test_load_config_sends_the_rotated_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("one")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"tokenFile": "token"})))
    cfg = await load_config(kubeconfig=path)
    assert await cfg.auth_header() == "Bearer one"
    # The same kubeconfig as data (as from a Secret): an absolute tokenFile works the same.
    data = kubeconfig({"tokenFile": str(tmp_path / "token")})
    cfg_data = await load_config(kubeconfig_data=yaml.safe_dump(data))
    assert await cfg_data.auth_header() == "Bearer one"
    # Inline tokens are untouched by this.
    admin = await load_config(kubeconfig=path, context="admin")
    assert await admin.auth_header() == "Bearer admin-token"


async def test_load_config_with_an_unreadable_token_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"tokenFile": "absent"})))
    with pytest.raises(ConfigError, match="absent"):
        await load_config(kubeconfig=path)
