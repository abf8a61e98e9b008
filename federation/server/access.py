"""Who may read the API, and how every refusal is said: the server's middlewares.

Design:

- **Read-only by design.** Anything under ``/api`` answers only GET and HEAD; every other
  method is 405 with ``Allow: GET, HEAD`` before any handler runs. There is no write path to
  protect, so the credentials below only guard *reading* fleet state.
- **A bearer token** (``--api-token``): ``Authorization: Bearer <token>``, compared in constant
  time. Tokens are accepted only in the header, never in a query string (which ends up in
  access logs and browser history); the status page keeps its copy in ``sessionStorage``.
- **Mutual TLS** (``--client-ca``): the TLS layer *asks* for a client certificate and verifies
  any it is given against the CA, but does not insist: kubelet's HTTPS probes present none,
  and /healthz and /readyz must keep answering them. Whether a request without a verified
  certificate may proceed is decided here, per path.
- When both are configured, **either** credential admits a request (machines use a
  certificate, people in a browser the token).
- What is guarded: ``/api/*`` (the data, and the document describing it) and, when asked
  (``--protect-metrics``), ``/metrics``. Never ``/healthz`` and ``/readyz`` (probes), nor the
  status page's static shell, which holds no data: it asks for the token and sends it with its
  API calls.

Every error under ``/api`` is JSON, ``{"error": ..., "field": ...}``, including the router's
own 404s and any unexpected failure (logged, answered 500 without internals).
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from federation.errors import ConfigError, StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD"})
API_ROOT = "/api"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than 200, with the parameter (or header) at fault when there is one."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def json_response(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_response(err: ApiError) -> web.Response:
    return json_response({"error": err.message, "field": err.field}, status=err.status, headers=err.headers)


def is_api(path: str) -> bool:
    return path == API_ROOT or path.startswith(API_ROOT + "/")


@dataclass(frozen=True)
class AccessPolicy:
    """Which credentials admit a request, and to which paths they apply."""

    token: str | None = None
    #: mTLS is configured: a client certificate the TLS layer verified admits a request.
    client_certificates: bool = False
    protect_metrics: bool = False

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.client_certificates

    def guards(self, path: str) -> bool:
        if not self.enabled:
            return False
        return is_api(path) or (self.protect_metrics and path == "/metrics")

    def check(self, request: web.Request) -> None:
        """Raise a 401 `ApiError` unless the request carries an accepted credential."""
        transport = request.transport
        if self.client_certificates and transport is not None and transport.get_extra_info("peercert"):
            return
        if self.token is not None:
            header = request.headers.get("Authorization", "")
            scheme, _, credential = header.partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                if hmac.compare_digest(credential.strip().encode(), self.token.encode()):
                    return
                message = "the bearer token is not valid"
            elif header:
                message = "the Authorization header must be 'Bearer <token>'"
            else:
                message = "this API needs 'Authorization: Bearer <token>' (the controller's --api-token)"
            if self.client_certificates:
                message += ", or a client certificate signed by --client-ca"
            raise ApiError(
                401, message, field="Authorization", headers={"WWW-Authenticate": 'Bearer realm="federation"'}
            )
        raise ApiError(401, "this API needs a client certificate signed by the controller's --client-ca")


def middlewares(policy: AccessPolicy) -> list[Middleware]:
    """Outermost first: JSON errors, then credentials, then the read-only rule."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            if not is_api(request.path) and err.status == 401:
                return web.Response(status=401, text=err.message + "\n", headers=err.headers)
            return error_response(err)
        except web.HTTPException as exc:
            if not is_api(request.path) or exc.status < 400:
                raise
            message = {404: f"no such API route: {request.path}"}.get(exc.status, exc.reason)
            return error_response(ApiError(exc.status, message))
        except StoreUnavailableError as exc:
            log.warning("API %s: %s", request.path, exc)
            return error_response(ApiError(503, f"the state store is unavailable: {exc}"))
        except StoreError as exc:
            log.error("API %s: %s", request.path, exc)
            return error_response(ApiError(500, f"the state store failed: {exc}"))
        except Exception:
            if not is_api(request.path):
                raise  # aiohttp logs it and answers 500 as usual
            log.exception("API %s failed", request.path)
            return error_response(ApiError(500, "internal error (see the controller's log)"))

    @web.middleware
    async def credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
        if policy.guards(request.path):
            policy.check(request)
        return await handler(request)

    @web.middleware
    async def read_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_api(request.path) and request.method not in READ_METHODS:
            raise ApiError(
                405,
                f"the API is read-only: {request.method} is not allowed (use GET)",
                headers={"Allow": "GET, HEAD"},
            )
        return await handler(request)

    return [json_errors, credentials, read_only]


def server_ssl_context(*, cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """TLS for the server; with a client CA, client certificates are requested and verified."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", client_ca)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: cannot load the key pair: {exc}") from exc
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--client-ca {client_ca}: cannot load the CA bundle: {exc}") from exc
        # Optional, not required: probes come without a certificate (see the module docstring).
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
