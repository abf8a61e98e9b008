"""Connections that cost nothing when they misbehave: timeouts aiohttp does not have, and one
warning line (no traceback) for a request its parser refuses.

aiohttp 3.14 closes a connection that is idle between requests (``keepalive_timeout``, our
``--idle-timeout``) and asyncio one whose TLS handshake stalls (``ssl_handshake_timeout``),
but nothing bounds how long a request *header* may take to arrive: a client sending one byte
every few seconds (slowloris) would hold a connection for as long as it likes. `WatchedSite`
serves the app through `Watchdog`, a thin protocol in front of aiohttp's that closes the
connection when no complete request header has arrived ``header_timeout`` seconds after it
opened, or after the first byte of the next request. It learns that a header is complete when
the request reaches the app (`request_started`, called by the outermost middleware); a body
that trickles is the handler's to bound (the webhook's ``body_timeout``), and aiohttp stops
reading an unread body after ``lingering_time``.

aiohttp logs a refused request line or header (too long, malformed, not HTTP at all) with a
traceback, once per request. `protocol_logger` is the logger handed to it instead: those
records become one rate-limited warning line each (`RejectionLog`); anything else it logs
(an exception of ours the middlewares did not catch) goes through unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from federation.metrics import HTTP_REJECTED
from federation.server.limits import RejectionLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timeouts:
    """Seconds each stage of a connection may take (`federation run`'s flags)."""

    #: From the connection (or the first byte of a request) to its complete header.
    header: float = 10.0
    #: Between requests on a kept-alive connection.
    idle: float = 60.0
    #: For a request body to arrive (where a handler reads one: /validate).
    body: float = 10.0
    #: For a TLS handshake to finish.
    tls_handshake: float = 10.0


class Watchdog(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind a header timer (see the module docstring)."""

    def __init__(self, inner: asyncio.Protocol, *, header_timeout: float, rejections: RejectionLog) -> None:
        self.inner = inner
        self.header_timeout = header_timeout
        self.rejections = rejections
        self.transport: asyncio.BaseTransport | None = None
        self.busy = False
        self.closed_by_timer = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio's calls, forwarded ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self.busy and self._timer is None:
            self._arm()  # the first byte of the next request on a kept-alive connection
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- the app's calls (the outermost middleware) -----------------------------------------------

    def request_started(self) -> None:
        self.busy = True
        self._disarm()

    def request_finished(self) -> None:
        self.busy = False

    # -- the timer ---------------------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.busy or self.transport is None or self.transport.is_closing():
            return
        self.closed_by_timer = True
        HTTP_REJECTED.labels("header_timeout").inc()
        self.rejections.warning(
            "closed a connection from %s: no complete request header within %gs",
            _peer(self.transport),
            self.header_timeout,
        )
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()
        else:
            self.transport.close()


def watchdog_of(request: web.BaseRequest) -> Watchdog | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, Watchdog) else None


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "an unknown peer"


class WatchedSite(web.BaseSite):
    """A TCP site whose connections go through `Watchdog`, with a TLS handshake timeout."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        timeouts: Timeouts,
        rejections: RejectionLog,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.host = host
        self.port = port
        self.timeouts = timeouts
        self.rejections = rejections

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        def connection() -> Watchdog:
            return Watchdog(server(), header_timeout=self.timeouts.header, rejections=self.rejections)

        self._server = await asyncio.get_running_loop().create_server(
            connection,
            self.host or None,
            self.port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self.timeouts.tls_handshake if self._ssl_context else None,
        )
        sockets = self._server.sockets
        if self.port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])


class _ProtocolRecords(logging.Filter):
    """Turns aiohttp's "Error handling request" records of refused requests into one
    rate-limited warning line each; drops its other chatter below WARNING."""

    def __init__(self, rejections: RejectionLog) -> None:
        super().__init__()
        self.rejections = rejections

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            HTTP_REJECTED.labels("malformed").inc()
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "an unknown peer"
            reason = safe(str(error.message or type(error).__name__).splitlines()[0], 200)
            self.rejections.warning("rejected a request from %s: %d %s", peer, error.code or 400, reason)
            return False
        return record.levelno >= logging.WARNING


def protocol_logger(rejections: RejectionLog) -> logging.Logger:
    """The logger aiohttp's request handler gets (see the module docstring)."""
    logger = logging.getLogger("federation.server.protocol")
    # Its records must reach the filter even at debug level (aiohttp reports non-HTTP bytes
    # on a fresh connection at debug): the filter decides what is written.
    logger.setLevel(logging.DEBUG)
    logger.filters[:] = [_ProtocolRecords(rejections)]
    return logger


def describe_peer(request: web.BaseRequest) -> str:
    return str(request.remote or "an unknown peer")


def safe(text: Any, limit: int = 120) -> str:
    """``text`` for a log line: printable, and short (a path is whatever the client sent)."""
    shown = repr(str(text))[1:-1]
    return shown if len(shown) <= limit else shown[:limit] + "…"
