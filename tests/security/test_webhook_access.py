"""Issue 10, finding 6 and the webhook's transport: /validate was a Secret oracle open to anyone.

Against the real fleet: a MemberCluster review naming a Secret outside the credentials
namespaces gets the same answer whether that Secret exists or not, and costs no hub read;
identical reviews inside them cost O(1) reads; with ``--webhook-client-ca`` only the
apiserver's client certificate is answered, a dashboard's certificate (trusted by the same TLS
context through ``--client-ca``) is not, and the apiserver's does not pass as a dashboard's.
And a real kube-apiserver, configured to present a client certificate to webhooks (an
AdmissionConfiguration), is answered by a controller that expects that CA and refused by one
that expects another.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
import trustme
import yaml

from federation.devfleet import LocalFleet
from federation.server import WEBHOOK_NAME, CertPaths, webhook_configuration
from tests.controllerhelpers import ControllerProcess, apply
from tests.kubehelpers import eventually
from tests.securityhelpers import (
    API,
    LogWindow,
    admission_review,
    client_context,
    controller,
    post,
    serving_certs,
)

pytestmark = [pytest.mark.security, pytest.mark.anyio]
CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


@dataclass
class Authorities:
    """The CAs of the test: who issues the apiserver's, the dashboards' and a stranger's
    client certificates, written where the flags want them."""

    apiserver: trustme.CA
    dashboard: trustme.CA
    stranger: trustme.CA
    files: dict[str, Path]


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> Authorities:
    directory = tmp_path_factory.mktemp("client-cas")
    cas = {"apiserver": trustme.CA(), "dashboard": trustme.CA(), "stranger": trustme.CA()}
    files = {}
    for name, ca in cas.items():
        files[name] = directory / f"{name}-ca.crt"
        ca.cert_pem.write_to_path(files[name])
    return Authorities(files=files, **cas)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return serving_certs(tmp_path_factory.mktemp("access-certs"))


@pytest.fixture(scope="module")
async def guarded(
    fleet: LocalFleet,
    hub_crds: None,
    certs: CertPaths,
    authorities: Authorities,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ControllerProcess]:
    """A controller whose API admits dashboards' certificates and whose webhook admits only
    the apiserver's."""
    args = [
        "--client-ca",
        str(authorities.files["dashboard"]),
        "--webhook-client-ca",
        str(authorities.files["apiserver"]),
    ]
    async with controller(
        fleet, name="access", log_dir=tmp_path_factory.mktemp("access"), certs=certs, extra_args=args
    ) as proc:
        yield proc


def member_review(secret_namespace: str, secret_name: str, *, uid: str = "oracle") -> bytes:
    member = {
        "apiVersion": API,
        "kind": "MemberCluster",
        "metadata": {"name": "probe"},
        "spec": {
            "kubeconfigSecretRef": {"namespace": secret_namespace, "name": secret_name, "key": "kubeconfig"}
        },
    }
    return orjson.dumps(admission_review(member, uid=uid))


async def test_a_secret_outside_the_credentials_namespaces_is_neither_read_nor_revealed(
    fleet: LocalFleet, guarded: ControllerProcess, certs: CertPaths, authorities: Authorities, namespace: str
) -> None:
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": {}}]}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "real", "namespace": namespace},
        "stringData": {"kubeconfig": json.dumps(kubeconfig), "token": "hunter2"},
    }
    await anyio.to_thread.run_sync(lambda: apply(fleet, "hub", secret))
    apiserver = client_context(certs.ca_cert, authorities.apiserver.issue_cert("kube-apiserver"))
    reads = guarded.metric("federation_webhook_hub_reads_total", resource="secrets")
    async with aiohttp.ClientSession() as session:
        url = f"{guarded.url}/validate"
        exists = await post(session, url, member_review(namespace, "real"), ssl_context=apiserver)
        ghost = await post(session, url, member_review(namespace, "ghost"), ssl_context=apiserver)
        system = await post(session, url, member_review("kube-system", "anything"), ssl_context=apiserver)
    assert exists.status == ghost.status == 200
    assert exists.body == ghost.body, (exists.body, ghost.body)
    response = exists.body["response"]
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert message == (
        # The credentials namespaces and the controller's own, as the registry reads them.
        f"MemberCluster probe: spec.kubeconfigSecretRef.namespace: {namespace} is not a credentials "
        f"namespace of this controller (federation-system, fleet-system); put the kubeconfig Secret in one "
        f"of them, or start "
        f"the controller with --credentials-namespace {namespace}"
    )
    for leaked in ("real", "token", "kubeconfig'", "does not exist", "has no key"):
        assert leaked not in message.split(":", 2)[-1].split(";")[0], message
    assert system.body["response"]["allowed"] is False
    assert guarded.metric("federation_webhook_hub_reads_total", resource="secrets") == reads


