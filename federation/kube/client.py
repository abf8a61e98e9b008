"""One HTTP client per cluster: raw JSON requests, streaming watches, and error translation.

This module is the boundary with the network: aiohttp and kubernetes-asyncio errors come in,
`federation.errors` go out. Every request is counted by cluster, verb and code, and waits for
its client's throttle first (`federation.kube.throttle`: a member's QPS and burst, and the
member's own Retry-After); a 429 is sent again after its Retry-After, a few times, since the
apiserver did not process it.

Why one module of this length: every verb shares the session, the retry of idempotent reads,
the error translation and the metrics; the TLS and kubeconfig side is `config`, the resource
lookup `discovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from federation.errors import (
    ApiError,
    ClusterUnreachableError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    WatchStalledError,
)
from federation.kube.config import ConnectionConfig, load_config
from federation.kube.resources import Obj, ResourceInfo
from federation.kube.throttle import NO_LIMIT, RateLimit, Throttle, retry_after_seconds
from federation.metrics import KUBE_REQUEST_DURATION, KUBE_REQUESTS

Params = Mapping[str, str | int | bool]
log = logging.getLogger(__name__)

_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
}

#: Network-level failures: the apiserver did not answer (as opposed to answering with an error).
_UNREACHABLE = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ssl.SSLError,
    OSError,
)

#: Sends of one request while the apiserver answers 429 (or a GET's 503) with a Retry-After;
#: past them the error goes to the caller, whose own backoff takes over.
RETRY_AFTER_ATTEMPTS = 4


def api_error(cluster: str, status: int, body: bytes, *, what: str) -> ApiError:
    """Build the typed error for an HTTP error answer, with the apiserver's own message.

    A Status body carries the reason and a message that already names the object and field
    (for 422: ``Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1 ...``).
    """
    message, reason = "", ""
    try:
        status_obj = orjson.loads(body)
        if isinstance(status_obj, dict):
            message = str(status_obj.get("message", ""))
            reason = str(status_obj.get("reason", ""))
    except orjson.JSONDecodeError:
        message = body[:500].decode(errors="replace").strip()
    cls = _ERRORS_BY_STATUS.get(status, ApiError)
    text = f"cluster {cluster}: {what}: {message or f'HTTP {status}'}"
    return cls(text, status=status, reason=reason, cluster=cluster)


class KubeClient:
    """A connection to one cluster's apiserver.

    One per cluster, owned by whoever manages that cluster (never a module-level singleton):
    multi-cluster means many of these, each with its own pool, credentials and metrics label.
    """

    def __init__(
        self,
        cluster: str,
        config: ConnectionConfig,
        *,
        timeout: float = 30.0,
        max_connections: int = 100,
        rate_limit: RateLimit = NO_LIMIT,
    ) -> None:
        self.cluster = cluster
        self.throttle = Throttle(cluster, rate_limit)
        self.config = config
        self.server = config.server
        self.timeout = timeout
        connector = aiohttp.TCPConnector(
            limit=max_connections, ssl=config.ssl_context, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            json_serialize=lambda o: orjson.dumps(o).decode(),
            auto_decompress=True,
        )

    @classmethod
    async def connect(
        cls,
        cluster: str,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        kubeconfig_data: str | dict[str, Any] | None = None,
        source: str | None = None,
        timeout: float = 30.0,
    ) -> KubeClient:
        """Build a client from a kubeconfig file + context, or from kubeconfig contents."""
        cfg = await load_config(
            kubeconfig=kubeconfig, context=context, kubeconfig_data=kubeconfig_data, source=source
        )
        return cls(cluster, cfg, timeout=timeout)

    def set_rate_limit(self, limit: RateLimit) -> None:
        """Throttle every later request of this client to `limit` (a member's QPS and burst)."""
        self.throttle = Throttle(self.cluster, limit)

    async def close(self) -> None:
        await self._session.close()

    def _closed(self, what: str, exc: RuntimeError) -> ClusterUnreachableError | RuntimeError:
        """aiohttp's "Session is closed" as ours: a member leaving the fleet (or reconnecting with
        a new Secret) closes its client while probes and watches may still be in flight, and
        those must see an unreachable cluster, not crash their task group. Any other
        RuntimeError is a bug and stays one."""
        if not self._session.closed:
            return exc
        return ClusterUnreachableError(
            f"cluster {self.cluster}: {what}: the client was closed (the cluster left the fleet or "
            "is being reconnected)",
            cluster=self.cluster,
        )

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- raw requests --------------------------------------------------------------------

    async def _headers(self, *, content_type: str | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "federation/0.1"}
        if content_type:
            headers["Content-Type"] = content_type
        auth = await self.config.auth_header()
        if auth:
            headers["Authorization"] = auth
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
        verb: str | None = None,
        what: str | None = None,
        throttled: bool = True,
    ) -> Obj:
        """Send one request and return the parsed JSON answer; raise a typed error otherwise.

        `throttled=False` skips the client's throttle: for health probes, since a member we
        throttle is not an unhealthy member."""
        raw = await self._send(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            accept=accept,
            timeout=timeout,
            verb=verb,
            what=what,
            throttled=throttled,
        )
        if not raw:
            return {}
        parsed = orjson.loads(raw)
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    async def request_text(
        self, method: str, path: str, *, params: Params | None = None, timeout: float | None = None, what: str
    ) -> str:
        """A request whose answer is text (/metrics, /readyz)."""
        raw = await self._send(method, path, params=params, accept="text/plain", timeout=timeout, what=what)
        return raw.decode(errors="replace")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
        verb: str | None = None,
        what: str | None = None,
        throttled: bool = True,
    ) -> bytes:
        verb = verb or method.lower()
        what = what or f"{method} {path}"
        if method != "GET" and log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", method, path, extra={"cluster": self.cluster})
        data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        headers = await self._headers(content_type=content_type if data is not None else None, accept=accept)
        for attempt in range(1, RETRY_AFTER_ATTEMPTS + 1):
            if throttled:
                await self.throttle.wait()
            status, raw, retry_after = await self._send_once(
                method, path, params=params, data=data, headers=headers, timeout=timeout, verb=verb, what=what
            )
            if status < 400:
                return raw
            if retry_after is not None and (status == 429 or (status == 503 and method == "GET")):
                self.throttle.retry_after(retry_after)
                if attempt < RETRY_AFTER_ATTEMPTS:
                    log.info(
                        "%s: HTTP %d, retrying after %.1fs",
                        what,
                        status,
                        retry_after,
                        extra={"cluster": self.cluster},
                    )
                    continue
            raise api_error(self.cluster, status, raw, what=what)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Params | None,
        data: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
        verb: str,
        what: str,
    ) -> tuple[int, bytes, float | None]:
        """One HTTP exchange: (status, body, Retry-After seconds if the answer carries one)."""
        started = time.perf_counter()
        code = "error"
        try:
            async with self._session.request(
                method,
                self.server + path,
                params=_encode(params),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                server_hostname=self.config.server_hostname,
                proxy=self.config.proxy,
            ) as resp:
                raw = await resp.read()
                code = str(resp.status)
                return resp.status, raw, retry_after_seconds(resp.headers.get("Retry-After"))
        except _UNREACHABLE as exc:
            raise ClusterUnreachableError(
                f"cluster {self.cluster}: {what}: cannot reach {self.server}: {type(exc).__name__}: {exc}",
                cluster=self.cluster,
            ) from exc
        except RuntimeError as exc:
            raise self._closed(what, exc) from exc
        finally:
            KUBE_REQUESTS.labels(self.cluster, verb, code).inc()
            KUBE_REQUEST_DURATION.labels(self.cluster, verb).observe(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def stream_lines(
        self, path: str, *, params: Params | None = None, read_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a streaming GET (a watch) and yield an iterator over its newline-framed lines.

        `read_timeout` bounds the silence between two chunks: a watch that delivers neither an
        event nor a bookmark for that long is stalled, and the iterator raises
        `ClusterUnreachableError` so the caller can re-open it.
        """
        headers = await self._headers(content_type=None, accept="application/json")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=read_timeout)
        await self.throttle.wait()
        try:
            resp = await self._session.get(
                self.server + path,
                params=_encode(params),
                headers=headers,
                timeout=timeout,
                server_hostname=self.config.server_hostname,
                proxy=self.config.proxy,
            )
        except _UNREACHABLE as exc:
            KUBE_REQUESTS.labels(self.cluster, "watch", "error").inc()
            raise ClusterUnreachableError(
                f"cluster {self.cluster}: watch {path}: cannot reach {self.server}: "
                f"{type(exc).__name__}: {exc}",
                cluster=self.cluster,
            ) from exc
        except RuntimeError as exc:
            raise self._closed(f"watch {path}", exc) from exc
        try:
            KUBE_REQUESTS.labels(self.cluster, "watch", str(resp.status)).inc()
            if resp.status >= 400:
                if resp.status == 429 and (delay := retry_after_seconds(resp.headers.get("Retry-After"))):
                    self.throttle.retry_after(delay)  # the reflector's backoff re-opens it later
                raise api_error(self.cluster, resp.status, await resp.read(), what=f"watch {path}")
            yield self._lines(resp, path)
        finally:
            resp.release()
            resp.close()

    async def _lines(self, resp: aiohttp.ClientResponse, path: str) -> AsyncIterator[bytes]:
        buf = bytearray()
        try:
            async for chunk in resp.content.iter_any():
                buf += chunk
                start = 0
                while (end := buf.find(b"\n", start)) >= 0:
                    if end > start:
                        yield bytes(buf[start:end])
                    start = end + 1
                if start:
                    del buf[:start]
        except TimeoutError as exc:  # aiohttp's sock_read timeout: nothing arrived in time
            raise WatchStalledError(
                f"cluster {self.cluster}: watch {path} stalled: nothing received within the read deadline",
                cluster=self.cluster,
            ) from exc
        except _UNREACHABLE as exc:
            raise ClusterUnreachableError(
                f"cluster {self.cluster}: watch {path} broke: {type(exc).__name__}: {exc}",
                cluster=self.cluster,
            ) from exc
        if buf.strip():
            yield bytes(buf)

    # -- convenience over ResourceInfo ---------------------------------------------------

    async def get(self, res: ResourceInfo, name: str, namespace: str | None = None) -> Obj:
        return await self.request(
            "GET",
            res.object_path(name, namespace),
            verb="get",
            what=f"get {res.kind} {_key(namespace, name)}",
        )

    async def list(
        self,
        res: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> Obj:
        params: dict[str, str | int | bool] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = limit
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self.request(
            "GET",
            res.collection_path(namespace),
            params=params,
            verb="list",
            what=f"list {res.name}",
            timeout=timeout,
        )

    async def create(self, res: ResourceInfo, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        name = (obj.get("metadata") or {}).get("name", "")
        return await self.request(
            "POST",
            res.collection_path(ns),
            body=obj,
            verb="create",
            what=f"create {res.kind} {_key(ns, name)}",
        )

    async def replace(self, res: ResourceInfo, obj: Obj, *, subresource: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace"), meta["name"]
        return await self.request(
            "PUT",
            res.object_path(name, ns, subresource),
            body=obj,
            verb="update",
            what=f"update {res.kind} {_key(ns, name)}" + (f" {subresource}" if subresource else ""),
        )

    async def apply(
        self, res: ResourceInfo, obj: Obj, *, field_manager: str, force: bool = False, dry_run: bool = False
    ) -> Obj:
        """Server-side apply: send our intent; the apiserver merges it and tracks field owners."""
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace"), meta["name"]
        params: dict[str, str | int | bool] = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        return await self.request(
            "PATCH",
            res.object_path(name, ns),
            params=params,
            body=obj,
            content_type="application/apply-patch+yaml",
            verb="apply",
            what=f"apply {res.kind} {_key(ns, name)}",
        )

    async def patch(
        self,
        res: ResourceInfo,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "application/merge-patch+json",
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> Obj:
        params: dict[str, str | int | bool] = {"fieldManager": field_manager} if field_manager else {}
        return await self.request(
            "PATCH",
            res.object_path(name, namespace, subresource),
            params=params,
            body=patch,
            content_type=patch_type,
            verb="patch",
            what=f"patch {res.kind} {_key(namespace, name)}",
        )

    async def delete(
        self,
        res: ResourceInfo,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str = "Background",
        uid: str | None = None,
    ) -> Obj:
        """Delete; with `uid`, only if the live object is still that one (a precondition)."""
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation_policy,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self.request(
            "DELETE",
            res.object_path(name, namespace),
            body=body,
            verb="delete",
            what=f"delete {res.kind} {_key(namespace, name)}",
        )

    async def version(self) -> Obj:
        return await self.request("GET", "/version", verb="version", what="get /version")

    async def ready(self, *, timeout: float = 5.0) -> tuple[bool, str]:
        """Probe `/readyz`: (ready, reason). Never raises: an unreachable cluster is not ready."""
        try:
            await self.request(
                "GET",
                "/readyz",
                accept="text/plain",
                timeout=timeout,
                verb="readyz",
                what="readyz",
                throttled=False,
            )
        except ApiError as exc:
            return False, f"/readyz answered {exc.status}"
        except ClusterUnreachableError as exc:
            return False, str(exc)
        except orjson.JSONDecodeError:
            return True, "ok"  # /readyz answers plain text "ok"
        return True, "ok"


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _encode(params: Params | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in params.items()}
