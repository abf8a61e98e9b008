"""Tenants, credentials and member clusters cannot reach past their own: the attacks of issue 10,
performed against the real fleet (a hub, three members, Postgres, the controller as a process).

The tenant is ``mallory``: on the hub she may write ConfigMaps, Secrets, Deployments and the
namespaced federation.io policies of her own namespace, and nothing else (a Role, bound to her;
every tenant action below is done as her, by impersonation). Each test performs an attack as an
attacker would, then asserts what the members hold and what the controller reports.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from federation.devfleet import LocalFleet
from tests.controllerhelpers import ControllerProcess, apply, get, kubectl, running_controller
from tests.kubehelpers import eventually
from tests.policy_cases import ESCALATION, TENANT
from tests.storehelpers import query

pytestmark = pytest.mark.security

MEMBERS = {"member-1": {"region": "eu"}, "member-2": {"region": "us"}, "member-3": {"region": "ap"}}


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    log_dir = tmp_path_factory.mktemp("controller")
    async with running_controller(
        fleet, hub_id="sec-hub", log_dir=log_dir, labels=MEMBERS, extra_args=["--purge-interval", "1"]
    ) as proc:
        yield proc


@pytest.fixture
def tenant(fleet: LocalFleet, namespace: str) -> str:
    """``mallory`` may write templates and namespaced policies in ``namespace`` on the hub only."""
    apply(
        fleet,
        "hub",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "tenant", "namespace": namespace},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["*"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
                {
                    "apiGroups": ["federation.io"],
                    "resources": ["propagationpolicies", "overridepolicies"],
                    "verbs": ["*"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "tenant", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
            "subjects": [{"kind": "User", "name": TENANT, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    return TENANT


def as_tenant(fleet: LocalFleet, *objs: dict[str, Any]) -> None:
    kubectl(
        fleet,
        "hub",
        "--as",
        TENANT,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}),
    )


async def seen_by_the_controller(fleet: LocalFleet, namespace: str, *overrides: str) -> None:
    """Wait until the controller holds these OverridePolicies (it has written their status):
    a propagation policy created after that can never place a copy without them. (Created in
    one `kubectl apply`, the two kinds reach the controller through separate watches, in no
    particular order.)"""

    async def seen() -> bool:
        for name in overrides:
            condition(get(fleet, "hub", "overridepolicy", name, namespace), "ClustersResolved")
        return True

    await eventually(seen, timeout=30, what=f"the controller holding {', '.join(overrides)}")


def configmap(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data or {"k": "v"},
    }


def propagation(name: str, namespace: str, selectors: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"resourceSelectors": selectors, **spec},
    }


def override(
    name: str, namespace: str | None, selector: dict[str, Any], overriders: dict[str, Any]
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "OverridePolicy" if namespace is not None else "ClusterOverridePolicy",
        "metadata": meta,
        "spec": {"resourceSelectors": [selector], "rules": [{"overriders": overriders}]},
    }


async def works_of(proc: ControllerProcess, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    rows = await query(
        proc.database_url,
        "SELECT w.cluster, w.state::text AS state, w.last_error, w.desired FROM works w "
        "JOIN resources r ON r.id = w.resource_id WHERE r.namespace = $1 AND r.name = $2",
        namespace,
        name,
    )
    return {r["cluster"]: dict(r) for r in rows}


async def refused_everywhere(proc: ControllerProcess, namespace: str, name: str, *needles: str) -> None:
    """Every member's work of the template failed with a message holding every needle."""

    async def failed() -> bool:
        works = await works_of(proc, namespace, name)
        assert set(works) == set(MEMBERS), works
        for cluster, work in works.items():
            assert work["state"] == "failed", (cluster, work)
            for needle in needles:
                assert needle in (work["last_error"] or ""), (cluster, work["last_error"])
        return True

    await eventually(failed, timeout=30, what=f"the works of {name} refused in every member")


def can_i_everything(fleet: LocalFleet, cluster: str, user: str) -> str:
    return kubectl(fleet, cluster, "auth", "can-i", "*", "*", "--as", user, check=False).strip()


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    found = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
    assert kind in found, (obj or {}).get("status")
    return dict(found[kind])


# -- finding 1: a tenant becomes cluster-admin on every member -----------------------------------


