"""The validating admission webhook: AdmissionReview v1 in, a verdict naming the field out.

The hub apiserver POSTs an ``admission.k8s.io/v1`` AdmissionReview to ``/validate`` for every
CREATE and UPDATE of our kinds (deploy/webhook/validatingwebhookconfiguration.yaml); schema and
CEL validation have already passed by then. Refused here, each with a message naming the
object and the field (`federation.validation` has the checks, shared with ``federation plan``;
this module is the HTTP and AdmissionReview edge around them):

- any federation.io object the API models refuse (they say which field);
- an OverridePolicy or ClusterOverridePolicy whose JSON patch fails on every template of a kind
  it selects (`federation.validation.patchcheck`);
- a ClusterPropagationPolicy with the priority of another one that can select the same
  resources (likewise two PropagationPolicies of one namespace): rule 4 would let age decide;
- a MemberCluster whose ``spec.kubeconfigSecretRef`` is outside the controller's credentials
  namespaces (refused without reading anything), or whose Secret, key or context there does
  not exist.

Always allowed: DELETE (and CONNECT), subresources, objects being deleted (their finalizers
must be removable), and kinds that are not ours. On UPDATE only *new* problems are refused, as
Kubernetes ratchets CRD validation: an object that was already wrong (say, created before the
webhook, or its Secret deleted since) can still be edited, e.g. relabelled, or fixed.

Whoever reaches the port can POST here, so a review costs bounded time and memory:

- **Size.** A body over `WebhookSettings.max_review_bytes` (an UPDATE carries two objects of
  at most 1.5 MiB, etcd's limit) is a 413; one that trickles past ``body_timeout`` a 408; JSON
  nested deeper than ``max_depth`` or any other malformed review a 400, never a 500.
- **Time, off the event loop.** Decoding, parsing and every check run in worker threads (at
  most ``worker_threads`` at once), and each check is linear in the review's size with a cap
  (`validation.PATCH_CHECK_MAX_WORK`) and a cooperative deadline (`validation.Meter`): the event
  loop keeps answering /healthz and the controller keeps propagating. Past the 4 s budget the
  object is admitted with a warning, as ``failurePolicy: Ignore`` would admit it if this
  process were down.
- **Busy.** At most ``max_in_flight`` reviews are read and judged at once; a review that finds
  no slot within ``queue_wait``, or no worker thread before its budget runs out, is answered
  **429** (Retry-After: 1) rather than admitted with a warning: an AdmissionReview answer must
  echo the request's uid, which means decoding up to 4 MiB of JSON, the very work there is no
  capacity for; and a non-200 is exactly what the webhook's ``failurePolicy`` decides, so the
  fleet admin's choice holds (Ignore, as deploy/ ships it, admits as if this replica were
  down; Fail refuses).
- **The hub.** Every read goes through one small pool (``hub_read_concurrency`` at once, at
  most ``hub_read_rate`` a second) and a cache shared by all reviews (``cache_ttl``; the lists
  of a kind are dropped when this webhook admits an object of that kind, so a fix is seen at
  once): a flood of reviews costs the hub O(1) reads a second. When the rate is spent, what is
  cached (up to ``stale_ttl`` old) is used, else the object is admitted with a warning.
- **No Secret oracle.** A MemberCluster naming a Secret outside the credentials namespaces is
  refused with the same words whether that Secret exists or not, before any read.

Who may call /validate at all (HTTPS only; with ``--webhook-client-ca``, only the apiserver's
client certificate) is `federation.server.access`. Admission cannot be serialised, so two
conflicting policies created at the same instant can both pass; rule 4 still orders them, and
the loser reports ``Overridden``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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
from federation.errors import CheckBudgetError, CheckTimedOutError, FederationError, NotFoundError
from federation.kube import KubeClient, Obj
from federation.metrics import (
    WEBHOOK_CHECK_ERRORS,
    WEBHOOK_CHECKS_SKIPPED,
    WEBHOOK_HUB_READS,
    WEBHOOK_REQUEST_DURATION,
    WEBHOOK_REQUESTS,
)
from federation.server.limits import Clock, RejectionLog, TokenBucket
from federation.validation import (
    PATCH_CHECK_MAX_WORK,
    Findings,
    Meter,
    credentials_namespace_problems,
    local_problems,
    override_findings,
    parse,
    priority_conflicts,
    secret_problems,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ADMISSION_API_VERSION = "admission.k8s.io/v1"
WEBHOOK_NAME = "validate.federation.io"
"""The webhook's name in its configuration; apiservers quote it in every denial."""
DEFAULT_CREDENTIALS_NAMESPACES = frozenset({"fleet-system"})
"""`federation run --credentials-namespace`'s default."""
_MAX_SHOWN = 3
_POLICY_KINDS = frozenset(
    {"OverridePolicy", "ClusterOverridePolicy", "PropagationPolicy", "ClusterPropagationPolicy"}
)


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


