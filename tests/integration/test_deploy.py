"""deploy/ against a real hub: every manifest (and the Helm chart's output) passes the apiserver's
server-side dry run, and the RBAC is enough for a full propagation — run by the controller with
nothing but the deployed roles' credentials — while verbs outside it are denied.

The least-privilege run uses exactly what an installation gets: the hub's RBAC objects and
ServiceAccount from deploy/ (both the default and the narrowed variant), a token for that
ServiceAccount from the TokenRequest API, read through the same tokenFile kubeconfig the pod
mounts (deploy/controller/hub-kubeconfig.yaml); and in the members, deploy/rbac/member's identity,
whose kubeconfigs reach the controller through MemberCluster Secrets in the fleet namespace.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from federation.devfleet import LocalFleet
from tests.controllerhelpers import ControllerProcess, apply, get, kubectl
from tests.deployhelpers import (
    CHART,
    CONTROLLER_SA,
    DEPLOY,
    HELM_VALUE_SETS,
    KUBECTL,
    KUSTOMIZATIONS,
    MEMBER_SA,
    NAMESPACE,
    REPO,
    cluster_entry,
    decode_ca,
    find,
    helm_binary,
    helm_template,
    in_pod_kubeconfig,
    kustomize,
    load_all,
    manifest_files,
    objects,
    token_kubeconfig,
)
from tests.kubehelpers import crd_manifest, create_crd_and_wait, eventually
from tests.storehelpers import create_database, drop_database

# Marked at collection (not only by the conftest hook), so anyio's plugin keeps the parameters of
# the parametrized coroutine tests.
pytestmark = pytest.mark.anyio

RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
MEMBERS = {"lp-member-1": "member-1", "lp-member-2": "member-2"}  # MemberCluster -> fleet cluster
SELECTED = {"federation-test": "least-privilege"}


def run_kubectl(
    fleet: LocalFleet,
    *args: str,
    context: str = "hub",
    stdin: str | None = None,
    kubeconfig: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """kubectl as a user runs it; the caller looks at the exit code and both streams."""
    target = ["--kubeconfig", str(kubeconfig)] if kubeconfig else ["--kubeconfig", str(fleet.kubeconfig)]
    target += ["--context", context] if kubeconfig is None else []
    return subprocess.run(
        [KUBECTL, *target, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def dry_run(
    fleet: LocalFleet, source: list[str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_kubectl(
        fleet,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",  # a dry run judges the objects, not who owned which field before
        "--field-manager=deploy-dry-run",
        *source,
        stdin=stdin,
    )


def assert_clean(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert proc.returncode == 0, f"{what}: {proc.stderr}"
    # Pod Security admission (the namespace enforces and warns "restricted") and deprecated APIs
    # answer with warnings: a clean manifest has none.
    warnings = [line for line in proc.stderr.splitlines() if "Warning" in line]
    assert not warnings, f"{what}: {warnings}"


@pytest.fixture(scope="module")
async def dry_run_hub(fleet: LocalFleet, hub_crds: None) -> None:
    """The fleet namespace (namespaced objects need it to exist even for a dry run) and a
    minimal ServiceMonitor CRD: a bare apiserver has no Prometheus Operator."""
    kubectl(fleet, "hub", "apply", "--server-side", "-f", str(DEPLOY / "controller" / "namespace.yaml"))
    served = run_kubectl(fleet, "get", "crd", "servicemonitors.monitoring.coreos.com", "--ignore-not-found")
    if not served.stdout.strip():
        await create_crd_and_wait(
            fleet.clusters["hub"], crd_manifest("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")
        )


# -- every manifest passes the apiserver's dry run ------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
async def test_every_manifest_passes_server_side_dry_run(
    fleet: LocalFleet, dry_run_hub: None, path: Path
) -> None:
    assert_clean(dry_run(fleet, ["-f", str(path)]), str(path.relative_to(REPO)))


@pytest.mark.parametrize("root", KUSTOMIZATIONS)
async def test_every_kustomization_passes_server_side_dry_run(
    fleet: LocalFleet, dry_run_hub: None, root: str
) -> None:
    assert_clean(dry_run(fleet, ["-k", str(REPO / root)]), f"kubectl apply -k {root}")


@pytest.mark.parametrize("values", list(HELM_VALUE_SETS), ids=str)
async def test_the_helm_chart_renders_objects_that_pass_server_side_dry_run(
    fleet: LocalFleet, dry_run_hub: None, values: str
) -> None:
    rendered = helm_template(HELM_VALUE_SETS[values], include_crds=True)
    assert_clean(dry_run(fleet, ["-f", "-"], stdin=rendered), f"helm template ({values})")


async def test_the_chart_keeps_its_encryption_key_across_upgrades(
    fleet: LocalFleet, dry_run_hub: None
) -> None:
    """The chart reads its key back from the cluster (`lookup`): an upgrade renders the key that
    is there, never a new one, which would leave every sealed row unreadable."""
    release = f"keys-{secrets.token_hex(3)}"
    name = f"{release}-federation-encryption-key"
    values = {"database.url": "postgresql://u@db/federation"}
    server = ["--dry-run=server", "--kubeconfig", str(fleet.kubeconfig), "--kube-context", "hub"]
    installed = find(load_all(helm_template(values, release=release, extra_args=server)), "Secret", name)
    kubectl(fleet, "hub", "apply", "-f", "-", stdin=json.dumps(installed))
    try:
        upgraded = find(load_all(helm_template(values, release=release, extra_args=server)), "Secret", name)
        assert upgraded["data"] == installed["data"]
        # Where it cannot read the cluster (plain `helm template`), a fresh key is all it can show.
        offline = find(load_all(helm_template(values, release=release)), "Secret", name)
        assert offline["data"] != installed["data"]
    finally:
        kubectl(fleet, "hub", "-n", NAMESPACE, "delete", "secret", name, "--ignore-not-found")


async def test_the_dry_run_would_catch_a_pod_that_breaks_the_restricted_standard(
    fleet: LocalFleet, dry_run_hub: None
) -> None:
    """The 'no warnings' check above has teeth: drop the container's securityContext and the
    namespace's Pod Security admission objects."""
    deployment = yaml.safe_load((DEPLOY / "controller" / "deployment.yaml").read_text())
    del deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    proc = dry_run(fleet, ["-f", "-"], stdin=json.dumps(deployment))
    assert proc.returncode == 0, proc.stderr  # a Deployment is only warned about ...
    assert "restricted" in proc.stderr and "allowPrivilegeEscalation" in proc.stderr  # ... and it is