async def test_a_json_patch_cannot_turn_a_tenants_configmap_into_a_clusterrolebinding(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str, tenant: str
) -> None:
    name = f"esc-{namespace}"[:63]
    for cluster in MEMBERS:
        assert can_i_everything(fleet, cluster, tenant) == "no"
    as_tenant(
        fleet,
        configmap(name, namespace),
        override("evil", namespace, {"apiVersion": "v1", "kind": "ConfigMap"}, {"jsonPatch": ESCALATION}),
    )
    await seen_by_the_controller(fleet, namespace, "evil")
    as_tenant(fleet, propagation("p", namespace, [{"apiVersion": "v1", "kind": "ConfigMap", "name": name}]))
    await refused_everywhere(
        controller,
        namespace,
        name,
        f"OverridePolicy {namespace}/evil rule[0].overriders.jsonPatch changes apiVersion",
        "an override never changes a copy's identity",
    )
    for cluster in MEMBERS:
        assert get(fleet, cluster, "clusterrolebinding", name) is None, cluster
        assert get(fleet, cluster, "configmap", name, namespace) is None, cluster  # nothing at all
        assert can_i_everything(fleet, cluster, tenant) == "no", cluster
    # What the tenant sees: the failure on her policy, and an event naming the rule.
    policy = get(fleet, "hub", "propagationpolicy", "p", namespace)

    async def reported() -> bool:
        nonlocal policy
        policy = get(fleet, "hub", "propagationpolicy", "p", namespace)
        assert condition(policy, "federation.io/Propagated")["reason"] == "ApplyFailed"
        return True

    await eventually(reported, timeout=30, what="ApplyFailed on the tenant's policy")
    events = await query(
        controller.database_url,
        "SELECT type, message FROM events WHERE namespace = $1 AND name = $2",
        namespace,
        name,
    )
    assert {e["type"] for e in events} == {"ApplyFailed"}
    assert all("changes apiVersion" in e["message"] for e in events)


async def test_a_merge_patch_cannot_adopt_kube_system_coredns(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str, tenant: str
) -> None:
    """With conflictResolution Overwrite, a copy moved to kube-system/coredns would be adopted
    (forced apply, stamped ours), and deleting the template would delete it from every member."""
    before = {}
    for cluster in MEMBERS:
        kubectl(
            fleet,
            cluster,
            "-n",
            "kube-system",
            "create",
            "configmap",
            "coredns",
            "--from-literal=Corefile=. { forward . 1.1.1.1 }",
            check=False,  # left by an earlier run of this test on the session's fleet
        )
        live = get(fleet, cluster, "configmap", "coredns", "kube-system")
        assert live is not None
        before[cluster] = live
    as_tenant(
        fleet,
        configmap("dns", namespace, Corefile=". { forward . 6.6.6.6 }"),
        propagation(
            "p",
            namespace,
            [{"apiVersion": "v1", "kind": "ConfigMap", "name": "dns"}],
            conflictResolution="Overwrite",
        ),
        override(
            "evil",
            namespace,
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "dns"},
            {"mergePatch": {"metadata": {"namespace": "kube-system", "name": "coredns"}}},
        ),
    )
    await refused_everywhere(controller, namespace, "dns", "mergePatch changes metadata.namespace")
    kubectl(fleet, "hub", "--as", tenant, "-n", namespace, "delete", "configmap", "dns")

    async def row_gone() -> bool:
        rows = await query(
            controller.database_url,
            "SELECT 1 FROM resources WHERE namespace = $1 AND name = 'dns'",
            namespace,
        )
        return not rows

    await eventually(row_gone, timeout=30, what="the deleted template's row purged")
    for cluster in MEMBERS:
        after = get(fleet, cluster, "configmap", "coredns", "kube-system")
        assert after is not None, f"coredns deleted in {cluster}"
        assert after["metadata"]["resourceVersion"] == before[cluster]["metadata"]["resourceVersion"], cluster
        assert not any(k.startswith("federation.io/") for k in after["metadata"].get("labels") or {})


