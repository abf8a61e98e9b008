"""The controller's HTTP server: /metrics, /healthz, /readyz, the dashboard API, the status page
and /validate (the admission webhook, when one is given), on one port.

/healthz answers whether the process is alive; /readyz whether it can do its job right now: the
informers it depends on have synced and the database answers. A standby replica (not the
leader) is alive and ready to take over, and says so. With a `Store`, the read-only API
(`/api/v1/...`, see `federation.server.api`) and the status page (`/`) are mounted too; who may
read them is `federation.server.access`.

What anyone who reaches the port can make it do is bounded (deploy/README.md, "Threat model"):

- **Secure by default.** It listens on 127.0.0.1 unless told otherwise; serving the API or the
  status page on any other address without ``--api-token`` or ``--client-ca`` is refused at
  start (`ServerConfig.check_exposure`) unless ``--insecure-open-api`` says it is meant. The
  probes and /metrics may stay open, as is usual.
- **Slow or idle connections are closed** (`connections.Timeouts`): no complete header within
  ``--header-timeout``, idle between requests for ``--idle-timeout``, a body slower than
  ``--body-timeout``, a TLS handshake slower than ``--tls-handshake-timeout``.
- **Malformed input is a 4xx, never a 500**, and each request refused or connection closed is
  one warning line, no traceback, at most a few a second (`limits.RejectionLog`: a flood
  shows as "N similar lines suppressed").
- **Degraded dependencies answer fast.** /readyz runs its checks at once, each bounded by
  `READY_CHECK_TIMEOUT`; an API call gives up on the store after `API_STORE_DEADLINE` and
  answers 503 with the reason (`access`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from federation.errors import ConfigError
from federation.metrics import HTTP_REJECTED
from federation.server import access
from federation.server.access import AccessPolicy, is_api, load_issuers, middlewares
from federation.server.api import add_api_routes
from federation.server.connections import Timeouts, WatchedSite, protocol_logger, safe, watchdog_of
from federation.server.limits import RejectionLog
from federation.server.page import add_page_routes
from federation.server.tlsreload import CertReloader
from federation.server.webhook import ValidatingWebhook
from federation.store import Store

log = logging.getLogger(__name__)

#: Each check returns (ok, detail).
ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]

READY_CHECK_TIMEOUT = 1.5
"""Seconds each /readyz check may take (they run at once): a probe answers within 2 s even
when a dependency hangs rather than refuses."""

REJECTIONS = web.AppKey("federation.rejections", RejectionLog)
"""The app's rejected-request log, shared with its connections' watchdog and protocol logger."""

_PLAIN_BODY_LIMIT = 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the port on this machine (``""`` is every address;
    a name other than localhost is taken as reachable from elsewhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: When set, /api/* (and /metrics with `protect_metrics`) need `Authorization: Bearer <token>`.
    api_token: str | None = None
    protect_metrics: bool = False
    #: HTTPS with this key pair (the whole port; an apiserver calls admission webhooks over HTTPS
    #: only); with `client_ca`, client certificates of that CA admit API calls.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    #: /validate then answers only client certificates issued by this CA (the apiserver's).
    webhook_client_ca: Path | None = None
    #: Serve the API and the status page with no credentials on a non-loopback address.
    insecure_open_api: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        if self.api_token == "":
            self.api_token = None  # unset (an empty FEDERATION_API_TOKEN is no token given)
        elif self.api_token is not None:
            if not self.api_token.strip():
                raise ConfigError(
                    "--api-token is only whitespace: that is not a token, and serving the API with it "
                    "would be serving it open",
                    hint="give a real token (e.g. `openssl rand -hex 32`), or none",
                )
            if not (self.api_token.isascii() and self.api_token.isprintable()) or " " in self.api_token:
                raise ConfigError(
                    "--api-token must be printable ASCII without spaces: it travels in an HTTP header"
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        for flag, path in (("--client-ca", self.client_ca), ("--webhook-client-ca", self.webhook_client_ca)):
            if path is not None and self.tls_cert is None:
                raise ConfigError(
                    f"{flag} needs TLS: client certificates exist only on HTTPS",
                    hint="add --tls-cert and --tls-key",
                )
        # Checked here, before anything starts, rather than when the server binds its port.
        for flag, path in (
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
            ("--client-ca", self.client_ca),
            ("--webhook-client-ca", self.webhook_client_ca),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {path}: no such file")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def listen(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def check_exposure(self, *, api: bool = True) -> None:
        """Refuse to serve the API or the status page open beyond this machine by accident."""
        if not api or self.loopback or self.insecure_open_api:
            return
        if self.api_token is not None or self.client_ca is not None:
            return
        raise ConfigError(
            f"--listen {self.listen} would serve the dashboard API and the status page to anyone who "
            "reaches that address, with no credentials: give --api-token (or FEDERATION_API_TOKEN) or "
            "--client-ca, or --insecure-open-api to serve them open on purpose",
            hint="the default --listen 127.0.0.1:8080 keeps them on this machine; /healthz, /readyz "
            "and /metrics may stay open either way",
        )

    def access(self) -> AccessPolicy:
        client = load_issuers(self.client_ca, flag="--client-ca") if self.client_ca is not None else ()
        webhook = (
            load_issuers(self.webhook_client_ca, flag="--webhook-client-ca")
            if self.webhook_client_ca is not None
            else ()
        )
        return AccessPolicy(
            token=self.api_token,
            client_certificates=self.client_ca is not None,
            protect_metrics=self.protect_metrics,
            client_issuers=client,
            webhook_issuers=webhook,
        )


def server_ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS context of the port (None: plain HTTP); a bad pair is one clear ConfigError."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if config.tls_cert is None or config.tls_key is None:
        return None
    try:
        return access.server_ssl_context(
            cert=config.tls_cert,
            key=config.tls_key,
            client_ca=config.client_ca,
            webhook_client_ca=config.webhook_client_ca,
        )
    except ConfigError as err:
        err.hint = err.hint or "`federation webhook certs --dir DIR --dns NAME` writes a working pair"
        raise


def _reason(response: web.StreamResponse | web.HTTPException) -> str:
    """The first line a refusal gives, for its log line."""
    if not isinstance(response, web.Response) or response.body is None:
        return response.reason or ""
    body = response.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else ""
    if response.content_type == "application/json":
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            text = str(orjson.loads(text).get("error") or "")
    return (text.strip().splitlines() or [response.reason or ""])[0][:200]


def _guard(rejections: RejectionLog) -> Middleware:
    """Outermost: tells the connection's watchdog that a complete request arrived, and writes
    one (rate-limited) warning line per refused request."""

    def note(request: web.Request, status: int, reason: str) -> None:
        # Refusals: every 4xx, and an API call the store could not answer (503). Not a 500 (a
        # bug, logged with its traceback where it happened), nor /readyz saying "not ready".
        if not (400 <= status < 500 or (status == 503 and is_api(request.path))):
            return
        HTTP_REJECTED.labels(str(status)).inc()
        rejections.warning(
            "rejected %s %s from %s: %d %s",
            request.method,
            safe(request.path),
            request.remote or "an unknown peer",
            status,
            safe(reason, 200),
        )

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        dog = watchdog_of(request)
        if dog is not None:
            dog.request_started()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            note(request, exc.status, _reason(exc))
            raise
        finally:
            if dog is not None:
                dog.request_finished()
        note(request, response.status, _reason(response))
        return response

    return guard


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
    rejections = RejectionLog(logging.getLogger("federation.server.http"))
    # An AdmissionReview of an UPDATE carries the object twice: the webhook says how much.
    limit = webhook.settings.max_review_bytes if webhook is not None else _PLAIN_BODY_LIMIT
    app = web.Application(middlewares=[_guard(rejections), *middlewares(policy)], client_max_size=limit)
    app[REJECTIONS] = rejections

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        results: dict[str, tuple[bool, str]] = {}

        async def run(name: str, check: ReadyCheck) -> None:
            try:
                with anyio.fail_after(READY_CHECK_TIMEOUT):
                    results[name] = await check()
            except TimeoutError:
                results[name] = (False, f"no answer within {READY_CHECK_TIMEOUT:g}s")
            except Exception as exc:  # a check that crashes is a failed check, not a 500
                results[name] = (False, f"{type(exc).__name__}: {exc}")

        async with anyio.create_task_group() as tg:
            for name, check in checks.items():
                tg.start_soon(run, name, check)
        lines, ok = [], True
        for name in checks:
            passed, detail = results[name]
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


def _serves_api(app: web.Application) -> bool:
    return any(
        r.resource is not None and (is_api(r.resource.canonical) or r.resource.canonical == "/")
        for r in app.router.routes()
    )


async def serve(app: web.Application, config: ServerConfig) -> web.AppRunner:
    config.check_exposure(api=_serves_api(app))
    ssl_context = server_ssl_context(config)
    if ssl_context is not None and config.tls_cert is not None and config.tls_key is not None:
        # Renewed pairs (cert-manager, a rotated Secret) are served without a restart.
        reloader = CertReloader(ssl_context, cert=config.tls_cert, key=config.tls_key)
        app.cleanup_ctx.append(reloader.cleanup_ctx)
    rejections = app.get(REJECTIONS) or RejectionLog(logging.getLogger("federation.server.http"))
    timeouts = config.timeouts
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=timeouts.idle,
        lingering_time=timeouts.body,
        logger=protocol_logger(rejections),
    )
    await runner.setup()
    site = WatchedSite(
        runner, config.host, config.port, ssl_context=ssl_context, timeouts=timeouts, rejections=rejections
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--listen {config.listen} is in use by another process",
                hint="stop what holds that port, or choose another with --listen HOST:PORT",
            ) from exc
        raise ConfigError(f"--listen {config.listen}: cannot listen there: {exc.strerror or exc}") from exc
    _log_what_is_open(app, config, tls=ssl_context is not None)
    return runner


def _log_what_is_open(app: web.Application, config: ServerConfig, *, tls: bool) -> None:
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    where = "this machine only" if config.loopback else "anyone who reaches it"
    log.info("serving on %s://%s (reachable by %s)", "https" if tls else "http", config.listen, where)
    credentials = " or ".join(
        part
        for part, on in (
            ("a bearer token", config.api_token is not None),
            ("a client certificate of --client-ca", config.client_ca is not None),
        )
        if on
    )
    log.info("  /healthz, /readyz: open")
    log.info("  /metrics: %s", f"needs {credentials}" if credentials and config.protect_metrics else "open")
    if _serves_api(app):
        if credentials:
            log.info("  /api/v1 and the status page: need %s", credentials)
        elif config.loopback:
            log.info("  /api/v1 and the status page: open, on loopback only")
        else:
            log.warning("  /api/v1 and the status page: OPEN to anyone (--insecure-open-api)")
    if "/validate" in routes:
        if not tls:
            log.warning(
                "  /validate: refused (403) on this plain-HTTP port: apiservers call webhooks over HTTPS "
                "only (--tls-cert and --tls-key serve it; --no-webhook drops it)"
            )
        elif config.webhook_client_ca is not None:
            log.info("  /validate: HTTPS, client certificates issued by --webhook-client-ca only")
        else:
            log.info("  /validate: HTTPS, any client (--webhook-client-ca admits only the apiserver's)")
    t = config.timeouts
    log.info(
        "  connections closed after: %gs without a complete header, %gs idle, %gs for a body, "
        "%gs for a TLS handshake",
        t.header,
        t.idle,
        t.body,
        t.tls_handshake,
    )
