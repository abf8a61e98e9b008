"""Turn a kubeconfig (a file + context, or the contents of one held in a Secret) into what our
HTTP client needs: the server URL, a TLS context, and an Authorization header source.

kubernetes-asyncio's loader does the parsing (embedded certificate data, exec plugins, tokens,
insecure flags); we keep only its `Configuration` and build our own aiohttp session from it, so
requests and watches stay raw JSON on hot paths.

A user with a `tokenFile` (how a pod reaches its own cluster: the projected ServiceAccount token,
which the kubelet rotates in place) has the file re-read every minute, as client-go does; the
loader alone would keep the first token until it expires.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import config as kconfig
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config.config_exception import ConfigException

from federation.errors import ConfigError

log = logging.getLogger(__name__)

#: Returns the current value of the Authorization header, or None (client certificates).
AuthHeader = Callable[[], Awaitable[str | None]]

#: Seconds a token read from a `tokenFile` is used before the file is read again (client-go's
#: cached file token source uses one minute too; the kubelet refreshes a projected token well
#: before it expires).
TOKEN_FILE_REFRESH = 60.0


class FileToken:
    """A bearer token kept in a file, re-read at most every `refresh` seconds.

    If a re-read fails (the file is being swapped), the last token is kept and the read is
    retried on the next request; only a token that was never read is an error.
    """

    def __init__(
        self, path: Path, *, refresh: float = TOKEN_FILE_REFRESH, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.refresh = refresh
        self.clock = clock
        self._value: str | None = None
        self._read_at = 0.0

    def token(self) -> str:
        now = self.clock()
        if self._value is not None and now - self._read_at < self.refresh:
            return self._value
        try:
            value = self.path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            if self._value is None:
                raise ConfigError(f"tokenFile {self.path}: cannot read it: {exc}") from exc
            log.warning("tokenFile %s: cannot re-read it (%s); keeping the previous token", self.path, exc)
            return self._value
        if not value:
            if self._value is None:
                raise ConfigError(f"tokenFile {self.path} is empty")
            return self._value
        self._value, self._read_at = value, now
        return value


def token_file_of(
    kubeconfig: Mapping[str, Any], *, context: str | None, base_dir: Path | None
) -> Path | None:
    """The `tokenFile` of the user of `context` (default: the current context), if it uses one.

    A `token` given beside it wins, as in kubectl. A relative path is relative to the
    kubeconfig file's directory (`base_dir`).
    """
    name = context or kubeconfig.get("current-context")
    ctx = next(
        (c.get("context") or {} for c in kubeconfig.get("contexts") or [] if c.get("name") == name), None
    )
    if not isinstance(ctx, Mapping):
        return None
    user = next(
        (u.get("user") or {} for u in kubeconfig.get("users") or [] if u.get("name") == ctx.get("user")), {}
    )
    if not isinstance(user, Mapping) or user.get("token") or not user.get("tokenFile"):
        return None
    path = Path(str(user["tokenFile"])).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything needed to open connections to one cluster's apiserver."""

    server: str
    ssl_context: ssl.SSLContext | bool
    auth_header: AuthHeader
    server_hostname: str | None = None
    proxy: str | None = None


async def load_config(
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    kubeconfig_data: str | dict[str, Any] | None = None,
    source: str | None = None,
) -> ConnectionConfig:
    """Load one context of a kubeconfig from a file or from its contents.

    `source` names where the data came from (e.g. ``Secret fleet/member-1-kubeconfig key
    value``) so that a malformed kubeconfig gets an error a person can act on.
    """
    where = source or (str(kubeconfig) if kubeconfig else "kubeconfig data")
    cfg = type.__call__(Configuration)
    token_file: Path | None = None
    try:
        if kubeconfig_data is not None:
            data = yaml.safe_load(kubeconfig_data) if isinstance(kubeconfig_data, str) else kubeconfig_data
            if not isinstance(data, dict):
                raise ConfigError(f"{where}: not a kubeconfig (expected a YAML mapping)")
            await kconfig.load_kube_config_from_dict(data, context=context, client_configuration=cfg)
            token_file = token_file_of(data, context=context, base_dir=None)
        else:
            if kubeconfig is None:
                raise ConfigError("no kubeconfig given (a file path or the data of one is needed)")
            if not kubeconfig.is_file():  # noqa: ASYNC240 - once, at connect time
                raise ConfigError(f"kubeconfig {kubeconfig}: file not found")
            await kconfig.load_kube_config(
                config_file=str(kubeconfig), context=context, client_configuration=cfg, persist_config=False
            )
            data = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))  # noqa: ASYNC240 - once
            if isinstance(data, dict):
                token_file = token_file_of(data, context=context, base_dir=kubeconfig.parent)
    except ConfigError:
        raise
    except (ConfigException, yaml.YAMLError, KeyError, TypeError, ValueError, OSError) as exc:
        ctx = f" context {context!r}" if context else ""
        raise ConfigError(f"{where}{ctx}: {exc}") from exc

    auth_header = _auth_header(cfg)
    if token_file is not None:
        file_token = FileToken(token_file)
        file_token.token()  # an unreadable file is an error now, not at the first request
        auth_header = _file_token_header(file_token)
    return ConnectionConfig(
        server=str(cfg.host).rstrip("/"),
        ssl_context=_ssl_context(cfg, where),
        auth_header=auth_header,
        server_hostname=getattr(cfg, "tls_server_name", None) or None,
        proxy=cfg.proxy or None,
    )


def _ssl_context(cfg: Any, where: str) -> ssl.SSLContext | bool:
    if not str(cfg.host).startswith("https"):
        return False
    try:
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: cannot load its TLS material: {exc}") from exc
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _file_token_header(source: FileToken) -> AuthHeader:
    async def header() -> str | None:
        return f"Bearer {source.token()}"

    return header


def _auth_header(cfg: Any) -> AuthHeader:
    async def header() -> str | None:
        # Calls the refresh hook of exec plugins / expiring tokens, when one is set.
        value = await cfg.get_api_key_with_prefix("BearerToken")
        if value and not str(value).lower().startswith("bearer "):
            value = f"Bearer {value}"
        return str(value) if value else None

    return header