async def test_what_an_attacker_tries_next_is_refused_too(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str, tenant: str
) -> None:
    """generateName, owner references to hub objects, finalizers, forged ownership labels, an
    RBAC grant widened by a namespaced override, a Secret turned into a token Secret, and the
    fleet admin's own ClusterOverridePolicy changing a kind: each refused, naming the field."""
    hub_ns = get(fleet, "hub", "namespace", namespace)
    assert hub_ns is not None
    attempts = {
        "gen": ({"mergePatch": {"metadata": {"generateName": "x-"}}}, "changes metadata.generateName"),
        "owner": (
            {
                "jsonPatch": [
                    {
                        "op": "add",
                        "path": "/metadata/ownerReferences",
                        "value": [
                            {
                                "apiVersion": "v1",
                                "kind": "Namespace",
                                "name": namespace,
                                "uid": hub_ns["metadata"]["uid"],
                                "blockOwnerDeletion": True,
                            }
                        ],
                    }
                ]
            },
            "changes metadata.ownerReferences",
        ),
        "fin": (
            {"mergePatch": {"metadata": {"finalizers": ["example.com/never"]}}},
            "changes metadata.finalizers",
        ),
        "stamp": (
            {"labels": {"set": {"federation.io/hub": "another-hub"}}},
            "metadata.labels[federation.io/hub]",
        ),
    }
    objs: list[dict[str, Any]] = []
    for name, (overriders, _) in attempts.items():
        objs.append(configmap(name, namespace))
        objs.append(
            override(
                f"o-{name}", namespace, {"apiVersion": "v1", "kind": "ConfigMap", "name": name}, overriders
            )
        )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "tok", "namespace": namespace},
            "stringData": {"a": "b"},
        }
    )
    objs.append(
        override(
            "o-tok",
            namespace,
            {"apiVersion": "v1", "kind": "Secret", "name": "tok"},
            {
                "mergePatch": {
                    "type": "kubernetes.io/service-account-token",
                    "metadata": {"annotations": {"kubernetes.io/service-account.name": "default"}},
                }
            },
        )
    )
    as_tenant(fleet, *objs)
    # A RoleBinding template the hub's escalation check allowed (its author may grant view),
    # widened to cluster-admin by the tenant's own OverridePolicy.
    apply(
        fleet,
        "hub",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "viewers", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": tenant, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    as_tenant(
        fleet,
        override(
            "o-rbac",
            namespace,
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"},
            {"jsonPatch": [{"op": "replace", "path": "/roleRef/name", "value": "cluster-admin"}]},
        ),
    )
    await seen_by_the_controller(fleet, namespace, "o-rbac", "o-tok", *(f"o-{name}" for name in attempts))
    as_tenant(
        fleet,
        propagation(
            "p",
            namespace,
            [
                {"apiVersion": "v1", "kind": "ConfigMap"},
                {"apiVersion": "v1", "kind": "Secret", "name": "tok"},
            ],
        ),
        propagation(
            "rbac", namespace, [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"}]
        ),
    )
    for name, (_, needle) in attempts.items():
        await refused_everywhere(
            controller, namespace, name, f"OverridePolicy {namespace}/o-{name} rule[0]", needle
        )
        for cluster in MEMBERS:
            assert get(fleet, cluster, "configmap", name, namespace) is None
    await refused_everywhere(
        controller,
        namespace,
        "tok",
        "never propagated",
        "is a credential (type kubernetes.io/service-account-token)",
    )
    await refused_everywhere(
        controller, namespace, "viewers", "changes roleRef: a namespaced OverridePolicy may not"
    )
    for cluster in MEMBERS:
        assert get(fleet, cluster, "secret", "tok", namespace) is None
        assert get(fleet, cluster, "rolebinding", "viewers", namespace) is None
        ok = kubectl(
            fleet, cluster, "auth", "can-i", "delete", "secrets", "-n", namespace, "--as", tenant, check=False
        )
        assert ok.strip() == "no", cluster

    # The fleet admin's ClusterOverridePolicy is held to the identity rule as well.
    cluster_policy = override(
        f"kind-{namespace}"[:63],
        None,
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "plain"},
        {"jsonPatch": [{"op": "replace", "path": "/kind", "value": "Secret"}]},
    )
    apply(fleet, "hub", cluster_policy, configmap("plain", namespace))
    try:
        await refused_everywhere(controller, namespace, "plain", "rule[0].overriders.jsonPatch changes kind")
    finally:
        kubectl(
            fleet,
            "hub",
            "delete",
            "clusteroverridepolicy",
            cluster_policy["metadata"]["name"],
            "--ignore-not-found",
        )
    for cluster in MEMBERS:
        assert get(fleet, cluster, "secret", "plain", namespace) is None


# -- finding 2: member credentials propagate ----------------------------------------------------


