"""Turn a kubeconfig (a file + context, or the contents of one held in a Secret) into what our
HTTP client needs: the server URL, a TLS context, and an Authorization header source.

kubernetes-asyncio's loader does the parsing (embedded certificate data, exec plugins, tokens,
insecure flags); we keep only its `Configuration` and build our own aiohttp session from it, so
requests and watches stay raw JSON on hot paths.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import config as kconfig
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config.config_exception import ConfigException

from federation.errors import ConfigError

#: Returns the current value of the Authorization header, or None (client certificates).
AuthHeader = Callable[[], Awaitable[str | None]]


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
    try:
        if kubeconfig_data is not None:
            data = yaml.safe_load(kubeconfig_data) if isinstance(kubeconfig_data, str) else kubeconfig_data
            if not isinstance(data, dict):
                raise ConfigError(f"{where}: not a kubeconfig (expected a YAML mapping)")
            await kconfig.load_kube_config_from_dict(data, context=context, client_configuration=cfg)
        else:
            if kubeconfig is None:
                raise ConfigError("no kubeconfig given (a file path or the data of one is needed)")
            if not kubeconfig.is_file():  # noqa: ASYNC240 - once, at connect time
                raise ConfigError(f"kubeconfig {kubeconfig}: file not found")
            await kconfig.load_kube_config(
                config_file=str(kubeconfig), context=context, client_configuration=cfg, persist_config=False
            )
    except ConfigError:
        raise
    except (ConfigException, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        ctx = f" context {context!r}" if context else ""
        raise ConfigError(f"{where}{ctx}: {exc}") from exc

    return ConnectionConfig(
        server=str(cfg.host).rstrip("/"),
        ssl_context=_ssl_context(cfg, where),
        auth_header=_auth_header(cfg),
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


def _auth_header(cfg: Any) -> AuthHeader:
    async def header() -> str | None:
        # Calls the refresh hook of exec plugins / expiring tokens, when one is set.
        value = await cfg.get_api_key_with_prefix("BearerToken")
        if value and not str(value).lower().startswith("bearer "):
            value = f"Bearer {value}"
        return str(value) if value else None

    return header
