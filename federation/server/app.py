"""The controller's HTTP server: /metrics, /healthz and /readyz on one port.

/healthz answers whether the process is alive; /readyz whether it can do its job right now: the
informers it depends on have synced and the database answers. A standby replica (not the
leader) is alive and ready to take over, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

#: Each check returns (ok, detail).
ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080


def build_app(*, checks: dict[str, ReadyCheck]) -> web.Application:
    app = web.Application()

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
    return app


async def serve(app: web.Application, config: ServerConfig) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    log.info("serving /metrics, /healthz, /readyz on %s:%d", config.host, config.port)
    return runner
