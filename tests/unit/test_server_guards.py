"""The port's guards without a network: the rate-limited rejection log and the token bucket in
fake time, the issuer check on real certificates, the exposure and token rules of the server's
configuration, the webhook's shared hub reads (cache, single flight, rate) and its answers to
MemberClusters outside the credentials namespaces (no read, nothing revealed), and malformed
AdmissionReviews refused naming what is wrong."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.cli.root import _leaves
from federation.errors import CheckBudgetError, ConfigError, StoreUnavailableError
from federation.server import ServerConfig, ValidatingWebhook, WebhookSettings
from federation.server.access import issued_by, load_issuers
from federation.server.app import is_loopback
from federation.server.hubreads import ReadCache
from federation.server.limits import RejectionLog, TokenBucket
from federation.server.review import decode_review, read_request
from tests.unit.test_webhook import CREDENTIALS, KUBECONFIG, MemoryHub, cpp, member, override, review, secret

WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the token bucket and the rejection log --------------------------------------------------------


def test_the_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = FakeTime()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert bucket.take() and not bucket.take()
    clock.now += 100
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_the_rejection_log_writes_one_line_each_at_most_its_rate_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeTime()
    logger = logging.getLogger("test.rejections")
    rejections = RejectionLog(logger, rate=1, burst=3, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.rejections"):
        written = [rejections.warning("rejected %s", i) for i in range(50)]
        assert written == [True] * 3 + [False] * 47
        clock.now += 1.0
        assert rejections.warning("rejected %s", "late")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["rejected 0", "rejected 1", "rejected 2", "rejected late (47 similar lines suppressed)"]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
    assert rejections.suppressed == 0 and rejections.written == 4


# -- which CA issued a client certificate ----------------------------------------------------------


def _der(cert: trustme.LeafCert) -> bytes:
    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def _ca(ca: trustme.CA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes())


def test_a_certificate_passes_only_for_the_ca_that_issued_it_directly() -> None:
    apiserver_ca, dashboard_ca = trustme.CA(), trustme.CA()
    apiserver = _der(apiserver_ca.issue_cert("kube-apiserver"))
    dashboard = _der(dashboard_ca.issue_cert("dashboard@example.test"))
    assert issued_by(apiserver, [_ca(apiserver_ca)])
    assert not issued_by(apiserver, [_ca(dashboard_ca)])
    assert not issued_by(dashboard, [_ca(apiserver_ca)])
    assert issued_by(dashboard, [_ca(apiserver_ca), _ca(dashboard_ca)])  # a bundle: any of them
    # Issued by an intermediate of the CA: the intermediate, not the root, is its issuer.
    intermediate = apiserver_ca.create_child_ca()
    below = _der(intermediate.issue_cert("kube-apiserver"))
    assert not issued_by(below, [_ca(apiserver_ca)]) and issued_by(below, [_ca(intermediate)])
    assert not issued_by(b"not a certificate", [_ca(apiserver_ca)])


def test_a_ca_file_must_hold_a_certificate(tmp_path: Path) -> None:
    empty = tmp_path / "ca.crt"
    empty.write_text("nothing here\n")
    with pytest.raises(ConfigError, match=r"--webhook-client-ca .*: cannot read a PEM CA certificate"):
        load_issuers(empty, flag="--webhook-client-ca")


# -- the server's configuration ----------------------------------------------------------------------


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "", "::", "10.0.0.5", "controller.example.com"):
        assert not is_loopback(host), host


def test_the_api_is_served_open_only_on_loopback_or_when_asked(tmp_path: Path) -> None:
    assert ServerConfig().host == "127.0.0.1"
    ServerConfig().check_exposure(api=True)
    ServerConfig(host="0.0.0.0", api_token="t").check_exposure(api=True)
    ServerConfig(host="0.0.0.0", insecure_open_api=True).check_exposure(api=True)
    ServerConfig(host="0.0.0.0").check_exposure(api=False)  # probes and metrics only
    with pytest.raises(ConfigError) as info:
        ServerConfig(host="0.0.0.0", port=9000).check_exposure(api=True)
    message = str(info.value)
    for words in ("--listen 0.0.0.0:9000", "--api-token", "--client-ca", "--insecure-open-api"):
        assert words in message, message
    assert info.value.hint is not None and "127.0.0.1" in info.value.hint


@pytest.mark.parametrize("token", [" ", "\t\n", "  \u00a0 "])
def test_a_whitespace_token_is_an_error_not_no_token(token: str) -> None:
    with pytest.raises(ConfigError, match="--api-token is only whitespace"):
        ServerConfig(api_token=token)


def test_a_token_travels_in_a_header_so_it_is_printable_ascii() -> None:
    for token in ("caf\u00e9", "a b", "a\x00b"):
        with pytest.raises(ConfigError, match="printable ASCII"):
            ServerConfig(api_token=token)
    assert ServerConfig(api_token="s3cret-TOKEN_1.2~").api_token == "s3cret-TOKEN_1.2~"


def test_the_webhook_client_ca_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--webhook-client-ca needs TLS"):
        ServerConfig(webhook_client_ca=tmp_path / "ca.crt")


def test_errors_in_task_groups_are_found_for_the_cli() -> None:
    inner = ConfigError("--listen 127.0.0.1:1 is in use by another process")
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("nested", [inner])])
    assert _leaves(group) == [inner]
    other = StoreUnavailableError("down")
    assert _leaves(ExceptionGroup("two", [inner, other])) == [inner, other]
    assert _leaves(inner) == [inner]


# -- hub reads, shared and bounded ------------------------------------------------------------------


async def test_the_cache_serves_every_review_for_its_ttl_with_one_read_in_flight() -> None:
    clock = FakeTime()
    cache = ReadCache(ttl=1.5, stale_ttl=30, clock=clock)
    loads = 0
    release = anyio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return loads

    results: list[int] = []

    async def reader() -> None:
        results.append(await cache.get("k", load))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert loads == 1 and results == [1] * 20
    clock.now += 1.0
    assert await cache.get("k", load) == 1 and loads == 1
    clock.now += 1.0
    assert await cache.get("k", load) == 2
    cache.invalidate(lambda key: key == "k")
    assert await cache.get("k", load) == 3


async def test_when_reads_are_rationed_the_cache_serves_what_it_has() -> None:
    clock = FakeTime()
    cache = ReadCache(ttl=1.5, stale_ttl=30, clock=clock)

    async def rationed() -> int:
        raise CheckBudgetError("no budget")

    async def fresh() -> int:
        return 7

    with pytest.raises(CheckBudgetError):
        await cache.get("k", rationed)
    assert await cache.get("k", fresh) == 7
    clock.now += 10
    assert await cache.get("k", rationed) == 7  # stale but within stale_ttl
    clock.now += 30
    with pytest.raises(CheckBudgetError):
        await cache.get("k", rationed)


async def test_a_flood_of_reviews_costs_the_hub_a_bounded_number_of_reads() -> None:
    clock = FakeTime()
    hub = MemoryHub(cpp("old", WEB, priority=3), secret({"kubeconfig": KUBECONFIG}, name="eu"))
    settings = WebhookSettings(hub_read_rate=2, hub_read_burst=3)
    hook = ValidatingWebhook(hub, credentials_namespaces=CREDENTIALS, settings=settings, clock=clock)
    for i in range(50):
        answer = await hook.review(review(cpp(f"new-{i}", WEB, priority=3)))
        assert answer["response"]["allowed"] is False  # the cached list still finds the tie
        answer = await hook.review(review(member("eu")))
        assert answer["response"]["allowed"] is True
    assert hub.reads == 2  # one list, one Secret: the rest came from the cache
    # Distinct Secrets (not cacheable) are rationed: past the burst, admitted with a warning.
    answers = [await hook.review(review(member(f"m{i}"))) for i in range(10)]
    rationed = [a for a in answers if a["response"]["allowed"]]
    # The burst of 3 had one read left: that one found no Secret (refused); the rest were rationed.
    assert hub.reads == 3 and len(rationed) == 9
    assert "at most 2 times a second" in rationed[-1]["response"]["warnings"][0]


async def test_an_admitted_policy_is_seen_by_the_next_review_not_a_cached_list() -> None:
    hub = MemoryHub()
    hook = ValidatingWebhook(hub, credentials_namespaces=CREDENTIALS)
    failing = override(
        [{"op": "replace", "path": "/spec/replicas", "value": 2}],
        selector={"apiVersion": "v1", "kind": "ConfigMap"},
    )
    assert (await hook.review(review(failing)))["response"]["allowed"] is False
    prepares = override(
        [{"op": "add", "path": "/spec", "value": {"replicas": 1}}],
        selector={"apiVersion": "v1", "kind": "ConfigMap"},
        kind="ClusterOverridePolicy",
        name="a",
    )
    assert (await hook.review(review(prepares)))["response"]["allowed"] is True
    hub.objects.append(prepares)  # the apiserver stores what was admitted
    assert (await hook.review(review(failing)))["response"]["allowed"] is True


# -- no Secret oracle ------------------------------------------------------------------------------


def _outside(secret_name: str, namespace: str) -> dict[str, Any]:
    obj = member("eu")
    obj["spec"]["kubeconfigSecretRef"].update(namespace=namespace, name=secret_name)
    return obj


async def test_a_secret_outside_the_credentials_namespaces_is_refused_unread_and_unrevealed() -> None:
    present = secret({"kubeconfig": KUBECONFIG}, name="eu")
    present["metadata"]["namespace"] = "kube-system"
    hub = MemoryHub(present)
    hook = ValidatingWebhook(hub, credentials_namespaces={"fleet-system", "fleet"})
    exists = (await hook.review(review(_outside("eu", "kube-system"), uid="a")))["response"]
    ghost = (await hook.review(review(_outside("ghost", "kube-system"), uid="a")))["response"]
    hub.objects.clear()  # the same Secret, gone
    gone = (await hook.review(review(_outside("eu", "kube-system"), uid="a")))["response"]
    assert exists == ghost == gone
    assert exists["allowed"] is False and exists["status"]["code"] == 422
    assert exists["status"]["message"] == (
        "MemberCluster eu: spec.kubeconfigSecretRef.namespace: kube-system is not a credentials namespace "
        "of this controller (fleet, fleet-system); put the kubeconfig Secret in one of them, or start the "
        "controller with --credentials-namespace kube-system"
    )
    assert "kubeconfig" not in exists["status"]["message"].split(";")[0].split(":", 2)[-1]
    assert hub.reads == 0


# -- malformed AdmissionReviews --------------------------------------------------------------------


def _envelope(**request: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u", **request},
    }


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


MALFORMED = [
    ("kind-is-a-string", _envelope(kind="MemberCluster"), "request.kind must be an object"),
    (
        "object-is-a-list",
        _envelope(kind={"kind": "X"}, object=[1, 2]),
        "request.object must be an object or null",
    ),
    ("old-object-is-a-string", _envelope(oldObject="x"), "request.oldObject must be an object or null"),
    ("uid-is-a-number", {**_envelope(), "request": {"uid": 7}}, "no request.uid"),
    ("uid-is-empty", {**_envelope(), "request": {"uid": ""}}, "no request.uid"),
    ("operation-is-a-list", _envelope(operation=["CREATE"]), "request.operation must be a string"),
    ("group-is-a-number", _envelope(kind={"group": 1}), "request.kind.group must be a string"),
    ("too-deep", _envelope(object=_nested(150)), "nests deeper than 100 levels"),
    ("not-a-review", {"kind": "Pod"}, "expected an AdmissionReview"),
]


@pytest.mark.parametrize(("body", "words"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_review_is_refused_naming_what_is_wrong(body: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        read_request(body)


def test_undecodable_bodies_are_refused() -> None:
    import orjson

    for body in (b"not json", b"[" * 2000 + b"]" * 2000, b"\xff\xfe"):
        with pytest.raises(ValueError):  # noqa: PT011 - any of the decoder's messages
            decode_review(body)
    assert decode_review(orjson.dumps(review(member("eu")))).kind == "MemberCluster"


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.floats(allow_nan=False)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_OURS = st.sampled_from(
    [
        "OverridePolicy",
        "ClusterOverridePolicy",
        "PropagationPolicy",
        "ClusterPropagationPolicy",
        "MemberCluster",
    ]
)
_OBJECTS = st.dictionaries(
    st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status"]), _JSON, max_size=5
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=_OURS, obj=_OBJECTS, old=st.one_of(st.none(), _OBJECTS), typed=st.booleans(), update=st.booleans()
)
def test_no_object_however_malformed_fails_a_check_internally(
    kind: str, obj: dict[str, Any], old: dict[str, Any] | None, typed: bool, update: bool
) -> None:
    """Whatever the object holds, the answer is a verdict (a 400 for the envelope): never the
    catch-all "internal error", which would mean a 500-worthy bug and a traceback."""
    if typed:
        obj = {**obj, "apiVersion": "federation.io/v1alpha1", "kind": kind}
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "federation.io", "version": "v1alpha1", "kind": kind},
            "operation": "UPDATE" if update else "CREATE",
            "object": obj,
            "oldObject": old,
        },
    }
    hook = ValidatingWebhook(MemoryHub(), credentials_namespaces=CREDENTIALS)
    answer = anyio.run(hook.review, body)
    assert "internal error" not in " ".join(answer["response"].get("warnings", [])), (obj, old)
