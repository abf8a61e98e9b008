"""The admission webhook through a real apiserver: the hub calls `federation run` over HTTPS.

Two controllers share one hub id: the first leads, the second is a standby, and the webhook
the hub calls is the standby's (admission must not depend on leadership). The
ValidatingWebhookConfiguration is cluster-wide on the session's shared hub, so it has a unique
name, applies only to objects labelled with this module's token (objectSelector), uses
``failurePolicy: Fail`` (so a refusal is observable, not ignored) and is deleted at the end.

Also here: the representative templates the JSON patch check assumes (`KIND_SHAPES`) hold for
minimal objects as a real apiserver stores them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from federation.api import ResourceSelector
from federation.devfleet import HUB, LocalFleet
from federation.devfleet.procs import free_port
from federation.server import WEBHOOK_NAME, CertPaths, generate_certs, webhook_configuration
from federation.translate import prune_template
from federation.validation.partial import contradictions
from federation.validation.shapes import KIND_SHAPES, representative
from tests.controllerhelpers import ControllerProcess
from tests.kubehelpers import api_client, crd_manifest, create_crd_and_wait, eventually
from tests.policy_cases import ESCALATION
from tests.storehelpers import create_database, drop_database

API = "federation.io/v1alpha1"
TOKEN = secrets.token_hex(4)
LABEL = "test.federation.io/webhook"
LABELS = {LABEL: TOKEN}
DENIED = f'admission webhook "{WEBHOOK_NAME}" denied the request: '


@dataclass
class Webhook:
    fleet: LocalFleet
    standby: ControllerProcess
    certs: CertPaths


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return generate_certs(tmp_path_factory.mktemp("webhook-certs"), names=["127.0.0.1"])


@pytest.fixture(scope="module")
async def webhook(
    fleet: LocalFleet, hub_crds: None, certs: CertPaths, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Webhook]:
    name = f"webhook_{TOKEN}"
    url = await create_database(fleet.database_url, name)
    logs = tmp_path_factory.mktemp("controllers")
    common = {"database_url": url, "hub_id": f"itest-webhook-{TOKEN}"}
    leader = ControllerProcess(fleet, log_path=logs / "leader.log", extra_args=["--no-webhook"], **common)
    standby = ControllerProcess(
        fleet,
        log_path=logs / "standby.log",
        extra_args=["--tls-cert", str(certs.tls_cert), "--tls-key", str(certs.tls_key)],
        scheme="https",
        ca_file=certs.ca_cert,
        **common,
    )
    config = webhook_configuration(
        ca_bundle=certs.ca_bundle(),
        url=f"https://127.0.0.1:{standby.port}/validate",
        name=f"federation-test-{TOKEN}",
        failure_policy="Fail",
        object_selector={"matchLabels": LABELS},
    )
    try:
        await anyio.to_thread.run_sync(leader.start)  # ready only once it leads (informers synced)
        await anyio.to_thread.run_sync(standby.start)
        assert "standby (not the leader)" in _readyz(standby)
        await _create_webhook_configuration(fleet, config)
        # The apiserver picks a new configuration up asynchronously: wait until it is in force.
        await eventually(
            lambda: _dry_run_denied(fleet, _override("probe", None, [{"op": "remove", "path": "/status"}])),
            timeout=60,
            what="the webhook configuration in force",
        )
        yield Webhook(fleet, standby, certs)
    finally:
        await _delete_webhook_configuration(fleet, config["metadata"]["name"])
        await anyio.to_thread.run_sync(standby.stop)
        await anyio.to_thread.run_sync(leader.stop)
        print(f"controller logs: {logs}")
        await drop_database(fleet.database_url, name)


def _readyz(proc: ControllerProcess) -> str:
    with proc._open("/readyz?verbose", timeout=5) as resp:
        return str(resp.read().decode())


async def _create_webhook_configuration(fleet: LocalFleet, config: dict[str, Any]) -> None:
    async with api_client(fleet.clusters[HUB]) as api:
        await client.AdmissionregistrationV1Api(api).create_validating_webhook_configuration(config)


async def _delete_webhook_configuration(fleet: LocalFleet, name: str) -> None:
    with anyio.CancelScope(shield=True):
        async with api_client(fleet.clusters[HUB]) as api:
            with contextlib.suppress(ApiException):
                await client.AdmissionregistrationV1Api(api).delete_validating_webhook_configuration(name)


# -- objects ------------------------------------------------------------------------------------


def _override(
    name: str, namespace: str | None, patch: list[dict[str, Any]], **selector: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"{name}-{TOKEN}", "labels": dict(LABELS)}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": API,
        "kind": "OverridePolicy" if namespace is not None else "ClusterOverridePolicy",
        "metadata": meta,
        "spec": {
            "resourceSelectors": [selector or {"apiVersion": "apps/v1", "kind": "Deployment"}],
            "rules": [{"overriders": {"jsonPatch": patch}}],
        },
    }


def _cpp(
    name: str, *, priority: int, namespace: str = "nowhere", labels: dict[str, str] = LABELS
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ClusterPropagationPolicy",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "priority": priority,
            "resourceSelectors": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "namespace": namespace,
                    "name": f"web-{TOKEN}",
                }
            ],
        },
    }


def _member(name: str, secret: str, *, key: str = "kubeconfig") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "MemberCluster",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {"kubeconfigSecretRef": {"namespace": "fleet-system", "name": secret, "key": key}},
    }


def _plural(obj: dict[str, Any]) -> str:
    from federation.api import KINDS

    return KINDS[obj["kind"]].crd.plural


async def _create(fleet: LocalFleet, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    async with api_client(fleet.clusters[HUB]) as api:
        custom = client.CustomObjectsApi(api)
        namespace = obj["metadata"].get("namespace")
        extra = {"dry_run": "All"} if dry_run else {}
        if namespace:
            created = await custom.create_namespaced_custom_object(
                "federation.io", "v1alpha1", namespace, _plural(obj), obj, **extra
            )
        else:
            created = await custom.create_cluster_custom_object(
                "federation.io", "v1alpha1", _plural(obj), obj, **extra
            )
        return dict(created)


def _message(exc: ApiException) -> str:
    """The Status message of an apiserver refusal."""
    try:
        return str(json.loads(exc.body).get("message", ""))
    except (TypeError, ValueError):
        return str(exc.body)


async def _dry_run_denied(fleet: LocalFleet, obj: dict[str, Any]) -> bool:
    try:
        await _create(fleet, obj, dry_run=True)
    except ApiException as exc:
        return DENIED in _message(exc)
    return False


async def _delete(fleet: LocalFleet, obj: dict[str, Any]) -> None:
    with anyio.CancelScope(shield=True):
        async with api_client(fleet.clusters[HUB]) as api:
            custom = client.CustomObjectsApi(api)
            namespace = obj["metadata"].get("namespace")
            name = obj["metadata"]["name"]
            with contextlib.suppress(ApiException):
                if namespace:
                    await custom.delete_namespaced_custom_object(
                        "federation.io", "v1alpha1", namespace, _plural(obj), name
                    )
                else:
                    await custom.delete_cluster_custom_object("federation.io", "v1alpha1", _plural(obj), name)


@contextlib.asynccontextmanager
async def _cleanup(fleet: LocalFleet) -> AsyncIterator[list[dict[str, Any]]]:
    """Objects appended to the yielded list are deleted at the end (cluster-scoped ones are
    not removed with the test's namespace)."""
    created: list[dict[str, Any]] = []
    try:
        yield created
    finally:
        for obj in created:
            await _delete(fleet, obj)


@dataclass
class Applied:
    ok: bool
    out: str


def _kubectl(fleet: LocalFleet, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubectl"), "--context", HUB, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ, KUBECONFIG=str(fleet.kubeconfig)),
        timeout=60,
    )


async def apply(fleet: LocalFleet, obj: dict[str, Any]) -> Applied:
    """`kubectl apply` as a fleet admin runs it; the apiserver's refusal is in stderr."""
    proc = await anyio.to_thread.run_sync(lambda: _kubectl(fleet, "apply", "-f", "-", stdin=json.dumps(obj)))
    return Applied(proc.returncode == 0, proc.stdout + proc.stderr)


# -- 1. JSON patches ------------------------------------------------------------------------------

BAD_PATCHES = [
    (
        "add-without-value",
        {"namespace": True},
        [{"op": "add", "path": "/spec/paused"}],
        "spec.rules[0].overriders.jsonPatch[0]: value is required for add, replace and test",
    ),
    (
        "move-into-its-own-child",
        {"namespace": True},
        [{"op": "move", "from": "/spec/template", "path": "/spec/template/spec/x"}],
        "spec.rules[0].overriders.jsonPatch[0] (move /spec/template/spec/x): fails on every apps/v1 "
        "Deployment that spec.resourceSelectors[0] selects: cannot move /spec/template into its own child",
    ),
    (
        "replicas-of-a-configmap",
        {"namespace": False, "apiVersion": "v1", "kind": "ConfigMap"},
        [{"op": "replace", "path": "/spec/replicas", "value": 2}],
        "spec.rules[0].overriders.jsonPatch[0] (replace /spec/replicas): fails on every v1 ConfigMap that "
        "spec.resourceSelectors[0] selects: path /spec does not exist",
    ),
    (
        "test-after-add",
        {"namespace": True},
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}},
            {"op": "test", "path": "/metadata/annotations/a", "value": "2"},
        ],
        "spec.rules[0].overriders.jsonPatch[1] (test /metadata/annotations/a): fails on every apps/v1 "
        "Deployment that spec.resourceSelectors[0] selects: "
        "test failed: /metadata/annotations/a is '1', not '2'",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "patch", "field"), [c[1:] for c in BAD_PATCHES], ids=[c[0] for c in BAD_PATCHES]
)
async def test_a_malformed_json_patch_is_refused_naming_the_field(
    webhook: Webhook, namespace: str, where: dict[str, Any], patch: list[dict[str, Any]], field: str
) -> None:
    selector = {k: v for k, v in where.items() if k != "namespace"}
    obj = _override("bad", namespace if where["namespace"] else None, patch, **selector)
    async with _cleanup(webhook.fleet) as created:
        created.append(obj)
        applied = await apply(webhook.fleet, obj)
        assert not applied.ok, applied.out
        ref = (
            f"{obj['kind']} {namespace}/{obj['metadata']['name']}"
            if where["namespace"]
            else (f"{obj['kind']} {obj['metadata']['name']}")
        )
        assert f"{DENIED}{ref}: {field}" in applied.out, applied.out


