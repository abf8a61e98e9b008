"""The federation.io API models: parsing, errors naming object and field, the clusters file,
YAML line numbers, and the generated CRDs (in sync, structural)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api import (
    ConflictResolution,
    DeletionPolicy,
    LabelSelector,
    MemberCluster,
    OverrideRule,
    PropagationPolicy,
    ReplicaSchedulingType,
    load_clusters_file,
    parse_object,
    parse_quantity,
    parse_yaml,
    render_crds,
)
from federation.cli import main
from federation.errors import ConfigError, InvalidObjectError
from tests.policy_cases import INVALID, VALID, Case

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_objects_parse_and_round_trip(case: Case) -> None:
    obj = parse_object(case.in_namespace("ns"))
    again = type(obj).model_validate(obj.to_dict())
    assert again == obj


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_objects_name_the_object_and_field(case: Case) -> None:
    obj = case.in_namespace("ns")
    with pytest.raises(InvalidObjectError) as info:
        parse_object(obj)
    message = str(info.value)
    ref = (
        f"{obj['kind']} ns/{obj['metadata']['name']}"
        if "namespace" in obj["metadata"]
        else f"{obj['kind']} {obj['metadata']['name']}"
    )
    assert message.startswith(ref + ": "), message
    assert (
        f" {case.field}: " in message
        or f" {case.field}[" in message
        or message.startswith(f"{ref}: {case.field}")
    ), message


def test_unknown_fields_are_refused() -> None:
    obj = VALID[0].in_namespace("ns")
    obj["spec"]["placment"] = {}
    with pytest.raises(InvalidObjectError, match=r"spec\.placment: unknown field"):
        PropagationPolicy.model_validate(obj)


@pytest.mark.parametrize(
    ("placement", "field"),
    [
        ({"clusterAffinity": {"clusterNames": ["a"]}}, "spec.placement.clusterAffinity"),
        ({"clusterTolerations": []}, "spec.placement.clusterTolerations"),
        (
            {
                "replicaScheduling": {
                    "type": "Divided",
                    "weightPreference": {"dynamicWeight": "AvailableReplicas"},
                }
            },
            "spec.placement.replicaScheduling.weightPreference",
        ),
    ],
)
def test_the_pre_issue_field_names_are_refused(placement: dict[str, Any], field: str) -> None:
    """A policy written for the first draft of the API fails loudly instead of being half-read."""
    obj = VALID[0].in_namespace("ns")
    obj["spec"]["placement"] = placement
    with pytest.raises(InvalidObjectError, match=rf"{re.escape(field)}: unknown field"):
        PropagationPolicy.model_validate(obj)


def test_policy_defaults() -> None:
    policy = PropagationPolicy.model_validate(VALID[0].in_namespace("ns"))
    assert policy.spec.conflict_resolution is ConflictResolution.ABORT
    assert policy.spec.deletion_policy is DeletionPolicy.DELETE
    assert policy.spec.propagate_dependencies is False
    assert policy.spec.suspend is False
    assert policy.spec.placement.scheduling.type is ReplicaSchedulingType.DUPLICATED
    assert policy.spec.placement.scheduling.weights is None
    assert policy.spec.placement.scheduling.dynamic is None


def test_policy_status_and_member_cluster_status_fields() -> None:
    obj = VALID[0].in_namespace("ns")
    obj["status"] = {
        "observedGeneration": 3,
        "matchedResources": 12,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    status = PropagationPolicy.model_validate(obj).status
    assert status is not None and status.matched_resources == 12 and status.observed_generation == 3
    obj["status"]["matchedResources"] = -1
    with pytest.raises(InvalidObjectError, match=r"status\.matchedResources: Input should be greater"):
        PropagationPolicy.model_validate(obj)
    mc = MemberCluster.model_validate(
        {
            "kind": "MemberCluster",
            "metadata": {"name": "a"},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "Unreachable"}],
                "kubernetesVersion": "v1.31.2",
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "lastProbeTime": "2025-01-01T00:00:10Z",
                "availableReplicas": 4,
            },
        }
    )
    assert mc.status is not None and mc.status.last_probe_time == "2025-01-01T00:00:10Z"
    assert not mc.ready
    assert MemberCluster.model_validate(mc.to_dict()) == mc


def test_override_rule_targets() -> None:
    """No targetClusters: every cluster; otherwise exactly the clusters of its one selector."""
    every, by_name, by_label = (
        OverrideRule.model_validate({"overriders": {"replicas": 1}, **target})
        for target in (
            {},
            {"targetClusters": {"clusterNames": ["eu-1"]}},
            {"targetClusters": {"clusterSelector": {"matchLabels": {"region": "us"}}}},
        )
    )
    assert every.applies_to("x", {}) and every.target_clusters is None
    assert by_name.applies_to("eu-1", {}) and not by_name.applies_to("eu-2", {"region": "us"})
    assert by_label.applies_to("z", {"region": "us"}) and not by_label.applies_to("eu-1", {"region": "eu"})


def test_namespaced_policy_cannot_select_another_namespace() -> None:
    obj = VALID[0].in_namespace("ns")
    obj["spec"]["resourceSelectors"][0]["namespace"] = "other"
    with pytest.raises(InvalidObjectError, match="selects only in its own namespace 'ns'"):
        parse_object(obj)


def test_member_cluster_readiness_and_defaults() -> None:
    mc = MemberCluster.model_validate(
        {
            "kind": "MemberCluster",
            "metadata": {"name": "a"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "500m"}},
        }
    )
    assert mc.ready
    assert mc.spec.taints == ()
    assert not MemberCluster.model_validate({"kind": "MemberCluster", "metadata": {"name": "b"}}).ready


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selector_semantics(selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is matches


@settings(deadline=None)
@given(labels=st.dictionaries(st.sampled_from("abc"), st.sampled_from("xyz")), key=st.sampled_from("abc"))
def test_in_and_notin_are_complements(labels: dict[str, str], key: str) -> None:
    values = ["x", "y"]
    is_in = LabelSelector.model_validate(
        {"matchExpressions": [{"key": key, "operator": "In", "values": values}]}
    )
    not_in = LabelSelector.model_validate(
        {"matchExpressions": [{"key": key, "operator": "NotIn", "values": values}]}
    )
    assert is_in.matches(labels) != not_in.matches(labels)


def test_quantities() -> None:
    assert parse_quantity("500m") * 1000 == 500
    assert parse_quantity("4Gi") == 4 * 2**30
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("lots")


# -- YAML and the clusters file ------------------------------------------------------------------


def test_malformed_yaml_names_file_and_line() -> None:
    with pytest.raises(
        ConfigError, match=r"^f\.yaml:3: malformed YAML: mapping values are not allowed here$"
    ):
        parse_yaml("x: 1\ny: 2\nz: a: b\n", source="f.yaml")


def test_yaml_documents_know_their_lines() -> None:
    docs = parse_yaml("---\na: 1\n---\n\n---\nb:\n  c:\n    - d: 1\n", source="f.yaml")
    assert [d.data for d in docs] == [{"a": 1}, {"b": {"c": [{"d": 1}]}}]
    assert docs[1].line_of(("b", "c", 0, "d")) == 8
    assert docs[1].line_of(("b", "missing")) == 6


def test_clusters_file_example_loads(tmp_path: Path) -> None:
    entries = load_clusters_file(REPO / "clusters.example.yaml")
    assert [e.name for e in entries] == ["eu-west", "eu-central", "us-east"]
    assert entries[0].kubeconfig == REPO / "kubeconfigs/eu-west.yaml"
    assert entries[2].kubeconfig == Path("~/.kube/us-east.yaml").expanduser()
    assert entries[1].taints[0].describe() == "maintenance=true:NoSchedule"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "clusters:\n  - name: a\n    labels: {x: 1}\n",
            r"c\.yaml:3: clusters file: clusters\[0\]\.labels\.x: Input should be a valid string",
        ),
        (
            "clusters:\n  - name: a\n  - name: B_b\n",
            r"c\.yaml:3: clusters file: clusters\[1\]\.name: String should match pattern",
        ),
        (
            "clusters:\n  - name: a\n    taints:\n      - {key: k, effect: Never}\n",
            r"c\.yaml:4: .*clusters\[0\]\.taints\[0\]\.effect",
        ),
        (
            "clusters:\n  - name: a\n    kubconfig: x\n",
            r"c\.yaml:3: .*clusters\[0\]\.kubconfig: unknown field",
        ),
        (
            "clusters:\n  - name: a\n  - name: a\n",
            r"c\.yaml:3: clusters file: clusters\[1\]\.name: duplicate cluster name 'a'",
        ),
        ("clusters: [\n", r"c\.yaml:2: malformed YAML"),
        ("", r"expected one YAML document"),
    ],
)
def test_clusters_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_clusters_file(path)


def test_missing_clusters_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_clusters_file(tmp_path / "nope.yaml")


# -- CRDs ----------------------------------------------------------------------------------------


def test_checked_in_crds_match_the_models() -> None:
    for name, text in render_crds().items():
        path = REPO / "deploy" / "crds" / name
        assert path.is_file(), f"{path} is missing: run `federation crds`"
        assert path.read_text() == text, f"{path} is stale: run `federation crds`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        if "properties" in node or "type" in node or "x-kubernetes-preserve-unknown-fields" in node:
            out.append((path, node))
        for key in ("properties",):
            for name, sub in node.get(key, {}).items():
                out += _walk(sub, f"{path}.{name}")
        if "items" in node:
            out += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_crds_are_structural() -> None:
    for text in render_crds().values():
        crd = yaml.safe_load(text)
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        schema = version["schema"]["openAPIV3Schema"]
        assert "$ref" not in text and "anyOf" not in text and "&id" not in text
        for path, node in _walk(schema):
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, path
            if node.get("type") == "object" and "properties" in node:
                assert "additionalProperties" not in node, path


def test_crds_carry_the_cross_field_rules() -> None:
    text = render_crds()["federation.io_propagationpolicies.yaml"]
    for rule in (
        "has(self.clusterNames) != has(self.clusterSelector)",
        "self.maxGroups >= self.minGroups",
        "self.type == 'Divided' || (!has(self.weights) && !has(self.dynamic))",
        "'!has(self.weights) || !has(self.dynamic)'",
    ):
        assert rule in text
    for default in ("Abort", "Duplicated", "Delete"):
        assert f"default: {default}" in text
    spec = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["propagateDependencies"]["default"] is False
    assert spec["properties"]["suspend"]["default"] is False
    assert set(spec["properties"]["placement"]["properties"]) == {
        "clusterNames",
        "clusterSelector",
        "excludeClusters",
        "tolerations",
        "maxClusters",
        "spreadConstraints",
        "replicaScheduling",
    }
    overrides = render_crds()["federation.io_overridepolicies.yaml"]
    rule = yaml.safe_load(overrides)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]["rules"]["items"]
    assert rule["properties"]["targetClusters"]["x-kubernetes-validations"] == [
        {
            "rule": "has(self.clusterNames) != has(self.clusterSelector)",
            "message": "give exactly one of clusterNames or clusterSelector",
        }
    ]


def test_crds_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "crds"
    result = runner.invoke(main, ["crds", "--output-dir", str(out), "--check"])
    assert result.exit_code == 1
    assert "differ from the models" in result.output
    assert runner.invoke(main, ["crds", "--output-dir", str(out)]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(render_crds())
    assert runner.invoke(main, ["crds", "--output-dir", str(out), "--check"]).exit_code == 0
    (out / "federation.io_memberclusters.yaml").write_text("# edited\n")
    result = runner.invoke(main, ["crds", "--output-dir", str(out), "--check"])
    assert result.exit_code == 1
    assert "federation.io_memberclusters.yaml" in result.output


def test_wrong_api_version_or_kind_is_refused() -> None:
    obj = VALID[0].in_namespace("ns")
    with pytest.raises(InvalidObjectError, match=r"PropagationPolicy ns/p: apiVersion: Input should be"):
        PropagationPolicy.model_validate({**obj, "apiVersion": "federation.io/v1beta1"})
    with pytest.raises(InvalidObjectError, match=r"not a federation\.io/v1alpha1 object"):
        parse_object({**obj, "kind": "Deployment"})


def test_the_readme_field_layout_is_valid() -> None:
    """The README shows every field of every kind; it must stay a valid example of the API."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("The fields, as the apiserver") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", 1)]
    kinds = [parse_object(doc.data).kind for doc in parse_yaml(block, source="README.md")]
    assert kinds == ["PropagationPolicy", "OverridePolicy", "MemberCluster"]
