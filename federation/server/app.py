"""The controller's HTTP server: /metrics, /healthz and /readyz on one port (and /validate,
the admission webhook, when one is given).

/healthz answers whether the process is alive; /readyz whether it can do its job right now: the
informers it depends on have synced and the database answers. A standby replica (not the
leader) is alive and ready to take over, and says so.
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
from federation.server.webhook import ValidatingWebhook

log = logging.getLogger(__name__)

#: Each check returns (ok, detail).
ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    tls_cert: Path | None = None
    """PEM serving certificate (chain); with ``tls_key``, the whole port speaks HTTPS only. An
    apiserver calls admission webhooks over HTTPS only, so the webhook needs this."""
    tls_key: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def server_ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS context of the port (None: plain HTTP); a bad pair is one clear ConfigError."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if config.tls_cert is None or config.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"--tls-cert {config.tls_cert} / --tls-key {config.tls_key}: cannot load the pair: {exc}",
            hint="`federation webhook certs --dir DIR --dns NAME` writes a working pair",
        ) from None
    return ctx


def build_app(*, checks: dict[str, ReadyCheck], webhook: ValidatingWebhook | None = None) -> web.Application:
    # An AdmissionReview of an UPDATE carries the object twice: allow more than aiohttp's 1 MiB.
    app = web.Application(client_max_size=8 * 1024 * 1024)

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
    if webhook is not None:
        app.router.add_post("/validate", webhook.handle)
    return app


async def serve(app: web.Application, config: ServerConfig) -> web.AppRunner:
    ssl_context = server_ssl_context(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
    await site.start()
    routes = sorted({r.resource.canonical for r in app.router.routes() if r.resource is not None})
    log.info(
        "serving %s on %s://%s:%d",
        ", ".join(routes),
        "https" if ssl_context else "http",
        config.host,
        config.port,
    )
    if "/validate" in routes and ssl_context is None:
        log.info("/validate is served over plain HTTP: apiservers call webhooks over HTTPS only (--tls-cert)")
    return runner