async def test_a_flood_of_identical_reviews_costs_the_hub_a_read_or_two(
    guarded: ControllerProcess, certs: CertPaths, authorities: Authorities
) -> None:
    apiserver = client_context(certs.ca_cert, authorities.apiserver.issue_cert("kube-apiserver"))
    name = f"ghost-{secrets.token_hex(3)}"
    secret_reads = guarded.metric("federation_webhook_hub_reads_total", resource="secrets")
    # An override whose patch fails alone makes the webhook list the override policies.
    failing = {
        "apiVersion": API,
        "kind": "ClusterOverridePolicy",
        "metadata": {"name": f"probe-{secrets.token_hex(3)}"},
        "spec": {
            "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}],
            "rules": [{"overriders": {"jsonPatch": [{"op": "remove", "path": "/spec/replicas"}]}}],
        },
    }
    list_reads = guarded.metric("federation_webhook_hub_reads_total", resource="clusteroverridepolicies")
    answers = []
    async with aiohttp.ClientSession() as session:

        async def send(body: bytes) -> None:
            answers.append(await post(session, f"{guarded.url}/validate", body, ssl_context=apiserver))

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(send, member_review("fleet-system", name, uid=f"u{i}"))
                tg.start_soon(send, orjson.dumps(admission_review(failing, uid=f"o{i}")))
    assert {a.status for a in answers} <= {200, 429}
    refused = [a.body["response"]["status"]["message"] for a in answers if a.status == 200]
    assert any(f"Secret fleet-system/{name} does not exist" in m for m in refused), refused[:3]
    assert any("path /spec does not exist" in m for m in refused), refused[:3]
    # The cache serves every review for 1.5 s, one read in flight per key: a few reads, not 40.
    assert guarded.metric("federation_webhook_hub_reads_total", resource="secrets") - secret_reads <= 3
    assert (
        guarded.metric("federation_webhook_hub_reads_total", resource="clusteroverridepolicies") - list_reads
        <= 3
    )


async def test_only_the_apiserver_certificate_reaches_the_webhook_and_only_dashboards_the_api(
    guarded: ControllerProcess, certs: CertPaths, authorities: Authorities
) -> None:
    body = member_review("fleet-system", "x")
    apiserver = client_context(certs.ca_cert, authorities.apiserver.issue_cert("kube-apiserver"))
    dashboard = client_context(certs.ca_cert, authorities.dashboard.issue_cert("dashboard@example.test"))
    stranger = client_context(certs.ca_cert, authorities.stranger.issue_cert("mallory"))
    anonymous = client_context(certs.ca_cert)
    window = LogWindow(guarded)
    async with aiohttp.ClientSession() as session:
        url = f"{guarded.url}/validate"
        answered = await post(session, url, body, ssl_context=apiserver)
        assert answered.status == 200 and answered.body["response"]["uid"] == "oracle"
        none = await post(session, url, body, ssl_context=anonymous)
        assert none.status == 403 and "needs the apiserver's client certificate" in none.body, none.body
        wrong = await post(session, url, body, ssl_context=dashboard)
        assert wrong.status == 403 and "issued by another CA" in wrong.body, wrong.body
        with pytest.raises(aiohttp.ClientError):  # not trusted at all: the handshake fails
            await post(session, url, body, ssl_context=stranger)

        async def api(ssl_context: Any) -> int:
            async with session.get(f"{guarded.url}/api/v1/clusters", ssl=ssl_context) as resp:
                return resp.status

        assert await api(dashboard) == 200
        assert await api(apiserver) == 401  # the apiserver's certificate is no dashboard's
        assert await api(anonymous) == 401
    lines = window.lines()
    assert any("rejected POST /validate" in line and "403" in line for line in lines), lines
    assert not [line for line in lines if "Traceback" in line]


# -- a real apiserver presenting its client certificate ---------------------------------------------


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubectl"), "--context", "hub", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ, KUBECONFIG=str(kubeconfig)),
        timeout=60,
        check=False,
    )


@dataclass
class CallingHub:
    fleet: LocalFleet
    kubeconfig: Path


