"""The validating admission webhook: AdmissionReview v1 in, a verdict naming the field out.

The hub apiserver POSTs an ``admission.k8s.io/v1`` AdmissionReview to ``/validate`` for every
CREATE and UPDATE of our kinds (deploy/webhook/validatingwebhookconfiguration.yaml); schema and
CEL validation have already passed by then. Refused here, each with a message naming the
object and the field (`federation.server.admission` has the checks):

- any federation.io object the API models refuse (they say which field);
- an OverridePolicy or ClusterOverridePolicy whose JSON patch fails on every template of a kind
  it selects (`federation.server.patchcheck`);
- a ClusterPropagationPolicy with the priority of another one that can select the same
  resources (likewise two PropagationPolicies of one namespace): rule 4 would let age decide;
- a MemberCluster whose ``spec.kubeconfigSecretRef`` Secret, key or context does not exist.

Always allowed: DELETE (and CONNECT), subresources, objects being deleted (their finalizers
must be removable), and kinds that are not ours. On UPDATE only *new* problems are refused, as
Kubernetes ratchets CRD validation: an object that was already wrong (say, created before the
webhook, or its Secret deleted since) can still be edited, e.g. relabelled, or fixed.

The checks read the hub (the other policies, the Secret) with the process's own KubeClient on
each request, so they work on every replica, leader or not, and see what the apiserver sees.
A read that fails or is slow does not block the hub: the object is admitted with a warning,
as ``failurePolicy: Ignore`` would admit it if this process were down. Admission cannot be
serialised, so two conflicting policies created at the same instant can both pass; rule 4
still orders them, and the loser reports ``Overridden``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import orjson
from aiohttp import web

from federation.api import (
    GROUP,
    KINDS,
    VERSION,
    ClusterOverridePolicy,
    ClusterPropagationPolicy,
    MemberCluster,
    OverridePolicy,
    PropagationPolicy,
    TopLevelObject,
    parse_object,
)
from federation.errors import FederationError, NotFoundError
from federation.kube import KubeClient, Obj
from federation.metrics import WEBHOOK_CHECK_ERRORS, WEBHOOK_REQUEST_DURATION, WEBHOOK_REQUESTS
from federation.server.admission import override_problems, parse, priority_conflicts, secret_problems

log = logging.getLogger(__name__)

ADMISSION_API_VERSION = "admission.k8s.io/v1"
WEBHOOK_NAME = "validate.federation.io"
"""The webhook's name in its configuration; apiservers quote it in every denial."""
_MAX_SHOWN = 3


class HubReader(Protocol):
    """What the checks read from the hub."""

    async def list_objects(self, kind: str, *, namespace: str | None = None) -> list[Obj]:
        """The federation.io objects of ``kind`` (in ``namespace``, or cluster-wide)."""
        ...

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        """The Secret, or None when it does not exist."""
        ...


class KubeHubReader:
    """`HubReader` over the process's hub `KubeClient`, with a short timeout per request: the
    apiserver waits for the webhook ``timeoutSeconds`` at most (5 in deploy/)."""

    def __init__(self, hub: KubeClient, *, timeout: float = 2.0) -> None:
        self.hub = hub
        self.timeout = timeout

    async def list_objects(self, kind: str, *, namespace: str | None = None) -> list[Obj]:
        plural = KINDS[kind].crd.plural
        scope = f"/namespaces/{namespace}" if namespace else ""
        listed = await self.hub.request(
            "GET",
            f"/apis/{GROUP}/{VERSION}{scope}/{plural}",
            timeout=self.timeout,
            verb="list",
            what=f"list {plural}" + (f" in {namespace}" if namespace else ""),
        )
        return [item for item in listed.get("items") or [] if isinstance(item, dict)]

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.hub.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/secrets/{name}",
                timeout=self.timeout,
                verb="get",
                what=f"get Secret {namespace}/{name}",
            )
        except NotFoundError:
            return None