@dataclass(frozen=True)
class WebhookSettings:
    """The bounds of `ValidatingWebhook` (see the module docstring for why each exists)."""

    #: Seconds one review may take in all (the apiserver's timeoutSeconds is 5 in deploy/).
    budget: float = 4.0
    #: An UPDATE carries two objects of at most 1.5 MiB (etcd's limit), plus the envelope.
    max_review_bytes: int = 4 * 1024 * 1024
    #: Seconds the body may take to arrive once the review has a slot.
    body_timeout: float = 10.0
    #: Reviews read and judged at once (each may hold a decoded 4 MiB review in memory).
    max_in_flight: int = 4
    #: Seconds a review waits for one of those slots before it is answered 429.
    queue_wait: float = 1.0
    #: Worker threads for decoding, parsing and checking (they share the GIL with the loop).
    worker_threads: int = 2
    #: Work units a patch check may cost (`validation.PATCH_CHECK_MAX_WORK`).
    max_patch_work: int = PATCH_CHECK_MAX_WORK
    #: JSON nesting a review may have (our objects need a few dozen levels at most).
    max_depth: int = 100
    #: Hub reads at once, and a second (token bucket).
    hub_read_concurrency: int = 4
    hub_read_rate: float = 10.0
    hub_read_burst: int = 20
    #: Seconds a hub read serves every review; and how old it may be when the rate is spent.
    cache_ttl: float = 1.5
    stale_ttl: float = 30.0


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


# -- the envelope --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of an AdmissionReview's ``request`` we read, each of the type we expect."""

    uid: str
    operation: str
    group: str
    version: str
    kind: str
    sub_resource: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None

    @property
    def deleting(self) -> bool:
        meta = (self.object or {}).get("metadata")
        return isinstance(meta, Mapping) and bool(meta.get("deletionTimestamp"))


def _too_deep(value: Any, limit: int, meter: Meter) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        meter.spend()
        current, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(current, Mapping):
            stack.extend((v, depth + 1) for v in current.values() if isinstance(v, Mapping | list))
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current if isinstance(v, Mapping | list))
    return False


def _text(request: Mapping[str, Any], name: str, *, where: str = "request") -> str:
    value = request.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where}.{name} must be a string, not {type(value).__name__}")
    return value


def _object(request: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = request.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"request.{name} must be an object or null, not {type(value).__name__}")
    return value


def read_request(review: Any, *, max_depth: int = 100, meter: Meter | None = None) -> AdmissionRequest:
    """The request of an AdmissionReview v1; ValueError (answered 400) naming what is wrong.
    ``meter`` paces the walk of a large review (see `Meter.check`)."""
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise ValueError("expected an AdmissionReview")
    if review.get("apiVersion") != ADMISSION_API_VERSION:
        raise ValueError(f"expected apiVersion {ADMISSION_API_VERSION}, got {review.get('apiVersion')!r}")
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise ValueError("the AdmissionReview has no request.uid (a string)")
    if len(request["uid"]) > 256:
        raise ValueError("request.uid is longer than 256 characters")
    gvk = request.get("kind")
    if gvk is None:
        gvk = {}
    if not isinstance(gvk, Mapping):
        raise ValueError(f"request.kind must be an object {{group, version, kind}}, not {type(gvk).__name__}")
    if _too_deep(review, max_depth, meter or Meter()):
        raise ValueError(f"the AdmissionReview nests deeper than {max_depth} levels")
    return AdmissionRequest(
        uid=request["uid"],
        operation=_text(request, "operation"),
        group=_text(gvk, "group", where="request.kind"),
        version=_text(gvk, "version", where="request.kind"),
        kind=_text(gvk, "kind", where="request.kind"),
        sub_resource=_text(request, "subResource"),
        object=_object(request, "object"),
        old_object=_object(request, "oldObject"),
    )


