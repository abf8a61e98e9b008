"""Who may read the API, and how every refusal is said: the server's middlewares.

Design:

- **Read-only by design.** Anything under ``/api`` answers only GET and HEAD; every other
  method is 405 with ``Allow: GET, HEAD`` before any handler runs. There is no write path to
  protect, so the credentials below only guard *reading* fleet state.
- **A bearer token** (``--api-token``): ``Authorization: Bearer <token>``, compared in constant
  time. Tokens are accepted only in the header, never in a query string (which ends up in
  access logs and browser history); the status page keeps its copy in ``sessionStorage``.
- **Mutual TLS** (``--client-ca``): the TLS layer *asks* for a client certificate and verifies
  any it is given against the CAs it trusts, but does not insist: kubelet's HTTPS probes
  present none, and /healthz and /readyz must keep answering them. Whether a request without a
  verified certificate may proceed is decided here, per path.
- **Which CA issued it** is checked here too, precisely: the TLS layer trusts both
  ``--client-ca`` (dashboards) and ``--webhook-client-ca`` (the apiserver calling /validate),
  so "verified" only says "issued by one of them". An API call needs a certificate *directly
  issued* by a ``--client-ca`` certificate, /validate one directly issued by a
  ``--webhook-client-ca`` certificate (`issued_by`): a dashboard's certificate does not pass
  as the apiserver, nor the apiserver's as a dashboard.
- When both a token and ``--client-ca`` are configured, **either** credential admits an API
  request (machines use a certificate, people in a browser the token).
- What is guarded: ``/api/*`` (the data, and the document describing it) and, when asked
  (``--protect-metrics``), ``/metrics``. Never ``/healthz`` and ``/readyz`` (probes), nor the
  status page's static shell, which holds no data: it asks for the token and sends it with its
  API calls. ``/validate`` answers on HTTPS only (apiservers call webhooks over HTTPS only, so
  a plain-HTTP /validate would only ever serve someone else), and with
  ``--webhook-client-ca`` only to the apiserver's certificate.

Every error under ``/api`` is JSON, ``{"error": ..., "field": ...}``, including the router's
own 404s and any unexpected failure (logged, answered 500 without internals). An API call
answers within about `API_DEADLINE` seconds whatever the database does: its store calls stop
retrying after `API_STORE_DEADLINE` (`federation.store.give_up_after`) and a call that hangs is
cut at `API_DEADLINE`; either way the answer is a 503 saying why.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from federation.errors import ConfigError, StoreError, StoreUnavailableError
from federation.store import give_up_after

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD"})
API_ROOT = "/api"
WEBHOOK_PATH = "/validate"
T = TypeVar("T")
API_STORE_DEADLINE = 1.5
"""Seconds an API call's store calls keep retrying while the database is down."""
API_DEADLINE = 2.0
"""Seconds an API call may take before it is answered 503 (a database that hangs)."""
#: Routes that answer with a stream (``/api/v1/watch``): exempt from the request deadline,
#: which would cut every stream after two seconds; they bound their setup with `bounded`.
STREAMS = frozenset({"/api/v1/watch"})

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


# -- client certificates -------------------------------------------------------------------------


def load_issuers(path: Path, *, flag: str) -> tuple[x509.Certificate, ...]:
    """The CA certificates of a PEM bundle (a ConfigError naming ``flag`` when there are none)."""
    try:
        certs = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{flag} {path}: cannot read a PEM CA certificate: {exc}") from exc
    if not certs:
        raise ConfigError(f"{flag} {path}: no certificate in it")
    return certs