@dataclass
class Verdict:
    """The answer to one AdmissionRequest."""

    allowed: bool
    message: str = ""
    code: int = 200
    warnings: list[str] = field(default_factory=list)

    def response(self, uid: str) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            reason = "Invalid" if self.code == 422 else "BadRequest"
            out["status"] = {"code": self.code, "reason": reason, "message": self.message}
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class _Reads:
    """The hub reads of one request, each done once (an UPDATE checks old and new against the
    same view), failures turned into warnings."""

    def __init__(self, hub: HubReader, kind: str) -> None:
        self.hub = hub
        self.kind = kind
        self.warnings: list[str] = []
        self._cache: dict[tuple[str, ...], Any] = {}

    async def _once(
        self, key: tuple[str, ...], read: Callable[[], Awaitable[Any]], what: str
    ) -> tuple[bool, Any]:
        """(whether the read succeeded, its result)."""
        if key not in self._cache:
            try:
                self._cache[key] = (True, await read())
            except FederationError as exc:
                WEBHOOK_CHECK_ERRORS.labels(self.kind).inc()
                log.warning("admission check skipped: %s failed: %s", what, exc)
                self._cache[key] = (False, None)
                self.warnings.append(f"federation webhook: {what} failed, so it was not checked: {exc}")
        ok, value = self._cache[key]
        return ok, value

    async def policies(self, kind: str, namespace: str | None = None) -> list[TopLevelObject] | None:
        """The hub's valid objects of ``kind`` (None: the read failed). Invalid ones are left
        out, as the controller leaves them out."""
        ok, raw = await self._once(
            ("list", kind, namespace or ""),
            lambda: self.hub.list_objects(kind, namespace=namespace),
            f"listing {kind} objects" + (f" in {namespace}" if namespace else ""),
        )
        if not ok:
            return None
        out = []
        for obj in raw:
            try:
                out.append(parse_object(obj))
            except FederationError:
                continue
        return out

    async def secret(self, namespace: str, name: str) -> tuple[bool, Obj | None]:
        """(whether the read succeeded, the Secret or None when it does not exist)."""
        ok, value = await self._once(
            ("secret", namespace, name),
            lambda: self.hub.get_secret(namespace, name),
            f"reading Secret {namespace}/{name}",
        )
        return ok, value


