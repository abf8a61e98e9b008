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
        "  overrideRules:\n    - overriders:\n        jsonPatch: [{op: remove, path: /spec/missing}]\n"
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