async def test_the_chart_keeps_its_generated_api_token_across_upgrades(fleet: LocalFleet) -> None:
    """helm's lookup, against a real apiserver (`--dry-run=server`): a release whose token
    Secret exists renders that token again; a new one gets a fresh random token."""
    helm = helm_binary()
    assert helm is not None
    kept = f"kept{secrets.token_hex(16)}"
    namespace = f"helm-token-{secrets.token_hex(3)}"

    def render(ns: str) -> str:
        proc = subprocess.run(
            [
                helm,
                "template",
                "federation",
                str(CHART),
                "--namespace",
                ns,
                "--set",
                "database.url=postgresql://u@db/federation",
                "--dry-run=server",
                "--kubeconfig",
                str(fleet.kubeconfig),
                "--kube-context",
                "hub",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        [secret] = [
            o for o in objects(proc.stdout, "Secret") if o["metadata"]["name"] == "federation-api-token"
        ]
        return str(secret["stringData"]["token"])

    kubectl(fleet, "hub", "create", "namespace", namespace)
    try:
        kubectl(
            fleet,
            "hub",
            "-n",
            namespace,
            "create",
            "secret",
            "generic",
            "federation-api-token",
            f"--from-literal=token={kept}",
        )
        assert await anyio.to_thread.run_sync(render, namespace) == kept
        fresh = await anyio.to_thread.run_sync(render, f"{namespace}-new")
        assert fresh != kept and len(fresh) == 48
    finally:
        kubectl(fleet, "hub", "delete", "namespace", namespace, "--wait=false")


# -- least privilege: a full propagation with nothing but the deployed roles --------------------


@dataclass
class LeastPrivilege:
    variant: str
    controller: ControllerProcess
    hub_kubeconfig: Path
    member_kubeconfigs: dict[str, Path] = field(default_factory=dict)


async def request_token(fleet: LocalFleet, context: str, service_account: str) -> str:
    """POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token, as an admin does for a pod."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    out = kubectl(
        fleet,
        context,
        "create",
        "--raw",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{service_account}/token",
        "-f",
        "-",
        stdin=json.dumps(body),
    )
    token = str(json.loads(out)["status"]["token"])
    assert token
    return token


def as_list(items: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


VARIANTS = {
    # variant: (hub kustomization, member kustomization)
    "default": ("deploy", "deploy/rbac/member"),
    "narrow": ("deploy/overlays/narrow-rbac", "deploy/rbac/member-narrow"),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
async def least_privilege(
    request: pytest.FixtureRequest,
    fleet: LocalFleet,
    hub_crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LeastPrivilege]:
    variant: str = request.param
    hub_root, member_root = VARIANTS[variant]
    work = tmp_path_factory.mktemp(f"least-privilege-{variant}")
    # Only the identity objects of the hub's kustomization (nothing here runs pods), and the
    # whole member kustomization.
    hub_rbac = list(objects(kustomize(hub_root), *RBAC_KINDS))
    member_rbac = list(objects(kustomize(member_root)))

    def install() -> None:
        kubectl(
            fleet, "hub", "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=as_list(hub_rbac)
        )
        for cluster in MEMBERS.values():
            kubectl(
                fleet,
                cluster,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "-",
                stdin=as_list(member_rbac),
            )

    def uninstall() -> None:
        # The namespaces stay: without a namespace controller a deleted one never goes away.
        for context, items in [("hub", hub_rbac)] + [(c, member_rbac) for c in MEMBERS.values()]:
            rest = [o for o in items if o["kind"] != "Namespace"]
            kubectl(fleet, context, "delete", "--ignore-not-found", "-f", "-", stdin=as_list(rest))

    await anyio.to_thread.run_sync(install)

    # The hub identity, read as the pod reads it: a rotating token file and the cluster's CA.
    hub = cluster_entry(fleet.kubeconfig, "hub")
    (work / "ca.crt").write_bytes(decode_ca(hub))
    (work / "token").write_text(await request_token(fleet, "hub", CONTROLLER_SA))
    hub_kubeconfig = work / "hub.kubeconfig"
    hub_kubeconfig.write_text(
        yaml.safe_dump(
            in_pod_kubeconfig(server=hub["server"], ca_file=work / "ca.crt", token_file=work / "token")
        )
    )

    # Each member's identity: a token kubeconfig in a Secret of the fleet namespace, as
    # deploy/kind/up.sh and `federation clusters join` store it.
    member_kubeconfigs: dict[str, Path] = {}
    for name, cluster in MEMBERS.items():
        entry = cluster_entry(fleet.kubeconfig, cluster)
        config = token_kubeconfig(
            name=name,
            server=entry["server"],
            ca_data=entry["certificate-authority-data"],
            token=await request_token(fleet, cluster, MEMBER_SA),
        )
        assert "client-certificate-data" not in json.dumps(config)
        member_kubeconfigs[name] = work / f"{name}.kubeconfig"
        member_kubeconfigs[name].write_text(yaml.safe_dump(config))
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "stringData": {"kubeconfig": yaml.safe_dump(config)},
        }
        member_cluster = {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "MemberCluster",
            "metadata": {"name": name, "labels": SELECTED},
            "spec": {"kubeconfigSecretRef": {"namespace": NAMESPACE, "name": name, "key": "kubeconfig"}},
        }
        for obj in (secret, member_cluster):
            kubectl(
                fleet, "hub", "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(obj)
            )

    db = f"lp_{variant}_{secrets.token_hex(3)}"
    url = await create_database(fleet.database_url, db)
    proc = ControllerProcess(
        fleet,
        database_url=url,
        hub_id=None,  # derived from kube-system's uid: exercises that rule too
        log_path=work / "controller.log",
        hub_kubeconfig=hub_kubeconfig,
        # `default` passes the controller's own check (tests/security covers that one), so the
        # test of a MemberCluster pointing there shows the RBAC layer refusing on its own.
        extra_args=["--credentials-namespace", "default"],
    )
    try:
        await anyio.to_thread.run_sync(proc.start)
        yield LeastPrivilege(variant, proc, hub_kubeconfig, member_kubeconfigs)
    finally:
        await anyio.to_thread.run_sync(proc.stop)
        print(f"controller log ({variant}): {proc.log_path}")
        for name in MEMBERS:
            # The controller is stopped: nobody drains them, so drop its finalizer first.
            release = '{"metadata":{"finalizers":null}}'
            kubectl(fleet, "hub", "patch", "membercluster", name, "--type=merge", "-p", release, check=False)
            kubectl(fleet, "hub", "delete", "membercluster", name, "--ignore-not-found")
            kubectl(fleet, "hub", "-n", NAMESPACE, "delete", "secret", name, "--ignore-not-found")
        await anyio.to_thread.run_sync(uninstall)
        await drop_database(fleet.database_url, db)


def policy(name: str, namespace: str, kind: str, api_version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": api_version, "kind": kind}],
            "placement": {"clusterSelector": {"matchLabels": SELECTED}},
            **spec,
        },
    }


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    assert obj is not None
    conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
    assert kind in conds, f"no {kind} condition yet: {obj.get('status')}"
    return dict(conds[kind])


def _log_cluster(line: str) -> str | None:
    """The cluster a console log line is about (its structured ``[cluster=…]`` field)."""
    found = re.search(r"\[(?:[^\]]*\s)?cluster=([^\s\]]+)", line)
    return found.group(1) if found else None


async def test_the_deployed_roles_are_enough_for_a_full_propagation(
    fleet: LocalFleet, least_privilege: LeastPrivilege
) -> None:
    controller = least_privilege.controller
    # A namespace that exists on the hub only: the controller creates it in the members.
    ns = f"lp-{least_privilege.variant}-{secrets.token_hex(3)}"
    kubectl(fleet, "hub", "create", "namespace", ns)
    try:
        await _propagate_status_and_delete(fleet, controller, ns)
    finally:
        kubectl(fleet, "hub", "-n", ns, "delete", "propagationpolicies", "--all", "--wait=false")
        for context in ("hub", *MEMBERS.values()):
            kubectl(fleet, context, "delete", "namespace", ns, "--ignore-not-found", "--wait=false")

    # Nothing the controller did was refused: no 403 from any member, and on the hub only the
    # Secrets of MemberClusters that are not ours (other tests' fleets, outside the fleet
    # namespace), which the narrowed role may not read.
    for name in MEMBERS:
        assert controller.metric("federation_kube_requests_total", cluster=name, code="403") == 0
    forbidden = [
        line for line in controller.log_tail(100_000).splitlines() if re.search("forbidden", line, re.I)
    ]
    unexpected = [line for line in forbidden if _log_cluster(line) in (None, *MEMBERS)]
    assert not unexpected, "\n".join(unexpected)


async def _propagate_status_and_delete(fleet: LocalFleet, controller: ControllerProcess, ns: str) -> None:
    web = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    settings = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns},
        "data": {"LOG_LEVEL": "info"},
    }
    apply(
        fleet,
        "hub",
        web,
        settings,
        policy("web", ns, "Deployment", "apps/v1"),  # Duplicated, deletionPolicy Delete
        policy("settings", ns, "ConfigMap", "v1", deletionPolicy="Orphan"),
    )

    # The members are joined (Secret read, MemberCluster status written) ...
    async def members_ready() -> bool:
        for name in MEMBERS:
            ready = condition(get(fleet, "hub", "membercluster", name), "Ready")
            assert ready["status"] == "True", ready
        return True

    await eventually(members_ready, timeout=60, what="both MemberClusters Ready")

    # ... and both templates land in both members, in a namespace the controller created.
    async def landed() -> bool:
        for cluster in MEMBERS.values():
            copy = get(fleet, cluster, "deployment", "web", ns)
            assert copy is not None, f"web not in {cluster} yet"
            assert copy["spec"]["replicas"] == 2
            assert copy["metadata"]["labels"]["federation.io/hub"].startswith("hub-")
            cm = get(fleet, cluster, "configmap", "settings", ns)
            assert cm is not None and cm["data"] == {"LOG_LEVEL": "info"}, f"settings not in {cluster} yet"
        return True

    await eventually(landed, timeout=60, what="the Deployment and the ConfigMap in both members")
    for cluster in MEMBERS.values():
        namespace = get(fleet, cluster, "namespace", ns)
        assert namespace is not None
        assert namespace["metadata"]["labels"].get("federation.io/managed-by") == "federation"
    hub_web = get(fleet, "hub", "deployment", "web", ns)
    assert hub_web is not None  # no finalizer of ours on templates (issue 12): Postgres records the copies
    assert "federation.io/cleanup" not in (hub_web["metadata"].get("finalizers") or [])

    # Status up: play each member's deployment controller; the hub Deployment shows the sum.
    for cluster in MEMBERS.values():
        copy = get(fleet, cluster, "deployment", "web", ns)
        assert copy is not None
        copy["status"] = {
            "observedGeneration": copy["metadata"]["generation"],
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        }
        kubectl(fleet, cluster, "replace", "--subresource=status", "-f", "-", stdin=json.dumps(copy))

    async def aggregated() -> bool:
        hub_obj = get(fleet, "hub", "deployment", "web", ns)
        assert hub_obj is not None
        status = hub_obj.get("status") or {}
        assert status.get("replicas") == 4 and status.get("readyReplicas") == 4, status
        assert condition(hub_obj, "Available")["status"] == "True"
        return True

    await eventually(aggregated, timeout=60, what="the aggregated status on the hub Deployment")

    async def policy_status() -> bool:
        for name in ("web", "settings"):
            pol = get(fleet, "hub", "propagationpolicy", name, ns)
            propagated = condition(pol, "federation.io/Propagated")
            assert propagated["status"] == "True", propagated
            assert pol is not None and "federation.io/cleanup" in pol["metadata"]["finalizers"]
        return True

    await eventually(policy_status, timeout=60, what="Propagated=True on both policies")

    # Deletion: Delete removes the member copies first; Orphan leaves them without our stamp.
    kubectl(fleet, "hub", "-n", ns, "delete", "deployment/web", "configmap/settings", "--wait=false")

    async def cleaned() -> bool:
        assert get(fleet, "hub", "deployment", "web", ns) is None, "the template is still held"
        assert get(fleet, "hub", "configmap", "settings", ns) is None, "the template is still held"
        for cluster in MEMBERS.values():
            assert get(fleet, cluster, "deployment", "web", ns) is None, f"web still in {cluster}"
            cm = get(fleet, cluster, "configmap", "settings", ns)
            assert cm is not None, f"the orphaned ConfigMap must stay in {cluster}"
            assert "federation.io/hub" not in (cm["metadata"].get("labels") or {}), "still stamped"
        return True

    await eventually(cleaned, timeout=60, what="the members cleaned (Delete) and released (Orphan)")

    # A deleted policy waits for its finalizer, which the controller removes.
    kubectl(fleet, "hub", "-n", ns, "delete", "propagationpolicy", "web", "settings", "--wait=false")

    async def policies_gone() -> bool:
        assert get(fleet, "hub", "propagationpolicy", "web", ns) is None
        assert get(fleet, "hub", "propagationpolicy", "settings", ns) is None
        return True

    await eventually(policies_gone, timeout=60, what="both policies released by the controller")


# -- and nothing more ----------------------------------------------------------------------


def can(fleet: LocalFleet, context: str, user: str, attributes: dict[str, str]) -> bool:
    """A SubjectAccessReview (asked by an admin): may `user` do this?"""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{NAMESPACE}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    out = kubectl(fleet, context, "create", "-o", "json", "-f", "-", stdin=json.dumps(review))
    return bool(json.loads(out)["status"].get("allowed"))


def attrs(
    verb: str, resource: str, *, group: str = "", namespace: str = "", name: str = "", sub: str = ""
) -> dict[str, str]:
    out = {"verb": verb, "group": group, "resource": resource}
    out |= {"namespace": namespace} if namespace else {}
    out |= {"name": name} if name else {}
    out |= {"subresource": sub} if sub else {}
    return out


FED = "federation.io"
HUB_USER = f"system:serviceaccount:{NAMESPACE}:{CONTROLLER_SA}"
MEMBER_USER = f"system:serviceaccount:{NAMESPACE}:{MEMBER_SA}"

#: (attributes, allowed in the default variant, allowed in the narrowed variant)
HUB_CASES: list[tuple[dict[str, str], bool, bool]] = [
    # What the controller does: allowed in both.
    (attrs("watch", "propagationpolicies", group=FED), True, True),
    (attrs("patch", "propagationpolicies", group=FED, namespace="shop", name="p"), True, True),
    (attrs("patch", "clusterpropagationpolicies", group=FED, name="p", sub="status"), True, True),
    (attrs("list", "overridepolicies", group=FED), True, True),
    (attrs("watch", "memberclusters", group=FED), True, True),
    (attrs("patch", "memberclusters", group=FED, name="m"), True, True),  # the drain finalizer
    (attrs("patch", "memberclusters", group=FED, name="m", sub="status"), True, True),
    (attrs("get", "secrets", namespace=NAMESPACE, name="member-1"), True, True),
    (attrs("get", "namespaces", name="kube-system"), True, True),
    (attrs("watch", "deployments", group="apps"), True, True),
    (attrs("patch", "deployments", group="apps", namespace="shop", name="web"), True, True),
    (attrs("get", "deployments", group="apps", namespace="shop", name="web"), True, True),
    (attrs("update", "deployments", group="apps", namespace="shop", name="web", sub="status"), True, True),
    (attrs("update", "services", namespace="shop", name="web", sub="status"), True, True),
    (attrs("watch", "configmaps"), True, True),
    (attrs("patch", "configmaps", namespace="shop", name="settings"), True, True),
    # Never needed: denied in both.
    (attrs("get", "configmaps", namespace="shop", name="settings"), False, False),
    (attrs("get", "secrets", namespace="kube-system", name="anything"), False, False),
    (attrs("get", "namespaces", name="default"), False, False),
    (attrs("update", "configmaps", namespace="shop", name="settings", sub="status"), False, False),
    (attrs("create", "deployments", group="apps", namespace="shop"), False, False),
    (attrs("update", "deployments", group="apps", namespace="shop", name="web"), False, False),
    (attrs("delete", "deployments", group="apps", namespace="shop", name="web"), False, False),
    (attrs("delete", "secrets", namespace=NAMESPACE, name="member-1"), False, False),
    (attrs("create", "secrets", namespace=NAMESPACE), False, False),
    (attrs("update", "secrets", namespace=NAMESPACE, name="member-1"), False, False),
    (attrs("create", "memberclusters", group=FED), False, False),
    (attrs("delete", "propagationpolicies", group=FED, namespace="shop", name="p"), False, False),
    (attrs("update", "propagationpolicies", group=FED, namespace="shop", name="p"), False, False),
    (attrs("create", "clusterroles", group="rbac.authorization.k8s.io"), False, False),
    (attrs("create", "clusterrolebindings", group="rbac.authorization.k8s.io"), False, False),
    (attrs("escalate", "clusterroles", group="rbac.authorization.k8s.io", name="admin"), False, False),
    (attrs("bind", "clusterroles", group="rbac.authorization.k8s.io", name="cluster-admin"), False, False),
    (attrs("impersonate", "users", name="admin"), False, False),
    (attrs("create", "pods", namespace="shop", name="web-1", sub="exec"), False, False),
    (attrs("get", "pods", namespace="shop", name="web-1", sub="exec"), False, False),
    (attrs("get", "pods", namespace="shop", name="web-1", sub="log"), False, False),
    (attrs("get", "nodes", name="node-1", sub="proxy"), False, False),
    (attrs("create", "serviceaccounts", namespace=NAMESPACE, name=CONTROLLER_SA, sub="token"), False, False),
    (attrs("create", "leases", group="coordination.k8s.io", namespace=NAMESPACE), False, False),
    (attrs("create", "events", namespace="shop"), False, False),
    # The documented trade-off: the default role lists and patches every kind (Secrets listed
    # too, subresources patched too); the narrowed one keeps to the kinds it names.
    (attrs("list", "secrets"), True, False),
    (attrs("watch", "pods"), True, False),
    (attrs("patch", "pods", namespace="kube-system", name="x", sub="ephemeralcontainers"), True, False),
]

MEMBER_CASES: list[tuple[dict[str, str], bool, bool]] = [
    # What the controller does in a member: allowed in both.
    (attrs("patch", "deployments", group="apps", namespace="shop", name="web"), True, True),
    # A server-side apply that creates an object is authorised as create too.
    (attrs("create", "deployments", group="apps", namespace="shop"), True, True),
    (attrs("get", "deployments", group="apps", namespace="shop", name="web"), True, True),
    (attrs("watch", "deployments", group="apps"), True, True),
    (attrs("delete", "configmaps", namespace="shop", name="settings"), True, True),
    (attrs("get", "namespaces", name="shop"), True, True),
    (attrs("create", "namespaces"), True, True),
    # Never needed: denied in both.
    (attrs("update", "deployments", group="apps", namespace="shop", name="web"), False, False),
    (attrs("deletecollection", "configmaps", namespace="shop"), False, False),
    (attrs("escalate", "clusterroles", group="rbac.authorization.k8s.io", name="admin"), False, False),
    (attrs("bind", "clusterroles", group="rbac.authorization.k8s.io", name="cluster-admin"), False, False),
    (attrs("impersonate", "users", name="admin"), False, False),
    (attrs("impersonate", "serviceaccounts", namespace="kube-system", name="admin"), False, False),
    # The trade-off, as on the hub: the default covers every kind and every subresource, which
    # is what a member identity that may create any workload in any namespace amounts to anyway.
    (attrs("create", "clusterroles", group="rbac.authorization.k8s.io"), True, False),
    (attrs("delete", "namespaces", name="shop"), True, False),
    (attrs("get", "secrets", namespace="kube-system", name="anything"), True, False),
    (attrs("create", "pods", namespace="shop", name="web-1", sub="exec"), True, False),
    (attrs("create", "serviceaccounts", namespace="shop", name="default", sub="token"), True, False),
]


async def test_verbs_outside_the_roles_are_denied(fleet: LocalFleet, least_privilege: LeastPrivilege) -> None:
    narrow = least_privilege.variant == "narrow"
    wrong = []
    for context, user, cases in (
        ("hub", HUB_USER, HUB_CASES),
        ("member-1", MEMBER_USER, MEMBER_CASES),
    ):
        for attributes, default_allowed, narrow_allowed in cases:
            expected = narrow_allowed if narrow else default_allowed
            allowed = await anyio.to_thread.run_sync(can, fleet, context, user, attributes)
            if allowed != expected:
                wrong.append(f"{context} {user}: {attributes}: allowed={allowed}, expected {expected}")
    assert not wrong, "\n".join(wrong)

    # And real requests with the identities' own credentials are refused (403).
    kubectl(fleet, "hub", "-n", NAMESPACE, "create", "secret", "generic", "lp-victim", "--from-literal=k=v")
    try:
        proc = run_kubectl(
            fleet, "-n", NAMESPACE, "delete", "secret", "lp-victim", kubeconfig=least_privilege.hub_kubeconfig
        )
        assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr
        assert get(fleet, "hub", "secret", "lp-victim", NAMESPACE) is not None
    finally:
        kubectl(fleet, "hub", "-n", NAMESPACE, "delete", "secret", "lp-victim", "--ignore-not-found")
    # Even where it may create ClusterRoles, RBAC's escalation check refuses one granting more
    # than the identity holds.
    proc = run_kubectl(
        fleet,
        "create",
        "clusterrole",
        "lp-escalate",
        "--verb=*",
        "--resource=*",
        kubeconfig=least_privilege.member_kubeconfigs["lp-member-1"],
    )
    assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr


async def test_a_membercluster_secret_outside_the_fleet_namespace_is_refused(
    fleet: LocalFleet, least_privilege: LeastPrivilege
) -> None:
    """Both roles let the controller GET Secrets in the fleet namespace only (the default's list
    on every kind is for informers; kubeconfigs are read one by one): a MemberCluster pointing
    elsewhere is reported NotReady with the apiserver's refusal."""
    kubeconfig = least_privilege.member_kubeconfigs["lp-member-1"].read_text()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "lp-outside", "namespace": "default"},
        "stringData": {"kubeconfig": kubeconfig},
    }
    outside = {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "MemberCluster",
        "metadata": {"name": "lp-outside"},
        "spec": {
            "kubeconfigSecretRef": {"namespace": "default", "name": "lp-outside", "key": "kubeconfig"},
            # It is lp-member-1 under another name: nothing may be placed on it twice.
            "taints": [{"key": "test/outside", "effect": "NoSchedule"}],
        },
    }
    apply(fleet, "hub", secret, outside)
    try:

        async def refused() -> bool:
            ready = condition(get(fleet, "hub", "membercluster", "lp-outside"), "Ready")
            assert ready["status"] == "False", ready
            assert "forbidden" in ready["message"], ready
            return True

        await eventually(refused, timeout=60, what="the outside MemberCluster NotReady with 403")
    finally:
        # The running controller drains it (nothing was placed there) and lets it go.
        kubectl(fleet, "hub", "delete", "membercluster", "lp-outside", "--ignore-not-found", "--timeout=60s")
        kubectl(fleet, "hub", "-n", "default", "delete", "secret", "lp-outside", "--ignore-not-found")
