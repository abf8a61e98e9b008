"""What the deploy/ tests share: where the manifests are, kubectl and Helm as a user runs them,
and kubeconfigs for a ServiceAccount's token (the identity a deployed controller has)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "federation"
KUBECTL = str(Path(sys.executable).parent / "kubectl")

NAMESPACE = "federation-system"
CONTROLLER_SA = "federation-controller"
MEMBER_SA = "federation-member"

#: The kustomize roots a user applies (`kubectl apply -k`).
KUSTOMIZATIONS = (
    "deploy",
    "deploy/crds",
    "deploy/controller",
    "deploy/rbac/hub",
    "deploy/rbac/member",
    "deploy/rbac/member-narrow",
    "deploy/overlays/narrow-rbac",
    "deploy/webhook",
    "deploy/overlays/webhook",
    "deploy/monitoring",
)

#: The Helm chart rendered with these values must give valid objects (each is one `helm
#: template` run; `--set-json` takes JSON values).
HELM_VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults+url": {"database.url": "postgresql://federation:pw@postgres:5432/federation"},
    "everything": {
        "database.existingSecret": "federation-database",
        "hubId": "hub-east",
        "api.token": "s3cret",
        "serviceMonitor.enabled": True,
        "grafanaDashboard.enabled": True,
        "rbac.templates.allKinds": False,
        "clustersFile.content": {
            "clusters": [{"name": "eu-west", "kubeconfig": "/etc/federation/kubeconfigs/eu-west"}]
        },
        "clustersFile.kubeconfigsSecret": "member-kubeconfigs",
        "networkPolicy.apiserverCIDRs": ["10.0.0.0/8", "172.16.0.0/12"],
        "networkPolicy.postgresCIDRs": ["10.1.0.0/16"],
        "networkPolicy.ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "replicas": 3,
    },
    "webhook": {
        "database.url": "postgresql://federation@postgres/federation",
        "webhook.enabled": True,
        "webhook.tlsSecret": "federation-webhook-tls",
        "webhook.caBundle": "Zm9v",
        "serviceMonitor.enabled": True,
    },
    "webhook-cert-manager": {
        "database.url": "postgresql://federation@postgres/federation",
        "webhook.enabled": True,
        "webhook.tlsSecret": "federation-webhook-tls",
        "webhook.certManagerCertificate": "federation-system/federation-webhook",
    },
    "no-rbac-no-extras": {
        "database.url": "postgresql://federation@postgres/federation",
        "rbac.create": False,
        "serviceAccount.create": False,
        "serviceAccount.name": "default",
        "podDisruptionBudget.enabled": False,
        "networkPolicy.enabled": False,
    },
}


def manifest_files() -> list[Path]:
    """Every plain manifest under deploy/ (the chart's templates are not plain YAML, and the
    kustomization files are not objects)."""
    out = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        rel = path.relative_to(DEPLOY)
        if rel.parts[0] == "helm" or path.name == "kustomization.yaml" or _is_partial_patch(path):
            continue
        out.append(path)
    return out


def _is_partial_patch(path: Path) -> bool:
    """A strategic-merge patch its kustomization applies that is not a whole object on its own
    (it names only the fields it changes): kustomize's rendering of it is what gets checked."""
    kustomization = path.parent / "kustomization.yaml"
    if not kustomization.is_file():
        return False
    patches = (yaml.safe_load(kustomization.read_text()) or {}).get("patches") or []
    if not any(isinstance(p, dict) and p.get("path") == path.name for p in patches):
        return False
    doc = yaml.safe_load(path.read_text()) or {}
    return doc.get("kind") == "Deployment" and "selector" not in (doc.get("spec") or {})


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def objects(text: str, *kinds: str) -> Iterator[dict[str, Any]]:
    for doc in load_all(text):
        if not kinds or doc.get("kind") in kinds:
            yield doc


def find(docs: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
            return dict(doc)
    raise AssertionError(f"no {kind} {name} among {[(d.get('kind'), d['metadata']['name']) for d in docs]}")


def kustomize(root: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(REPO / root)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {root} failed: {proc.stderr}")
    return proc.stdout


# -- Helm ----------------------------------------------------------------------------------


def helm_binary() -> str | None:
    """The helm CLI: $FEDERATION_HELM, `helm` on PATH, or the one `make helm` builds."""
    built = sorted((Path.home() / ".cache" / "federation" / "helm").glob("v*/helm"), reverse=True)
    for candidate in (os.environ.get("FEDERATION_HELM"), shutil.which("helm"), *map(str, built)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


HELM_MISSING = "helm is not installed: `make helm` builds it from its Go module (or set FEDERATION_HELM)"


def helm_template(
    values: Mapping[str, Any],
    *,
    release: str = "federation",
    include_crds: bool = False,
    extra_args: Sequence[str] = (),
) -> str:
    """`helm template` of the chart; ``extra_args`` are more of its flags (e.g. ``--dry-run=server``
    with a kubeconfig, so that `lookup` reads the cluster)."""
    helm = helm_binary()
    assert helm is not None, HELM_MISSING
    args = [helm, "template", release, str(CHART), "--namespace", NAMESPACE, *extra_args]
    if include_crds:
        args.append("--include-crds")
    for key, value in values.items():
        if isinstance(value, str):
            args += ["--set-string", f"{key}={value}"]
        else:
            args += ["--set-json", f"{key}={json.dumps(value)}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"helm template failed: {proc.stderr}")
    return proc.stdout


# -- ServiceAccount credentials ---------------------------------------------------------------


def cluster_entry(kubeconfig: Path, context: str) -> dict[str, Any]:
    """The `cluster` entry (server, CA) a context of a kubeconfig points at."""
    config = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c["context"] for c in config["contexts"] if c["name"] == context)
    return dict(next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"]))


def token_kubeconfig(*, name: str, server: str, ca_data: str, token: str) -> dict[str, Any]:
    """A kubeconfig that authenticates with a bearer token only (no client certificate)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def in_pod_kubeconfig(*, server: str, ca_file: Path, token_file: Path) -> dict[str, Any]:
    """deploy/controller/hub-kubeconfig.yaml — the kubeconfig the controller's pod uses — with
    the in-pod server, CA and token paths replaced by these."""
    configmap = yaml.safe_load((DEPLOY / "controller" / "hub-kubeconfig.yaml").read_text())
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["kubeconfig"])
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == "https://kubernetes.default.svc"
    cluster["cluster"]["server"] = server
    cluster["cluster"]["certificate-authority"] = str(ca_file)
    (user,) = config["users"]
    assert user["user"]["tokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    user["user"]["tokenFile"] = str(token_file)
    return config


def decode_ca(entry: Mapping[str, Any]) -> bytes:
    if "certificate-authority-data" in entry:
        return base64.b64decode(entry["certificate-authority-data"])
    return Path(entry["certificate-authority"]).read_bytes()
