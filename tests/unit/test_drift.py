"""Drift detection by projection (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federation.propagate import ABSENT, differences, project, project_object, projection_hash

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "resources": {"limits": {"cpu": "500m"}}}
                ]
            }
        },
    },
}


def live_after_apply() -> dict[str, Any]:
    """What an apiserver answers: defaults added, a quantity normalised, status and metadata set."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"app": "web", "extra": "x"},
            "resourceVersion": "7",
            "uid": "u",
            "managedFields": [{"manager": "federation"}],
        },
        "spec": {
            "replicas": 3,
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {"limits": {"cpu": "0.5"}},
                        }
                    ]
                }
            },
        },
        "status": {"replicas": 3},
    }


def test_baseline_ignores_defaults_status_and_other_owners_fields() -> None:
    live = live_after_apply()
    base = projection_hash(live, DESIRED)
    changed = live_after_apply()
    changed["status"]["replicas"] = 1
    changed["spec"]["replicas"] = 5  # not a field we set (retained or left to an HPA)
    changed["metadata"]["resourceVersion"] = "8"
    changed["metadata"]["labels"]["extra"] = "y"
    changed["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    assert projection_hash(changed, DESIRED) == base


def test_an_edit_of_a_managed_field_is_drift_and_the_diff_names_it() -> None:
    live = live_after_apply()
    base = project_object(live, DESIRED)
    edited = live_after_apply()
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:evil"
    assert projection_hash(edited, DESIRED) != projection_hash(live, DESIRED)
    diff = differences(base, project_object(edited, DESIRED))
    assert diff == [
        {"path": "/spec/template/spec/containers/0/image", "hub": "nginx:1.27", "member": "nginx:evil"}
    ]


def test_removed_label_and_added_container_are_drift() -> None:
    live = live_after_apply()
    no_label = live_after_apply()
    del no_label["metadata"]["labels"]["app"]
    assert projection_hash(no_label, DESIRED) != projection_hash(live, DESIRED)
    assert project_object(no_label, DESIRED)["metadata"]["labels"] == {"app": ABSENT}
    sidecar = live_after_apply()
    sidecar["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    assert projection_hash(sidecar, DESIRED) != projection_hash(live, DESIRED)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=15,
)


@given(json_values)
def test_projecting_a_value_onto_itself_is_the_identity(value: Any) -> None:
    assert project(value, value) == value


@given(json_values, json_values)
def test_differences_are_empty_exactly_when_equal(a: Any, b: Any) -> None:
    assert (differences(a, b) == []) == (a == b)
