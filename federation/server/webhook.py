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

Where the pieces are: the checks in `federation.validation` (shared with ``federation plan``),
the AdmissionReview envelope in `federation.server.review`, the shared and bounded hub reads in
`federation.server.hubreads`, the ValidatingWebhookConfiguration in
`federation.server.webhookconfig`. Why this module is still ~500 lines: a third of it is this
threat model and the reasons for each of `WebhookSettings`' bounds, and `ValidatingWebhook`
keeps every bound of one review (slots, worker threads, budget, hub reads) in one class, so
that they are read, and changed, together.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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
from federation.errors import CheckBudgetError, CheckTimedOutError, FederationError
from federation.kube import KubeClient, Obj
from federation.metrics import (
    WEBHOOK_CHECK_ERRORS,
    WEBHOOK_CHECKS_SKIPPED,
    WEBHOOK_HUB_READS,
    WEBHOOK_REQUEST_DURATION,
    WEBHOOK_REQUESTS,
)
from federation.server.hubreads import HubReader, KubeHubReader, ReadCache
from federation.server.limits import Clock, RejectionLog, TokenBucket
from federation.server.review import (
    ADMISSION_API_VERSION,
    AdmissionRequest,
    Verdict,
    decode_review,
    read_request,
)
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

DEFAULT_CREDENTIALS_NAMESPACES = frozenset({"fleet-system"})
"""`federation run --credentials-namespace`'s default."""
_MAX_SHOWN = 3
_POLICY_KINDS = frozenset(
    {"OverridePolicy", "ClusterOverridePolicy", "PropagationPolicy", "ClusterPropagationPolicy"}
)


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