def decode_review(body: bytes, *, max_depth: int = 100, meter: Meter | None = None) -> AdmissionRequest:
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"expected an AdmissionReview (JSON): {exc}") from None
    return read_request(review, max_depth=max_depth, meter=meter)


# -- hub reads, shared and bounded -------------------------------------------------------------


@dataclass
class _Entry:
    value: Any
    at: float


class _Flight:
    """One read in progress, which every review wanting the same key waits for."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class ReadCache:
    """Hub reads shared by every review: a result serves all for ``ttl`` seconds, and at most
    one read per key is in flight (the others wait for it). A load that is refused for lack of
    budget (`CheckBudgetError`) is answered from a result up to ``stale_ttl`` old instead."""

    _MAX_ENTRIES = 1024

    def __init__(self, *, ttl: float, stale_ttl: float, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._flights: dict[Hashable, _Flight] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        while True:
            entry = self._entries.get(key)
            if entry is not None and self.clock() - entry.at < self.ttl:
                return entry.value  # type: ignore[no-any-return]
            flight = self._flights.get(key)
            if flight is None:
                return await self._load(key, load, entry)
            await flight.done.wait()
            if flight.error is None:
                return flight.value  # type: ignore[no-any-return]
            if not isinstance(flight.error, anyio.get_cancelled_exc_class()):
                raise flight.error
            # The review that was reading ran out of time: read for ourselves.

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]], stale: _Entry | None) -> T:
        flight = self._flights[key] = _Flight()
        try:
            try:
                value = await load()
            except CheckBudgetError:
                if stale is None or self.clock() - stale.at >= self.stale_ttl:
                    raise
                value = stale.value
            else:
                self._store(key, value)
            flight.value = value
            return value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            flight.done.set()
            del self._flights[key]

    def _store(self, key: Hashable, value: Any) -> None:
        now = self.clock()
        if len(self._entries) >= self._MAX_ENTRIES:
            self._entries = {k: e for k, e in self._entries.items() if now - e.at < self.stale_ttl}
            if len(self._entries) >= self._MAX_ENTRIES:
                self._entries.clear()
        self._entries[key] = _Entry(value, now)

    def invalidate(self, match: Callable[[Hashable], bool]) -> None:
        """Drop the results whose key matches (a read in flight is left to finish)."""
        for key in [k for k in self._entries if match(k)]:
            del self._entries[key]


class _Reads:
    """The hub reads of one review, each done once (an UPDATE checks old and new against the
    same view), failures turned into warnings."""

    def __init__(self, hook: ValidatingWebhook, kind: str) -> None:
        self.hook = hook
        self.kind = kind
        self.warnings: list[str] = []
        self._done: dict[Hashable, tuple[bool, Any]] = {}

    async def _once(self, key: Hashable, load: Callable[[], Awaitable[Any]], what: str) -> tuple[bool, Any]:
        """(whether the read succeeded, its result)."""
        if key not in self._done:
            try:
                self._done[key] = (True, await self.hook.cache.get(key, load))
            except FederationError as exc:
                WEBHOOK_CHECK_ERRORS.labels(self.kind).inc()
                self.hook.notes.warning("admission check of %s skipped: %s failed: %s", self.kind, what, exc)
                self._done[key] = (False, None)
                self.warnings.append(f"federation webhook: {what} failed, so it was not checked: {exc}")
        return self._done[key]

    async def policies(self, kind: str, namespace: str | None = None) -> list[TopLevelObject] | None:
        """The hub's valid objects of ``kind`` (None: the read failed). Invalid ones are left
        out, as the controller leaves them out."""
        ok, parsed = await self._once(
            ("list", kind, namespace or ""),
            lambda: self.hook.load_policies(kind, namespace),
            f"listing {kind} objects" + (f" in {namespace}" if namespace else ""),
        )
        return parsed if ok else None

    async def secret(self, namespace: str, name: str) -> tuple[bool, Obj | None]:
        """(whether the read succeeded, the Secret or None when it does not exist)."""
        ok, value = await self._once(
            ("secret", namespace, name),
            lambda: self.hook.hub_read(
                lambda: self.hook.hub.get_secret(namespace, name),
                f"reading Secret {namespace}/{name}",
                resource="secrets",
            ),
            f"reading Secret {namespace}/{name}",
        )
        return ok, value


# -- the webhook ---------------------------------------------------------------------------------


class _BusyError(CheckBudgetError):
    """No worker thread was free before the review's budget ran out (answered 429)."""


