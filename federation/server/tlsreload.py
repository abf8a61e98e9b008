"""Pick up a renewed serving certificate without a restart.

cert-manager renews certificates well before they expire and the kubelet swaps the mounted
Secret's files in place (an atomic symlink flip), so a server that read its pair only at start
would serve an expired certificate one day — and the apiserver would stop calling the webhook.
Loading a pair into the *same* SSLContext applies to every handshake after it, so the port
never closes: we check the files' identity now and then and load them again when it changes.
A pair that does not load (a half-written key) leaves the old one serving and is retried on the
next change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from federation.metrics import TLS_RELOADS

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int], ...]


class CertReloader:
    def __init__(self, ctx: ssl.SSLContext, *, cert: Path, key: Path, interval: float = 30.0) -> None:
        self.ctx = ctx
        self.cert = cert
        self.key = key
        self.interval = interval
        self._seen = self._stamp()

    def _stamp(self) -> _Stamp:
        """What identifies the files' contents cheaply; os.stat follows the Secret's symlinks."""
        out = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def check(self) -> bool:
        """Reload if the files changed; True when a new pair is now served."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        try:
            self.ctx.load_cert_chain(certfile=str(self.cert), keyfile=str(self.key))
        except (ssl.SSLError, OSError) as exc:
            TLS_RELOADS.labels("error").inc()
            log.warning(
                "TLS pair %s / %s changed but does not load (still serving the previous one): %s",
                self.cert,
                self.key,
                exc,
            )
            return False
        TLS_RELOADS.labels("ok").inc()
        log.info("TLS pair %s / %s reloaded", self.cert, self.key)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the files are polled: inotify misses symlink flips
            self.check()

    async def cleanup_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: polls while the server runs (aiohttp runs on asyncio)."""
        task = asyncio.create_task(self.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