class ValidatingWebhook:
    """The ``/validate`` handler (register it with ``build_app(webhook=...)``)."""

    def __init__(self, hub: HubReader, *, budget: float = 4.0) -> None:
        self.hub = hub
        self.budget = budget
        """Seconds the hub reads of one request may take in all; past it, admit with a warning
        (the apiserver's timeoutSeconds is 5 and it would give up on us anyway)."""

    @classmethod
    def for_hub(cls, hub: KubeClient) -> ValidatingWebhook:
        return cls(KubeHubReader(hub))

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return web.Response(status=400, text=f"expected an AdmissionReview (JSON): {exc}\n")
        try:
            answer = await self.review(body)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def review(self, body: Any) -> dict[str, Any]:
        """An AdmissionReview v1 answering ``body``'s request (ValueError when it is not one)."""
        if not isinstance(body, Mapping) or body.get("kind") != "AdmissionReview":
            raise ValueError("expected an AdmissionReview")
        if body.get("apiVersion") != ADMISSION_API_VERSION:
            raise ValueError(f"expected apiVersion {ADMISSION_API_VERSION}, got {body.get('apiVersion')!r}")
        request = body.get("request")
        if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
            raise ValueError("the AdmissionReview has no request.uid")
        kind = str((request.get("kind") or {}).get("kind") or "")
        label = kind if kind in KINDS else "other"
        started = time.perf_counter()
        try:
            verdict = await self.admit(request)
        except Exception:
            # A bug of ours must not block the hub either (as failurePolicy: Ignore would not).
            log.exception("admission check of %s failed: admitted unchecked", kind)
            WEBHOOK_CHECK_ERRORS.labels(label).inc()
            verdict = Verdict(
                True, warnings=["federation webhook: internal error, the object was not checked"]
            )
        finally:
            WEBHOOK_REQUEST_DURATION.labels(label).observe(time.perf_counter() - started)
        WEBHOOK_REQUESTS.labels(label, str(verdict.allowed).lower()).inc()
        if not verdict.allowed:
            log.info("denied %s %s: %s", request.get("operation"), kind, verdict.message)
        return {
            "apiVersion": ADMISSION_API_VERSION,
            "kind": "AdmissionReview",
            "response": verdict.response(request["uid"]),
        }

    async def admit(self, request: Mapping[str, Any]) -> Verdict:
        """The verdict on one AdmissionRequest (see the module docstring for what is refused)."""
        operation = request.get("operation")
        gvk = request.get("kind") or {}
        kind = str(gvk.get("kind") or "")
        if operation not in ("CREATE", "UPDATE") or request.get("subResource"):
            return Verdict(True)
        if gvk.get("group") != GROUP or gvk.get("version") != VERSION or kind not in KINDS:
            return Verdict(True)
        obj = request.get("object")
        if not isinstance(obj, Mapping):
            return Verdict(False, f"{kind}: the AdmissionRequest carries no object", code=400)
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return Verdict(True)
        reads = _Reads(self.hub, kind)
        problems: list[str] = []
        with anyio.move_on_after(self.budget) as scope:
            problems = await self._problems(obj, reads)
            old = request.get("oldObject")
            if operation == "UPDATE" and isinstance(old, Mapping) and problems:
                known = set(await self._problems(old, reads))
                problems = [p for p in problems if p not in known]
        if scope.cancelled_caught:
            log.warning("admission checks of %s took over %.1fs: admitted unchecked", kind, self.budget)
            return Verdict(True, warnings=[f"federation webhook: checks timed out after {self.budget:g}s"])
        if problems:
            message = "; ".join(problems[:_MAX_SHOWN])
            if len(problems) > _MAX_SHOWN:
                message += f" (and {len(problems) - _MAX_SHOWN} more)"
            return Verdict(False, message, code=422, warnings=reads.warnings)
        return Verdict(True, warnings=reads.warnings)

    async def _problems(self, obj: Mapping[str, Any], reads: _Reads) -> list[str]:
        parsed, problems = parse(obj)
        if parsed is None:
            return problems  # nothing further can be judged of an object the models refuse
        if isinstance(parsed, OverridePolicy | ClusterOverridePolicy):
            if not override_problems(parsed):
                return []
            # Something fails on the kind's representative template; policies applied before
            # this one may have prepared the template for it: take them into account.
            cluster_wide = await reads.policies("ClusterOverridePolicy")
            namespaced = (
                await reads.policies("OverridePolicy", parsed.metadata.namespace)
                if isinstance(parsed, OverridePolicy) and cluster_wide is not None
                else []
            )
            if cluster_wide is None or namespaced is None:
                return []  # cannot tell what runs before it: admitted, with the read's warning
            others = _live([*cluster_wide, *namespaced], OverridePolicy | ClusterOverridePolicy)
            return override_problems(parsed, others=others)
        if isinstance(parsed, ClusterPropagationPolicy | PropagationPolicy):
            namespace = parsed.metadata.namespace if isinstance(parsed, PropagationPolicy) else None
            listed = await reads.policies(parsed.kind, namespace)
            if listed is None:
                return []
            return priority_conflicts(
                parsed, others=_live(listed, ClusterPropagationPolicy | PropagationPolicy)
            )
        if isinstance(parsed, MemberCluster):
            ref = parsed.spec.kubeconfig_secret_ref
            if ref is None:
                return []
            ok, secret = await reads.secret(ref.namespace, ref.name)
            return secret_problems(parsed, secret) if ok else []
        return []


def _live(objects: list[TopLevelObject], types: Any) -> list[Any]:
    """Those of ``types`` not being deleted (the controller ignores a policy being deleted)."""
    return [
        o
        for o in objects
        if isinstance(o, types) and not (o.metadata.model_extra or {}).get("deletionTimestamp")
    ]


def webhook_configuration(
    *,
    ca_bundle: str,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    name: str = "federation-validating",
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
    object_selector: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration for our kinds, calling ``url`` or ``service``
    (namespace, name, port) at /validate; deploy/webhook/ holds the in-cluster one.

    ``failure_policy`` is Ignore by default: when no replica answers (all down, or slower than
    ``timeout_seconds``) the hub still admits policies, as it did before the webhook existed;
    the CRDs' schemas and CEL rules still guard everything structural, and the controller
    still reports what this would have refused. Tests use Fail, to see a refusal.
    """
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url or service")
    client: dict[str, Any] = {"caBundle": ca_bundle}
    if url is not None:
        client["url"] = url
    elif service is not None:
        namespace, svc, port = service
        client["service"] = {"namespace": namespace, "name": svc, "path": "/validate", "port": port}
    hook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "timeoutSeconds": timeout_seconds,
        "matchPolicy": "Equivalent",
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": sorted(model.crd.plural for model in KINDS.values()),
                "scope": "*",
            }
        ],
    }
    if object_selector is not None:
        hook["objectSelector"] = dict(object_selector)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "federation"}},
        "webhooks": [hook],
    }