class ValidatingWebhook:
    """The ``/validate`` handler (register it with ``build_app(webhook=...)``)."""

    def __init__(
        self,
        hub: HubReader,
        *,
        credentials_namespaces: Collection[str] = DEFAULT_CREDENTIALS_NAMESPACES,
        settings: WebhookSettings | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.hub = hub
        self.credentials = frozenset(credentials_namespaces)
        self.settings = settings = settings or WebhookSettings()
        self.clock = clock
        self._threads = anyio.CapacityLimiter(settings.worker_threads)
        self._in_flight = anyio.Semaphore(settings.max_in_flight)
        self._hub_slots = anyio.CapacityLimiter(settings.hub_read_concurrency)
        self._hub_rate = TokenBucket(rate=settings.hub_read_rate, burst=settings.hub_read_burst, clock=clock)
        self.cache = ReadCache(ttl=settings.cache_ttl, stale_ttl=settings.stale_ttl, clock=clock)
        #: Listed policies parsed once per (uid, resourceVersion), however often they are listed.
        self._parsed: dict[tuple[str, str], TopLevelObject | None] = {}
        #: Reads that reached the hub (the cache and the limits keep this small).
        self.hub_reads = 0
        self.notes = RejectionLog(log)

    @classmethod
    def for_hub(
        cls,
        hub: KubeClient,
        *,
        credentials_namespaces: Collection[str] = DEFAULT_CREDENTIALS_NAMESPACES,
        settings: WebhookSettings | None = None,
    ) -> ValidatingWebhook:
        return cls(KubeHubReader(hub), credentials_namespaces=credentials_namespaces, settings=settings)

    # -- HTTP ----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        started = self.clock()
        s = self.settings
        if request.content_length is not None and request.content_length > s.max_review_bytes:
            return _too_large(request.content_length, s.max_review_bytes)
        entered = False
        with anyio.move_on_after(s.queue_wait):
            await self._in_flight.acquire()
            entered = True
        if not entered:
            return _busy(f"{s.max_in_flight} reviews are being judged already")
        try:
            try:
                with anyio.fail_after(s.body_timeout):
                    body = await request.read()
            except TimeoutError:
                response = web.Response(
                    status=408, text=f"the AdmissionReview did not arrive within {s.body_timeout:g}s\n"
                )
                response.force_close()
                return response
            except web.HTTPRequestEntityTooLarge:
                return _too_large(None, s.max_review_bytes)
            try:
                answer = await self._review_bytes(body, started=started)
            except ValueError as exc:
                return web.Response(status=400, text=f"{exc}\n")
            except _BusyError:
                return _busy("no worker was free within the review's budget")
            return web.Response(body=orjson.dumps(answer), content_type="application/json")
        finally:
            self._in_flight.release()

    async def _review_bytes(self, body: bytes, *, started: float) -> dict[str, Any]:
        meter = Meter(deadline=started + self.settings.budget, clock=self.clock)
        decode = functools.partial(decode_review, body, max_depth=self.settings.max_depth, meter=meter)
        try:
            with anyio.fail_after(max(0.0, started + self.settings.budget - self.clock())):
                request = await self._cpu(decode)
        except (TimeoutError, CheckTimedOutError):
            raise _BusyError("no worker thread was free within the review's budget") from None
        return await self._answer(request, started=started)

    async def review(self, body: Any) -> dict[str, Any]:
        """An AdmissionReview v1 answering ``body``'s request (ValueError when it is not one)."""
        request = read_request(body, max_depth=self.settings.max_depth)
        return await self._answer(request, started=self.clock())

    async def _answer(self, request: AdmissionRequest, *, started: float) -> dict[str, Any]:
        kind = request.kind
        label = kind if kind in KINDS else "other"
        try:
            verdict = await self.admit(request, deadline=started + self.settings.budget)
        except Exception:
            # A bug of ours must not block the hub either (as failurePolicy: Ignore would not).
            log.exception("admission check of %s failed: admitted unchecked", kind)
            WEBHOOK_CHECK_ERRORS.labels(label).inc()
            verdict = Verdict(
                True, warnings=["federation webhook: internal error, the object was not checked"]
            )
        finally:
            WEBHOOK_REQUEST_DURATION.labels(label).observe(self.clock() - started)
        WEBHOOK_REQUESTS.labels(label, str(verdict.allowed).lower()).inc()
        if not verdict.allowed:
            self.notes.log(logging.INFO, "denied %s %s: %s", request.operation, kind, verdict.message)
        return {
            "apiVersion": ADMISSION_API_VERSION,
            "kind": "AdmissionReview",
            "response": verdict.response(request.uid),
        }

    # -- the verdict -------------------------------------------------------------------------------

    async def admit(self, request: AdmissionRequest, *, deadline: float) -> Verdict:
        """The verdict on one AdmissionRequest (see the module docstring for what is refused)."""
        kind = request.kind
        if request.operation not in ("CREATE", "UPDATE") or request.sub_resource:
            return Verdict(True)
        if request.group != GROUP or request.version != VERSION or kind not in KINDS:
            return Verdict(True)
        if request.object is None:
            return Verdict(False, f"{kind}: the AdmissionRequest carries no object", code=400)
        if request.deleting:
            return Verdict(True)
        reads = _Reads(self, kind)
        found = Findings()
        try:
            with anyio.fail_after(max(0.0, deadline - self.clock())):
                found = await self._problems(request.object, reads, deadline=deadline)
                if request.operation == "UPDATE" and request.old_object is not None and found.problems:
                    known = set((await self._problems(request.old_object, reads, deadline=deadline)).problems)
                    found.problems = [p for p in found.problems if p not in known]
        except (TimeoutError, CheckTimedOutError):
            WEBHOOK_CHECKS_SKIPPED.labels(kind, "timed_out").inc()
            self.notes.warning(
                "admission checks of %s took over %.1fs: admitted unchecked", kind, self.settings.budget
            )
            return Verdict(
                True, warnings=[f"federation webhook: checks timed out after {self.settings.budget:g}s"]
            )
        warnings = [*found.warnings, *reads.warnings]
        if found.problems:
            message = "; ".join(found.problems[:_MAX_SHOWN])
            if len(found.problems) > _MAX_SHOWN:
                message += f" (and {len(found.problems) - _MAX_SHOWN} more)"
            return Verdict(False, message, code=422, warnings=warnings)
        if kind in _POLICY_KINDS:
            # It is about to be stored: reviews after this one must see it, not a cached list.
            self.cache.invalidate(lambda key: isinstance(key, tuple) and key[:2] == ("list", kind))
        return Verdict(True, warnings=warnings)

    async def _problems(self, obj: Mapping[str, Any], reads: _Reads, *, deadline: float) -> Findings:
        """What refuses ``obj``. Pure checks run in a worker thread (`_cpu`); hub reads go
        through `reads`. A new check of one object alone goes in `validation.local_problems`."""

        def parse_and_check_locally() -> tuple[TopLevelObject | None, list[str]]:
            parsed, problems = parse(obj, meter=Meter(deadline=deadline, clock=self.clock))
            return parsed, (problems if parsed is None else local_problems(parsed))

        parsed, problems = await self._cpu(parse_and_check_locally)
        found = Findings(problems=list(problems))
        if parsed is None:
            return found  # nothing further can be judged of an object the models refuse
        if isinstance(parsed, OverridePolicy | ClusterOverridePolicy):
            alone = await self._cpu(self._overrides, parsed, [], deadline)
            if not alone.problems:
                found.warnings += alone.warnings
                return found
            # Something fails on the kind's representative template; policies applied before
            # this one may have prepared the template for it: take them into account.
            cluster_wide = await reads.policies("ClusterOverridePolicy")
            namespaced = (
                await reads.policies("OverridePolicy", parsed.metadata.namespace)
                if isinstance(parsed, OverridePolicy) and cluster_wide is not None
                else []
            )
            if cluster_wide is None or namespaced is None:
                return found  # cannot tell what runs before it: admitted, with the read's warning
            others = _live([*cluster_wide, *namespaced], OverridePolicy | ClusterOverridePolicy)
            after = await self._cpu(self._overrides, parsed, others, deadline)
            found.problems += after.problems
            found.warnings += after.warnings
        elif isinstance(parsed, ClusterPropagationPolicy | PropagationPolicy):
            namespace = parsed.metadata.namespace if isinstance(parsed, PropagationPolicy) else None
            listed = await reads.policies(parsed.kind, namespace)
            if listed is not None:
                others = _live(listed, ClusterPropagationPolicy | PropagationPolicy)
                found.problems += await self._cpu(_priority_conflicts, parsed, others)
        elif isinstance(parsed, MemberCluster):
            outside = credentials_namespace_problems(parsed, credentials=self.credentials)
            ref = parsed.spec.kubeconfig_secret_ref
            if outside or ref is None:
                found.problems += outside
                return found
            ok, secret = await reads.secret(ref.namespace, ref.name)
            if ok:
                found.problems += await self._cpu(secret_problems, parsed, secret)
        return found

    def _overrides(self, policy: Any, others: list[Any], deadline: float) -> Findings:
        found = override_findings(
            policy,
            others=others,
            max_work=self.settings.max_patch_work,
            meter=Meter(deadline=deadline, clock=self.clock),
        )
        if found.warnings:
            WEBHOOK_CHECKS_SKIPPED.labels(policy.kind, "too_large").inc()
        return found

    async def _cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread (at most ``worker_threads`` at once): the event loop
        stays free. Not abandoned on cancellation: ``fn`` ends by its `Meter`'s deadline."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads)

    # -- hub reads ---------------------------------------------------------------------------------

    async def hub_read(self, read: Callable[[], Awaitable[T]], what: str, *, resource: str) -> T:
        """One read of the hub, within the concurrency and rate bounds (`CheckBudgetError` when
        the rate is spent: the cache then serves what it has)."""
        if not self._hub_rate.take():
            raise CheckBudgetError(
                f"{what}: the webhook reads the hub at most {self.settings.hub_read_rate:g} times a second"
            )
        async with self._hub_slots:
            self.hub_reads += 1
            WEBHOOK_HUB_READS.labels(resource).inc()
            return await read()

    async def load_policies(self, kind: str, namespace: str | None) -> list[TopLevelObject]:
        """The hub's valid objects of ``kind``, parsed in a worker thread (each object once
        per resourceVersion)."""
        what = f"listing {kind} objects" + (f" in {namespace}" if namespace else "")
        raw = await self.hub_read(
            lambda: self.hub.list_objects(kind, namespace=namespace), what, resource=KINDS[kind].crd.plural
        )
        return await self._cpu(self._parse_listed, raw)

    def _parse_listed(self, raw: list[Obj]) -> list[TopLevelObject]:
        if len(self._parsed) > 10_000:
            self._parsed.clear()
        out = []
        for obj in raw:
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            key = (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
            if not all(key) or key not in self._parsed:
                try:
                    parsed: TopLevelObject | None = parse_object(obj)
                except FederationError:
                    parsed = None
                if all(key):
                    self._parsed[key] = parsed
            else:
                parsed = self._parsed[key]
            if parsed is not None:
                out.append(parsed)
        return out


def _priority_conflicts(policy: Any, others: list[Any]) -> list[str]:
    return priority_conflicts(policy, others=others)  # looked up at call time (a test replaces it)


def _too_large(size: int | None, limit: int) -> web.Response:
    given = f" ({size} bytes)" if size is not None else ""
    return web.Response(
        status=413,
        text=f"the AdmissionReview is larger than {limit} bytes{given}: an UPDATE carries two objects of "
        f"at most 1.5 MiB each\n",
    )


def _busy(why: str) -> web.Response:
    return web.Response(
        status=429,
        text=f"the admission webhook is busy ({why}); the apiserver's failurePolicy decides\n",
        headers={"Retry-After": "1"},
    )


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
