"""The status page at `/`: a static shell (HTML, JS, CSS) that draws the fleet from the API.

The files live in `federation/server/static/` (package data) and are read once when the app is
built. The shell carries no fleet data, so it is served without credentials even when the API
needs a token: the page asks for the token (or takes ``?token=``), keeps it in
``sessionStorage`` and sends it as a bearer header with each API call. No CDN, no framework:
the machines this runs on may have no Internet.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"

FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "live.js": "text/javascript",
    "style.css": "text/css",
}

#: The page's scripts and styles come from this server only, and nothing is loaded from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def add_page_routes(app: web.Application) -> None:
    contents = {name: (STATIC / name).read_bytes() for name in FILES}
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    def serve(name: str) -> web.Response:
        return web.Response(body=contents[name], content_type=FILES[name], charset="utf-8", headers=headers)

    async def index(_request: web.Request) -> web.Response:
        return serve("index.html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in contents:
            raise web.HTTPNotFound(text=f"no static file {name!r}\n")
        return serve(name)

    app.router.add_get("/", index)
    app.router.add_get("/static/{file}", static)
