"""Opt-in (FEDERATION_KIND=1, Docker and kind): deploy/kind/up.sh installs a working fleet —
the controller image built from this checkout, two replicas (one leader), two members joined
with their least-privilege identities — which propagates a template; down.sh removes it all."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deployhelpers import DEPLOY, NAMESPACE
from tests.kubehelpers import eventually

KUBECTL = str(Path(sys.executable).parent / "kubectl")


@pytest.mark.kind
async def test_kind_up_installs_a_fleet_that_propagates_and_down_removes_it(tmp_path: Path) -> None:
    prefix = f"fedtest-{secrets.token_hex(2)}"
    state = tmp_path / "kind"
    env = {
        **os.environ,
        "FEDERATION_KIND_PREFIX": prefix,
        "FEDERATION_KIND_STATE": str(state),
        "FEDERATION_IMAGE": f"federation:{prefix}",
        "KUBECTL": KUBECTL,
    }
    hub = f"kind-{prefix}-hub"

    def kubectl(context: str, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [KUBECTL, "--kubeconfig", str(state / "kubeconfig"), "--context", context, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def script(name: str, timeout: float) -> int:
        return subprocess.run([str(DEPLOY / "kind" / name)], env=env, timeout=timeout, check=False).returncode

    try:
        assert script("up.sh", 1800) == 0, "deploy/kind/up.sh failed (its output is above)"

        deployment = json.loads(
            kubectl(hub, "-n", NAMESPACE, "get", "deployment", "federation-controller", "-o", "json")
        )
        assert deployment["status"].get("readyReplicas") == 2
        clusters = json.loads(kubectl(hub, "get", "memberclusters", "-o", "json"))["items"]
        assert sorted(c["metadata"]["name"] for c in clusters) == ["member-1", "member-2"]

        ns = "kind-smoke"
        objs: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "hello", "namespace": ns},
                "data": {"a": "b"},
            },
            {
                "apiVersion": "federation.io/v1alpha1",
                "kind": "PropagationPolicy",
                "metadata": {"name": "hello", "namespace": ns},
                "spec": {"resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "hello"}]},
            },
        ]
        kubectl(
            hub, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        )

        async def landed() -> bool:
            for member in ("member-1", "member-2"):
                out = kubectl(
                    f"kind-{prefix}-{member}",
                    "-n",
                    ns,
                    "get",
                    "configmap",
                    "hello",
                    "-o",
                    "json",
                    "--ignore-not-found",
                )
                assert out.strip(), f"not in {member} yet"
                assert json.loads(out)["data"] == {"a": "b"}
            return True

        await eventually(landed, timeout=120, what="the ConfigMap in both kind members")
    finally:
        assert script("down.sh", 600) == 0
        assert not state.exists()