async def test_an_override_that_changes_what_the_copy_is_is_refused_in_the_translators_words(
    webhook: Webhook, namespace: str
) -> None:
    """Issue 10's escalation, refused at the door: the same rule and words as the translator's."""
    obj = _override("escalate", namespace, ESCALATION, apiVersion="v1", kind="ConfigMap")
    async with _cleanup(webhook.fleet) as created:
        created.append(obj)
        applied = await apply(webhook.fleet, obj)
        assert not applied.ok, applied.out
        ref = f"OverridePolicy {namespace}/escalate-{TOKEN}"
        assert (
            f"{DENIED}{ref}: spec.rules[0].overriders.jsonPatch[0] (replace /apiVersion) changes apiVersion: "
            "an override never changes a copy's identity (group, kind, namespace, name)"
        ) in applied.out, applied.out


async def test_a_pointer_that_is_not_one_is_refused_by_the_schema_first(
    webhook: Webhook, namespace: str
) -> None:
    """The CRD's pattern refuses it before admission webhooks run; the webhook names the same field."""
    obj = _override("pointer", namespace, [{"op": "remove", "path": "spec/replicas"}])
    applied = await apply(webhook.fleet, obj)
    assert not applied.ok
    assert "spec.rules[0].overriders.jsonPatch[0].path" in applied.out, applied.out
    assert DENIED not in applied.out