async def test_credentials_never_propagate_whatever_selects_them(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    """A ClusterPropagationPolicy naming the credentials namespace and the tenant's namespace,
    for every Secret: member kubeconfigs (where they belong, and a decoy MemberCluster's in a
    tenant namespace), and service-account tokens stay on the hub; an ordinary Secret goes."""
    kubeconfig = base64.b64encode(fleet.clusters["member-1"].kubeconfig.read_bytes()).decode()
    decoy = f"decoy-{namespace}"[:63]
    apply(
        fleet,
        "hub",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "plain", "namespace": namespace},
            "stringData": {"a": "b"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "token",
                "namespace": namespace,
                "annotations": {"kubernetes.io/service-account.name": "default"},
            },
            "type": "kubernetes.io/service-account-token",
            "data": {"token": base64.b64encode(b"a-token").decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": decoy, "namespace": namespace},
            "data": {"kubeconfig": kubeconfig},
        },
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "MemberCluster",
            "metadata": {"name": decoy},
            "spec": {
                "kubeconfigSecretRef": {"namespace": namespace, "name": decoy, "key": "kubeconfig"},
                "taints": [{"key": "test/decoy", "effect": "NoSchedule"}],
            },
        },
    )
    cpp = {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "ClusterPropagationPolicy",
        "metadata": {"name": f"secrets-{namespace}"[:63]},
        "spec": {
            "resourceSelectors": [
                {"apiVersion": "v1", "kind": "Secret", "namespace": "fleet-system"},
                {"apiVersion": "v1", "kind": "Secret", "namespace": namespace},
            ],
            "placement": {"clusterNames": list(MEMBERS)},
        },
    }
    apply(fleet, "hub", cpp)
    try:

        async def plain_everywhere() -> bool:
            return all(get(fleet, c, "secret", "plain", namespace) is not None for c in MEMBERS)

        await eventually(plain_everywhere, timeout=30, what="the ordinary Secret in every member")

        async def skipped() -> bool:
            cond = condition(
                get(fleet, "hub", "clusterpropagationpolicy", cpp["metadata"]["name"]), "Skipped"
            )
            assert cond["status"] == "True" and cond["reason"] == "ProtectedResources", cond
            message = cond["message"]
            assert "holds member credentials (--credentials-namespace)" in message, message
            assert f"Secret.core {namespace}/{decoy} holds a member cluster's kubeconfig" in message, message
            assert f"Secret.core {namespace}/token is a credential" in message, message
            return True

        await eventually(skipped, timeout=30, what="the Skipped condition naming every protected Secret")
        mc = get(fleet, "hub", "membercluster", decoy)
        ready = condition(mc, "Ready")
        assert ready["status"] == "False" and "is not a credentials namespace" in ready["message"], ready
        for cluster in MEMBERS:
            for secret_ns, secret in [("fleet-system", m) for m in MEMBERS] + [
                (namespace, "token"),
                (namespace, decoy),
            ]:
                assert get(fleet, cluster, "secret", secret, secret_ns) is None, (cluster, secret_ns, secret)
        stored = await query(
            controller.database_url,
            "SELECT namespace, name FROM resources WHERE namespace = 'fleet-system' OR name IN ($1, 'token')",
            decoy,
        )
        assert stored == [], "protected templates are not even stored"
    finally:
        kubectl(
            fleet, "hub", "delete", "clusterpropagationpolicy", cpp["metadata"]["name"], "--ignore-not-found"
        )
        kubectl(fleet, "hub", "delete", "membercluster", decoy, "--ignore-not-found", "--timeout=60s")


async def test_propagate_dependencies_does_not_pull_a_token_secret(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str, tenant: str
) -> None:
    token = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "sa-token",
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": "default"},
        },
        "type": "kubernetes.io/service-account-token",
    }
    apply(fleet, "hub", token)  # the tenant cannot read token Secrets' values, but can reference one
    web = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "app", "image": "nginx"}],
                    "volumes": [
                        {"name": "t", "secret": {"secretName": "sa-token"}},
                        {"name": "c", "configMap": {"name": "cfg"}},
                    ],
                },
            },
        },
    }
    as_tenant(
        fleet,
        web,
        configmap("cfg", namespace),
        propagation(
            "deps",
            namespace,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            propagateDependencies=True,
        ),
    )

    async def followed() -> bool:
        return all(get(fleet, c, "configmap", "cfg", namespace) is not None for c in MEMBERS)

    await eventually(followed, timeout=30, what="the ConfigMap dependency in every member")

    async def skipped() -> bool:
        cond = condition(get(fleet, "hub", "propagationpolicy", "deps", namespace), "Skipped")
        assert (
            cond["status"] == "True"
            and f"Secret.core {namespace}/sa-token is a credential" in cond["message"]
        ), cond
        return True

    await eventually(skipped, timeout=30, what="Skipped naming the token Secret")
    for cluster in MEMBERS:
        assert get(fleet, cluster, "secret", "sa-token", namespace) is None, cluster


