"""The controller's HTTP server: /metrics, /healthz, /readyz, the dashboard API, the status page
and /validate (the admission webhook, when one is given), on one port.

/healthz answers whether the process is alive; /readyz whether it can do its job right now: the
informers it depends on have synced and the database answers. A standby replica (not the
leader) is alive and ready to take over, and says so. With a `Store`, the read-only API
(`/api/v1/...`, see `federation.server.api`) and the status page (`/`) are mounted too; who may
read them is `federation.server.access`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from federation.errors import ConfigError
from federation.server import access
from federation.server.access import AccessPolicy, middlewares
from federation.server.api import add_api_routes
from federation.server.page import add_page_routes
from federation.server.tlsreload import CertReloader
from federation.server.webhook import ValidatingWebhook
from federation.store import Store

log = logging.getLogger(__name__)

#: Each check returns (ok, detail).
ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    #: When set, /api/* (and /metrics with `protect_metrics`) need `Authorization: Bearer <token>`.
    api_token: str | None = None
    protect_metrics: bool = False
    #: HTTPS with this key pair (the whole port; an apiserver calls admission webhooks over HTTPS
    #: only); with `client_ca`, client certificates of that CA admit API calls.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None

    def __post_init__(self) -> None:
        if self.api_token is not None and not self.api_token.strip():
            self.api_token = None  # FEDERATION_API_TOKEN="" means no token, not an empty one
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError(
                "--client-ca needs TLS: client certificates exist only on HTTPS",
                hint="add --tls-cert and --tls-key",
            )
        # Checked here, before anything starts, rather than when the server binds its port.
        for flag, path in (
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
            ("--client-ca", self.client_ca),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {path}: no such file")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def access(self) -> AccessPolicy:
        return AccessPolicy(
            token=self.api_token,
            client_certificates=self.client_ca is not None,
            protect_metrics=self.protect_metrics,
        )


def server_ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS context of the port (None: plain HTTP); a bad pair is one clear ConfigError."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if config.tls_cert is None or config.tls_key is None:
        return None
    try:
        return access.server_ssl_context(cert=config.tls_cert, key=config.tls_key, client_ca=config.client_ca)
    except ConfigError as err:
        err.hint = err.hint or "`federation webhook certs --dir DIR --dns NAME` writes a working pair"
        raise


def build_app(
    *,
    checks: dict[str, ReadyCheck],
    store: Store | None = None,
    config: ServerConfig | None = None,
    webhook: ValidatingWebhook | None = None,
) -> web.Application:
    """The server's routes; without a `store` only /metrics, /healthz and /readyz (a process that
    has no database yet still answers its probes), plus /validate with a `webhook`."""
    policy = (config or ServerConfig()).access()
    # An AdmissionReview of an UPDATE carries the object twice: allow more than aiohttp's 1 MiB.
    app = web.Application(middlewares=middlewares(policy), client_max_size=8 * 1024 * 1024)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        lines, ok = [], True
        for name, check in checks.items():
            try:
                passed, detail = await check()
            except Exception as exc:  # a check that crashes is a failed check, not a 500
                passed, detail = False, f"{type(exc).__name__}: {exc}"
            ok &= passed
            lines.append(f"[{'+' if passed else '-'}]{name} {'ok' if passed else 'failed'}: {detail}")
        body = "\n".join(lines) + ("\nreadyz check passed\n" if ok else "\nreadyz check failed\n")
        verbose = "verbose" in request.query
        return web.Response(status=200 if ok else 503, text=body if (verbose or not ok) else "ok\n")

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if store is not None:
        add_api_routes(app, store, bearer=policy.token is not None, mutual_tls=policy.client_certificates)
        add_page_routes(app)
    if webhook is not None:
        app.router.add_post("/validate", webhook.handle)
    return app


async def serve(app: web.Application, config: ServerConfig) -> web.AppRunner:
    ssl_context = server_ssl_context(config)
    if ssl_context is not None and config.tls_cert is not None and config.tls_key is not None:
        # Renewed pairs (cert-manager, a rotated Secret) are served without a restart.
        reloader = CertReloader(ssl_context, cert=config.tls_cert, key=config.tls_key)
        app.cleanup_ctx.append(reloader.cleanup_ctx)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
    await site.start()
    routes = sorted({r.resource.canonical for r in app.router.routes() if r.resource is not None})
    auth = ", ".join(
        part
        for part, on in (
            ("bearer token", config.api_token is not None),
            ("client certificates", config.client_ca is not None),
        )
        if on
    )
    log.info(
        "serving %s on %s://%s:%d (API access: %s)",
        ", ".join(routes),
        "https" if ssl_context else "http",
        config.host,
        config.port,
        auth or "open",
    )
    if "/validate" in routes and ssl_context is None:
        log.info("/validate is served over plain HTTP: apiservers call webhooks over HTTPS only (--tls-cert)")
    return runner