async def test_a_valid_override_is_admitted(webhook: Webhook, namespace: str) -> None:
    patch = [
        {"op": "replace", "path": "/spec/replicas", "value": 2},
        {"op": "add", "path": "/metadata/labels/cluster", "value": "${CLUSTER_NAME}"},
        {"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [{"name": "A", "value": "1"}]},
    ]
    obj = _override("good", namespace, patch)
    async with _cleanup(webhook.fleet) as created:
        created.append(obj)
        applied = await apply(webhook.fleet, obj)
        assert applied.ok, applied.out


async def test_a_patch_an_earlier_policy_prepares_for_is_admitted(webhook: Webhook, namespace: str) -> None:
    """A ClusterOverridePolicy applies first: one that adds /spec to a ConfigMap makes the
    namespace's `replace /spec/replicas` possible, so the webhook reads the hub's policies."""
    prepare = _override(
        "prepare",
        None,
        [{"op": "add", "path": "/spec", "value": {"replicas": 1}}],
        apiVersion="v1",
        kind="ConfigMap",
    )
    prepare["spec"]["resourceSelectors"][0]["namespace"] = namespace
    after = _override(
        "after",
        namespace,
        [{"op": "replace", "path": "/spec/replicas", "value": 2}],
        apiVersion="v1",
        kind="ConfigMap",
    )
    async with _cleanup(webhook.fleet) as created:
        created += [after, prepare]
        refused = await apply(webhook.fleet, after)
        assert not refused.ok and "path /spec does not exist" in refused.out, refused.out
        assert (await apply(webhook.fleet, prepare)).ok
        admitted = await apply(webhook.fleet, after)
        assert admitted.ok, admitted.out


# -- 2. equal priorities --------------------------------------------------------------------------


async def test_two_cluster_policies_with_one_priority_on_the_same_resource_are_refused(
    webhook: Webhook, namespace: str
) -> None:
    first = _cpp(f"first-{TOKEN}", priority=7, namespace=namespace)
    second = _cpp(f"second-{TOKEN}", priority=7, namespace=namespace)
    async with _cleanup(webhook.fleet) as created:
        created += [first, second]
        assert (await apply(webhook.fleet, first)).ok
        refused = await apply(webhook.fleet, second)
        assert not refused.ok
        assert (
            f"{DENIED}ClusterPropagationPolicy second-{TOKEN}: spec.priority: 7 is also the priority of "
            f"ClusterPropagationPolicy first-{TOKEN}, and spec.resourceSelectors[0]"
        ) in refused.out, refused.out

        second["spec"]["priority"] = 8
        admitted = await apply(webhook.fleet, second)
        assert admitted.ok, admitted.out
        # An UPDATE into the tie is refused too, and the stored policy keeps its priority.
        second["spec"]["priority"] = 7
        assert not (await apply(webhook.fleet, second)).ok
        # Another resource at the same priority is no tie.
        other = _cpp(f"other-{TOKEN}", priority=7, namespace=f"{namespace}-other")
        created.append(other)
        assert (await apply(webhook.fleet, other)).ok


# -- 3. MemberCluster Secrets ---------------------------------------------------------------------


async def test_a_member_cluster_whose_secret_does_not_exist_is_refused(webhook: Webhook) -> None:
    fleet = webhook.fleet
    secret_name = f"kubeconfig-{TOKEN}"
    missing = _member(f"mc-missing-{TOKEN}", f"absent-{TOKEN}")
    wrong_key = _member(f"mc-key-{TOKEN}", secret_name, key="config")
    good = _member(f"mc-good-{TOKEN}", secret_name)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        # An address nothing answers on: the leader may try it, and the member is deleted below.
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    async with api_client(fleet.clusters[HUB]) as api:
        core = client.CoreV1Api(api)
        with contextlib.suppress(ApiException):
            await core.create_namespace({"metadata": {"name": "fleet-system"}})
        await core.create_namespaced_secret(
            "fleet-system",
            {"metadata": {"name": secret_name}, "stringData": {"kubeconfig": json.dumps(kubeconfig)}},
        )
    try:
        async with _cleanup(fleet) as created:
            created += [missing, wrong_key, good]
            refused = await apply(fleet, missing)
            assert not refused.ok
            assert (
                f"{DENIED}MemberCluster mc-missing-{TOKEN}: spec.kubeconfigSecretRef: "
                f"Secret fleet-system/absent-{TOKEN} does not exist"
            ) in refused.out, refused.out
            refused = await apply(fleet, wrong_key)
            assert not refused.ok
            assert (
                f"{DENIED}MemberCluster mc-key-{TOKEN}: spec.kubeconfigSecretRef.key: "
                f"Secret fleet-system/{secret_name} has no key 'config' (it has: kubeconfig)"
            ) in refused.out, refused.out
            admitted = await apply(fleet, good)
            assert admitted.ok, admitted.out
    finally:
        async with api_client(fleet.clusters[HUB]) as api:
            with contextlib.suppress(ApiException):
                await client.CoreV1Api(api).delete_namespaced_secret(secret_name, "fleet-system")


async def test_answers_are_counted_on_the_standby(webhook: Webhook, namespace: str) -> None:
    before = webhook.standby.metric(
        "federation_webhook_requests_total", kind="OverridePolicy", allowed="false"
    )
    applied = await apply(
        webhook.fleet, _override("counted", namespace, [{"op": "remove", "path": "/status"}])
    )
    assert not applied.ok
    after = webhook.standby.metric(
        "federation_webhook_requests_total", kind="OverridePolicy", allowed="false"
    )
    assert after == before + 1
    assert (
        webhook.standby.metric("federation_webhook_request_duration_seconds_count", kind="OverridePolicy") > 0
    )


# -- failurePolicy: Ignore --------------------------------------------------------------------------


async def test_with_failure_policy_ignore_a_down_webhook_does_not_block_the_hub(
    fleet: LocalFleet, hub_crds: None, certs: CertPaths
) -> None:
    """No webhook answers at this URL. With Fail the hub refuses (proof the apiserver calls
    it); switched to Ignore, as deploy/ ships it, the same valid policy is admitted."""
    token = secrets.token_hex(4)
    labels = {LABEL: f"down-{token}"}
    config = webhook_configuration(
        ca_bundle=certs.ca_bundle(),
        url=f"https://127.0.0.1:{free_port()}/validate",
        name=f"federation-test-down-{token}",
        failure_policy="Fail",
        object_selector={"matchLabels": labels},
    )
    policy = _cpp(f"down-{token}", priority=0, namespace=f"down-{token}", labels=labels)
    name = config["metadata"]["name"]
    try:
        await _create_webhook_configuration(fleet, config)

        async def refused() -> bool:
            try:
                await _create(fleet, policy, dry_run=True)
            except ApiException as exc:
                return "failed calling webhook" in _message(exc)
            return False

        await eventually(refused, timeout=60, what="the unreachable webhook refusing under Fail")
        async with api_client(fleet.clusters[HUB]) as api:
            await client.AdmissionregistrationV1Api(api).patch_validating_webhook_configuration(
                name, [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]
            )

        async def admitted() -> bool:
            try:
                await _create(fleet, policy, dry_run=True)
            except ApiException:
                return False
            return True

        await eventually(admitted, timeout=60, what="the unreachable webhook ignored under Ignore")
        async with _cleanup(fleet) as created:
            created.append(policy)
            applied = await apply(fleet, policy)
            assert applied.ok, applied.out
    finally:
        await _delete_webhook_configuration(fleet, name)


# -- the representative templates, against a real apiserver ----------------------------------------

POD_SPEC = {"containers": [{"name": "c", "image": "nginx:1.27"}]}
LABELLED = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
MINIMAL: dict[tuple[str, str], dict[str, Any]] = {
    ("apps/v1", "Deployment"): {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": LABELLED}},
    ("apps/v1", "StatefulSet"): {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": LABELLED}},
    ("apps/v1", "DaemonSet"): {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": LABELLED}},
    ("apps/v1", "ReplicaSet"): {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": LABELLED}},
    ("batch/v1", "Job"): {"spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
    ("batch/v1", "CronJob"): {
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
        }
    },
    ("v1", "Pod"): {"spec": POD_SPEC},
    ("v1", "Service"): {"spec": {"ports": [{"port": 80}]}},
    ("v1", "ConfigMap"): {},
    ("v1", "Secret"): {},
    ("v1", "ServiceAccount"): {},
}


async def test_kind_shapes_hold_for_minimal_objects_stored_by_the_apiserver(
    fleet: LocalFleet, namespace: str
) -> None:
    assert set(MINIMAL) == set(KIND_SHAPES)
    for (api_version, kind), body in MINIMAL.items():
        meta = {"name": "minimal", "namespace": namespace}
        applied = await apply(fleet, {"apiVersion": api_version, "kind": kind, "metadata": meta, **body})
        assert applied.ok, applied.out
        got = await anyio.to_thread.run_sync(
            lambda k=kind: _kubectl(fleet, "-n", namespace, "get", k, "minimal", "-o", "json")
        )
        assert got.returncode == 0, got.stderr
        template = prune_template(json.loads(got.stdout))
        selector = ResourceSelector.model_validate(
            {"apiVersion": api_version, "kind": kind, "name": "minimal"}
        )
        shape = representative(selector, namespace=namespace)
        assert contradictions(shape, template) == [], (kind, template)


async def test_a_custom_resource_has_only_object_meta_in_metadata(fleet: LocalFleet, namespace: str) -> None:
    """What the representative template of any other kind assumes: even a CRD that keeps every
    unknown field has its metadata pruned to ObjectMeta's, and no status reaches a member."""
    group = f"wh{TOKEN}.example.com"
    crd = crd_manifest(group, "Gadget", "gadgets")
    await create_crd_and_wait(fleet.clusters[HUB], crd)
    try:
        obj = {
            "apiVersion": f"{group}/v1",
            "kind": "Gadget",
            "metadata": {"name": "g", "namespace": namespace, "bogus": "x"},
            "spec": {"size": 1},
            "status": {"ready": True},
        }
        # kubectl refuses the unknown metadata field by default; without that, it is pruned.
        created = await anyio.to_thread.run_sync(
            lambda: _kubectl(fleet, "create", "--validate=false", "-f", "-", stdin=json.dumps(obj))
        )
        assert created.returncode == 0, created.stderr
        got = await anyio.to_thread.run_sync(
            lambda: _kubectl(fleet, "-n", namespace, "get", f"gadgets.{group}", "g", "-o", "json")
        )
        stored = json.loads(got.stdout)
        assert "bogus" not in stored["metadata"]
        selector = ResourceSelector.model_validate({"apiVersion": f"{group}/v1", "kind": "Gadget"})
        shape = representative(selector, namespace=namespace)
        assert contradictions(shape, prune_template(stored)) == []
    finally:
        async with api_client(fleet.clusters[HUB]) as api:
            with contextlib.suppress(ApiException):
                ext = client.ApiextensionsV1Api(api)
                await ext.delete_custom_resource_definition(crd["metadata"]["name"])
