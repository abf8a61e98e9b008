"""``federation plan`` as a user runs it: golden output for the examples, and clear one-line
errors (file and line, no traceback) for bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from federation.cli import main

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_ARGS = [
    "plan",
    "-f",
    "examples/policies.yaml",
    "-f",
    "examples/overrides.yaml",
    "-f",
    "examples/workloads.yaml",
    "--clusters",
    "examples/clusters.yaml",
]


def _plan(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("output", "golden"), [("table", "plan.txt"), ("json", "plan.json")])
def test_plan_of_the_examples_matches_golden(
    output: str, golden: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _plan([*EXAMPLE_ARGS, "-o", output], monkeypatch)
    assert code == 0, err
    path = GOLDEN / golden
    if os.environ.get("FEDERATION_UPDATE_GOLDEN") == "1":
        path.write_text(out)
    assert out == path.read_text(), (
        f"plan output changed; if intended, rerun with FEDERATION_UPDATE_GOLDEN=1 ({path})"
    )


def test_plan_json_is_machine_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _plan([*EXAMPLE_ARGS, "-o", "json"], monkeypatch)
    assert code == 0
    web = json.loads(out)["resources"][0]
    assert web["policy"] == "PropagationPolicy shop/web"
    assert {r["cluster"]: r["replicas"] for r in web["rows"] if r["chosen"]} == {"eu-west": 4, "us-east": 2}


def test_malformed_yaml_is_one_line_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: a: b\n")
    code, out, err = _plan(["plan", "-f", str(bad), "--clusters", "examples/clusters.yaml"], monkeypatch)
    assert code == 1
    assert out == ""
    assert err.strip() == f"error: {bad}:5: malformed YAML: mapping values are not allowed here"
    assert "Traceback" not in err


def test_invalid_policy_names_file_line_object_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "apiVersion: federation.io/v1alpha1\nkind: PropagationPolicy\nmetadata:\n  name: p\n"
        "spec:\n  resourceSelectors:\n    - {apiVersion: v1, kind: ConfigMap}\n"
        "  placement:\n    replicaScheduling:\n      type: Spread\n"
    )
    code, _, err = _plan(["plan", "-f", str(bad), "--clusters", "examples/clusters.yaml"], monkeypatch)
    assert code == 1
    assert err.startswith(
        f"error: {bad}:10: PropagationPolicy default/p: "
        "spec.placement.replicaScheduling.type: Input should be"
    ), err


def test_failing_override_is_reported_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = tmp_path / "o.yaml"
    overrides.write_text(
        "apiVersion: federation.io/v1alpha1\nkind: OverridePolicy\n"
        "metadata: {name: broken, namespace: shop}\n"
        "spec:\n  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]\n"
        "  rules:\n    - overriders:\n        jsonPatch: [{op: remove, path: /spec/missing}]\n"
    )
    code, out, _ = _plan(
        [
            "plan",
            "-f",
            "examples/policies.yaml",
            "-f",
            str(overrides),
            "-f",
            "examples/workloads.yaml",
            "--clusters",
            "examples/clusters.yaml",
        ],
        monkeypatch,
    )
    assert code == 1
    assert (
        "eu-west: FAILED: OverridePolicy shop/broken rule[0].overriders.jsonPatch[0] (remove /spec/missing) "
        "failed for Deployment shop/web on cluster eu-west: path /spec/missing does not exist"
    ) in out


def test_missing_file(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _plan(["plan", "-f", "nope.yaml", "--clusters", "examples/clusters.yaml"], monkeypatch)
    assert code == 1
    assert err.strip() == "error: nope.yaml: no such file"


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


POLICY = """\
apiVersion: federation.io/v1alpha1
kind: PropagationPolicy
metadata: {{name: p, namespace: shop}}
spec:
  resourceSelectors: [{{apiVersion: apps/v1, kind: Deployment}}]
  placement: {{clusterNames: [us-east]}}
{extra}
"""

WORKLOAD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: shop}
spec:
  replicas: 2
  template:
    spec:
      imagePullSecrets: [{name: pull}]
      containers: [{name: c, image: nginx, envFrom: [{configMapRef: {name: cfg}}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated, namespace: shop}
"""


def test_suspended_policy_keeps_its_decision_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _write(tmp_path, "p.yaml", POLICY.format(extra="  suspend: true\n  deletionPolicy: Orphan"))
    workload = _write(tmp_path, "w.yaml", WORKLOAD)
    code, out, _ = _plan(
        ["plan", "-f", policy, "-f", workload, "--clusters", "examples/clusters.yaml"], monkeypatch
    )
    assert code == 0
    block = out.split("\n\n")[0]
    assert "  SUSPENDED:  the policy is suspended: the decision below is kept, nothing is applied" in out
    assert "  deletion:   Orphan: copies stay, without our ownership stamp" in block
    assert "dependencies" not in out  # the policy does not propagate them
    code, out, _ = _plan(
        ["plan", "-f", policy, "-f", workload, "--clusters", "examples/clusters.yaml", "-o", "json"],
        monkeypatch,
    )
    web = json.loads(out)["resources"][0]
    assert (web["suspended"], web["deletion_policy"], web["dependencies"]) == (True, "Orphan", None)
    assert {r["cluster"]: r["replicas"] for r in web["rows"] if r["chosen"]} == {"us-east": 2}


def test_dependencies_follow_their_workload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _write(tmp_path, "p.yaml", POLICY.format(extra="  propagateDependencies: true\n  suspend: true"))
    workload = _write(tmp_path, "w.yaml", WORKLOAD)
    args = ["plan", "-f", policy, "-f", workload, "--clusters", "examples/clusters.yaml"]
    code, out, _ = _plan(args, monkeypatch)
    assert code == 0
    assert (
        "  dependencies (propagateDependencies: they follow this workload to its clusters):\n"
        "    ConfigMap shop/cfg\n"
        "    Secret shop/pull (not in the given files: it must exist on the hub)\n"
    ) in out
    assert "  follows:    Deployment shop/w (as a dependency)" in out
    assert "  us-east     yes     -         dependency of Deployment shop/w (policy suspended)" in out
    # A template that nothing selects and nothing depends on stays on the hub.
    assert "ConfigMap shop/unrelated (v1)\n  no policy selects this resource: it stays on the hub\n" in out
    code, out, _ = _plan([*args, "-o", "json"], monkeypatch)
    w, cfg, unrelated = json.loads(out)["resources"]
    assert w["dependencies"] == [
        {"ref": "ConfigMap shop/cfg", "given": True},
        {"ref": "Secret shop/pull", "given": False},
    ]
    assert cfg["dependency_of"] == ["Deployment shop/w"] and cfg["policy"] is None
    assert [r["cluster"] for r in cfg["rows"] if r["chosen"]] == ["us-east"]
    assert unrelated["dependency_of"] == [] and not any(r["chosen"] for r in unrelated["rows"])