# -- finding 5: a member freezes the hub's status --------------------------------------------------


def member_status(fleet: LocalFleet, cluster: str, name: str, namespace: str, replicas: int) -> None:
    """Play a member admin (or a broken controller) writing any int32 in the status."""
    obj = get(fleet, cluster, "deployment", name, namespace)
    assert obj is not None
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    kubectl(fleet, cluster, "replace", "--subresource=status", "-f", "-", stdin=json.dumps(obj))


async def test_member_status_values_are_bounded_and_a_refused_hub_write_is_reported(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    big = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big", "namespace": namespace, "annotations": {"team": "platform"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{"name": "a", "image": "nginx"}]},
            },
        },
    }
    apply(
        fleet,
        "hub",
        big,
        propagation(
            "big",
            namespace,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "big"}],
            placement={"clusterNames": ["member-1", "member-2", "no-such-cluster"]},
        ),
    )

    async def copies() -> bool:
        return all(
            get(fleet, c, "deployment", "big", namespace) is not None for c in ("member-1", "member-2")
        )

    await eventually(copies, timeout=30, what="both copies")

    # A name in clusterNames that is no member is reported, not ignored.
    async def unknown_reported() -> bool:
        cond = condition(get(fleet, "hub", "propagationpolicy", "big", namespace), "ClustersResolved")
        assert cond["status"] == "False" and cond["reason"] == "UnknownClusters", cond
        assert "spec.placement.clusterNames: no-such-cluster" in cond["message"], cond
        return True

    await eventually(unknown_reported, timeout=30, what="ClustersResolved=False naming no-such-cluster")

    int32_max = 2**31 - 1
    for cluster in ("member-1", "member-2"):
        member_status(fleet, cluster, "big", namespace, int32_max)

    async def clamped() -> bool:
        status = (get(fleet, "hub", "deployment", "big", namespace) or {}).get("status") or {}
        assert status.get("replicas") == int32_max and status.get("readyReplicas") == int32_max, status
        return True

    await eventually(clamped, timeout=30, what="the hub status clamped to int32")
    hub_big = get(fleet, "hub", "deployment", "big", namespace)
    assert hub_big is not None  # a status write keeps what the object's metadata holds
    # Our caches drop managedFields (issue 12): a status write of a cached template must keep the
    # live ones (the apiserver keeps them when a request carries none), or the tenant's own
    # field ownership, and with it their next server-side apply, would be wiped by the hub side.
    shown = kubectl(
        fleet, "hub", "-n", namespace, "get", "deployment", "big", "-o", "json", "--show-managed-fields"
    )
    managers = {e.get("manager") for e in json.loads(shown)["metadata"].get("managedFields") or []}
    assert any(m and m.startswith("kubectl") for m in managers), managers
    assert "federation.io/cleanup" not in (
        hub_big["metadata"].get("finalizers") or []
    )  # no finalizer since issue 12
    assert hub_big["metadata"]["annotations"]["team"] == "platform"
    assert controller.metric("federation_hub_status_write_errors_total") == 0

    # Now the hub itself refuses: a ValidatingAdmissionPolicy on the hub's Deployment status.
    # First back to small numbers, so that no write the policy refuses is still on its way.
    for cluster in ("member-1", "member-2"):
        member_status(fleet, cluster, "big", namespace, 1)

    async def lowered() -> bool:
        status = (get(fleet, "hub", "deployment", "big", namespace) or {}).get("status") or {}
        return status.get("readyReplicas") == 2

    await eventually(lowered, timeout=30, what="the hub status lowered to 2")
    vap = f"no-big-status-{namespace}"[:63]
    apply(
        fleet,
        "hub",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": vap},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["deployments/status"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(object.status.readyReplicas)"
                        " || object.status.readyReplicas < 1000",
                        "message": "fleet policy: at most 999 ready replicas may be reported",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": vap},
            "spec": {
                "policyName": vap,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    try:

        async def enforced() -> bool:
            """The apiserver loads admission policies asynchronously: probe with a dry run."""
            hub = get(fleet, "hub", "deployment", "big", namespace)
            assert hub is not None
            probe = {**hub, "status": {**hub["status"], "readyReplicas": 5000, "replicas": 5000}}
            try:
                kubectl(
                    fleet, "hub", "replace", "--subresource=status", "--dry-run=server", "-f", "-",
                    stdin=json.dumps(probe),
                )  # fmt: skip
            except AssertionError as refused:  # kubectl failed: the message is the apiserver's
                return "at most 999 ready replicas" in str(refused)
            return False

        await eventually(enforced, timeout=30, what="the ValidatingAdmissionPolicy enforced")
        member_status(fleet, "member-1", "big", namespace, 1200)  # 1201 in all: refused by the hub

        async def refused() -> bool:
            hub = get(fleet, "hub", "deployment", "big", namespace)
            cond = condition(hub, "StatusAggregated")
            assert cond["status"] == "False" and cond["reason"] == "RejectedByHub", cond
            assert "at most 999 ready replicas" in cond["message"], cond
            assert (hub or {})["status"]["readyReplicas"] == 2  # the last admitted sums stand
            return True

        await eventually(refused, timeout=30, what="StatusAggregated=False on the hub Deployment")
        events = await query(
            controller.database_url,
            "SELECT message FROM events WHERE type = 'StatusRejected' AND namespace = $1 AND name = 'big'",
            namespace,
        )
        assert len(events) == 1 and "at most 999 ready replicas" in events[0]["message"], events
        rejected = controller.metric("federation_hub_status_write_errors_total", reason="rejected")
        assert rejected >= 1
        # Backoff, not a hot loop: a few attempts in a few seconds, one event.
        await eventually(
            lambda: _more(controller, rejected),
            timeout=30,
            what="a retry of the refused write (with backoff)",
        )
        assert (
            controller.metric("federation_hub_status_write_errors_total", reason="rejected") < rejected + 20
        )
    finally:
        kubectl(fleet, "hub", "delete", "validatingadmissionpolicybinding", vap, "--ignore-not-found")
        kubectl(fleet, "hub", "delete", "validatingadmissionpolicy", vap, "--ignore-not-found")


async def _more(controller: ControllerProcess, than: float) -> bool:
    return controller.metric("federation_hub_status_write_errors_total", reason="rejected") > than


async def test_the_applier_refuses_a_work_naming_another_object_than_its_template(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    """Defence in depth: whatever put it there (a row written before the translator's check, a
    bug, someone with write access to the database), a work whose manifest names another object
    than its template is never applied, and its deletion touches nothing."""
    apply(
        fleet,
        "hub",
        configmap("real", namespace),
        propagation("p", namespace, [{"apiVersion": "v1", "kind": "ConfigMap", "name": "real"}]),
    )

    async def applied() -> bool:
        works = await works_of(controller, namespace, "real")
        return len(works) == 3 and all(w["state"] == "applied" for w in works.values())

    await eventually(applied, timeout=30, what="the ConfigMap applied everywhere")
    forged = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"forged-{namespace}"[:63], "labels": {"federation.io/hub": "sec-hub"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": TENANT, "apiGroup": "rbac.authorization.k8s.io"}],
    }
    await query(
        controller.database_url,
        "UPDATE works w SET desired = $3::jsonb, desired_hash = 'forged', state = 'pending',"
        " next_attempt_at = now(), version = version + 1 FROM resources r"
        " WHERE r.id = w.resource_id AND r.namespace = $1 AND r.name = $2 AND w.cluster = 'member-1'",
        namespace,
        "real",
        json.dumps(forged),
    )

    async def refused() -> bool:
        work = (await works_of(controller, namespace, "real"))["member-1"]
        assert work["state"] == "failed", work
        assert (
            "refused: the manifest names ClusterRoleBinding.rbac.authorization.k8s.io" in work["last_error"]
        )
        assert f"but this work copies ConfigMap.core {namespace}/real" in work["last_error"]
        return True

    await eventually(refused, timeout=30, what="the forged work refused by the applier")
    assert get(fleet, "member-1", "clusterrolebinding", forged["metadata"]["name"]) is None
    assert can_i_everything(fleet, "member-1", TENANT) == "no"