def issued_by(certificate: bytes, issuers: Sequence[x509.Certificate]) -> bool:
    """Whether the DER ``certificate`` was issued directly by one of ``issuers`` (its issuer
    name is theirs and their key signed it). The TLS layer has verified the chain and the
    validity period already; this tells *which* of the trusted CAs it was."""
    try:
        cert = x509.load_der_x509_certificate(certificate)
    except ValueError:
        return False
    for issuer in issuers:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def peer_certificate(request: web.BaseRequest) -> bytes | None:
    """The client certificate the TLS layer verified for this connection (DER), if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


def is_tls(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


@dataclass(frozen=True)
class AccessPolicy:
    """Which credentials admit a request, and to which paths they apply."""

    token: str | None = None
    #: mTLS is configured (``--client-ca``): a client certificate issued by `client_issuers`
    #: admits an API request.
    client_certificates: bool = False
    protect_metrics: bool = False
    client_issuers: tuple[x509.Certificate, ...] = ()
    #: ``--webhook-client-ca``: /validate needs a client certificate these issued.
    webhook_issuers: tuple[x509.Certificate, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.client_certificates

    def guards(self, path: str) -> bool:
        if not self.enabled:
            return False
        return is_api(path) or (self.protect_metrics and path == "/metrics")

    def check(self, request: web.Request) -> None:
        """Raise a 401 `ApiError` unless the request carries an accepted credential."""
        if self.client_certificates:
            cert = peer_certificate(request)
            if cert is not None and issued_by(cert, self.client_issuers):
                return
        if self.token is not None:
            header = request.headers.get("Authorization", "")
            scheme, _, credential = header.partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                # Header bytes that are not UTF-8 reach us as surrogates: compare the bytes as
                # they came, so a token in any encoding is a 401, never an encoding error.
                given = credential.strip().encode("utf-8", "surrogateescape")
                if hmac.compare_digest(given, self.token.encode()):
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

    def check_webhook(self, request: web.Request) -> None:
        """/validate: HTTPS only, and with `webhook_issuers`, the apiserver's certificate only
        (403 naming what is missing)."""
        if not is_tls(request):
            raise ApiError(
                403,
                "the admission webhook answers on HTTPS only (apiservers call webhooks over HTTPS only): "
                "start the controller with --tls-cert and --tls-key",
            )
        if not self.webhook_issuers:
            return
        cert = peer_certificate(request)
        if cert is None:
            raise ApiError(
                403, "the admission webhook needs the apiserver's client certificate (--webhook-client-ca)"
            )
        if not issued_by(cert, self.webhook_issuers):
            raise ApiError(
                403,
                "the admission webhook admits only client certificates issued by --webhook-client-ca; "
                "this one was issued by another CA",
            )


def middlewares(policy: AccessPolicy) -> list[Middleware]:
    """Outermost first: JSON errors, then credentials, then the read-only rule."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            if not is_api(request.path) and err.status in (401, 403):
                return web.Response(status=err.status, text=err.message + "\n", headers=err.headers)
            return error_response(err)
        except web.HTTPException as exc:
            if not is_api(request.path) or exc.status < 400:
                raise
            message = {404: f"no such API route: {request.path}"}.get(exc.status, exc.reason)
            return error_response(ApiError(exc.status, message))
        except StoreUnavailableError as exc:
            # One line per refused request, rate-limited, is the outermost middleware's.
            return error_response(
                ApiError(503, f"the state store is unavailable: {exc}", headers={"Retry-After": "5"})
            )
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
        if request.path == WEBHOOK_PATH:
            policy.check_webhook(request)
        elif policy.guards(request.path):
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

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_api(request.path) or request.path in STREAMS:
            # A stream bounds itself: its setup by these deadlines (`bounded`), then its writes.
            return await handler(request)
        try:
            with give_up_after(API_STORE_DEADLINE), anyio.fail_after(API_DEADLINE):
                return await handler(request)
        except TimeoutError:
            raise ApiError(
                503,
                f"the state store did not answer within {API_DEADLINE:g}s",
                headers={"Retry-After": "5"},
            ) from None

    return [json_errors, credentials, read_only, deadline]


async def bounded(action: Callable[[], Awaitable[T]]) -> T:
    """`action` under the API's deadlines (a stream's setup), a 503 past them."""
    try:
        with give_up_after(API_STORE_DEADLINE), anyio.fail_after(API_DEADLINE):
            return await action()
    except TimeoutError:
        raise ApiError(
            503, f"the state store did not answer within {API_DEADLINE:g}s", headers={"Retry-After": "5"}
        ) from None


def server_ssl_context(
    *, cert: Path, key: Path, client_ca: Path | None, webhook_client_ca: Path | None = None
) -> ssl.SSLContext:
    """TLS for the server; with client CAs, client certificates are requested and verified
    (which of the CAs issued one is `AccessPolicy`'s to check, per path)."""
    cas = (("--client-ca", client_ca), ("--webhook-client-ca", webhook_client_ca))
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), *cas):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: cannot load the key pair: {exc}") from exc
    for flag, path in cas:
        if path is None:
            continue
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{flag} {path}: cannot load the CA bundle: {exc}") from exc
        # Optional, not required: probes come without a certificate (see the module docstring).
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