@pytest.fixture(scope="module")
async def calling_hub(
    authorities: Authorities, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CallingHub]:
    """A hub of its own whose apiserver presents a client certificate of the apiserver CA to
    every webhook (an AdmissionConfiguration with a kubeConfigFile), with our CRDs."""
    directory = tmp_path_factory.mktemp("calling-hub")
    client = authorities.apiserver.issue_cert("kube-apiserver")
    client.cert_chain_pems[0].write_to_path(directory / "client.crt")
    client.private_key_pem.write_to_path(directory / "client.key")
    (directory / "webhook-kubeconfig.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [
                    {
                        "name": "*",  # every webhook this apiserver calls
                        "user": {
                            "client-certificate": str(directory / "client.crt"),
                            "client-key": str(directory / "client.key"),
                        },
                    }
                ],
            }
        )
    )
    webhook_config = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(directory / "webhook-kubeconfig.yaml"),
    }
    (directory / "admission.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [{"name": "ValidatingAdmissionWebhook", "configuration": webhook_config}],
            }
        )
    )
    hub = LocalFleet(
        members=0,
        postgres=False,
        state_dir=directory / "fleet",
        apiserver_args=[f"--admission-control-config-file={directory / 'admission.yaml'}"],
        progress=lambda m: print(f"[calling hub] {m}", file=sys.__stderr__, flush=True),
    )
    await anyio.to_thread.run_sync(hub.start)
    try:
        kubeconfig = hub.clusters["hub"].kubeconfig
        created = await anyio.to_thread.run_sync(
            lambda: _kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRDS))
        )
        assert created.returncode == 0, created.stderr
        established = await anyio.to_thread.run_sync(
            lambda: _kubectl(
                kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"
            )
        )
        assert established.returncode == 0, established.stderr
        yield CallingHub(hub, kubeconfig)
    finally:
        await anyio.to_thread.run_sync(hub.stop)


def _bad_override(label: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ClusterOverridePolicy",
        "metadata": {
            "name": f"bad-{label}-{secrets.token_hex(3)}",
            "labels": {"security.test/webhook": label},
        },
        "spec": {
            "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}],
            "rules": [{"overriders": {"jsonPatch": [{"op": "remove", "path": "/status"}]}}],
        },
    }


async def test_a_real_apiserver_is_answered_by_its_ca_and_refused_by_another(
    fleet: LocalFleet,
    calling_hub: CallingHub,
    certs: CertPaths,
    authorities: Authorities,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    logs = tmp_path_factory.mktemp("calling-hub-controllers")
    files = authorities.files
    right = ["--client-ca", str(files["dashboard"]), "--webhook-client-ca", str(files["apiserver"])]
    # This one trusts the apiserver's CA as a *dashboard* CA: the TLS handshake passes, and only
    # the issuer check tells the apiserver's certificate from the webhook's expected one.
    wrong = ["--client-ca", str(files["apiserver"]), "--webhook-client-ca", str(files["stranger"])]
    async with (
        controller(
            fleet, name="right-ca", log_dir=logs, certs=certs, extra_args=right, hub=calling_hub.kubeconfig
        ) as answered,
        controller(
            fleet, name="wrong-ca", log_dir=logs, certs=certs, extra_args=wrong, hub=calling_hub.kubeconfig
        ) as refused,
    ):
        for label, proc in (("right", answered), ("wrong", refused)):
            config = webhook_configuration(
                ca_bundle=certs.ca_bundle(),
                url=f"{proc.url}/validate",
                name=f"security-{label}",
                failure_policy="Fail",
                object_selector={"matchLabels": {"security.test/webhook": label}},
            )
            created = await anyio.to_thread.run_sync(
                lambda c=config: _kubectl(calling_hub.kubeconfig, "create", "-f", "-", stdin=json.dumps(c))
            )
            assert created.returncode == 0, created.stderr
        window = LogWindow(refused)

        async def denied_by(label: str, words: str) -> bool:
            obj = _bad_override(label)
            out = await anyio.to_thread.run_sync(
                lambda: _kubectl(
                    calling_hub.kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(obj)
                )
            )
            assert out.returncode != 0, out.stdout
            assert words in out.stderr, out.stderr
            return True

        # Answered: the refusal is our check's, naming the field (the apiserver's certificate passed).
        await eventually(
            lambda: denied_by(
                "right",
                f'admission webhook "{WEBHOOK_NAME}" denied the request: ClusterOverridePolicy bad-right',
            ),
            timeout=60,
            what="the webhook with the apiserver's CA answering the apiserver",
        )
        # Refused: the apiserver cannot call the webhook at all (403 before any check ran).
        await eventually(
            lambda: denied_by("wrong", f'failed calling webhook "{WEBHOOK_NAME}"'),
            timeout=60,
            what="the webhook expecting another CA refusing the apiserver",
        )
        lines = window.lines()
        assert any("rejected POST /validate" in line and "issued by another CA" in line for line in lines), (
            lines
        )
        assert (
            answered.metric(
                "federation_webhook_requests_total", kind="ClusterOverridePolicy", allowed="false"
            )
            > 0
        )
        assert refused.metric("federation_webhook_requests_total", kind="ClusterOverridePolicy") == 0
