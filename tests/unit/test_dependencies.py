"""dependencies_of: what a workload's pods reference (propagateDependencies), found in every
place Kubernetes allows, for every built-in workload kind, each once, in a fixed order."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.translate import DependencyRef, dependencies_of


def workload(
    pod_spec: dict[str, Any], *, kind: str = "Deployment", api_version: str = "apps/v1"
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "w", "namespace": "shop"},
    }
    if kind == "Pod":
        manifest["spec"] = pod_spec
    elif kind == "CronJob":
        manifest["spec"] = {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}
    else:
        manifest["spec"] = {"replicas": 2, "template": {"metadata": {}, "spec": pod_spec}}
    return manifest


def refs(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d.kind, d.name) for d in dependencies_of(manifest)]


EVERY_PLACE = {
    "serviceAccountName": "runner",
    "imagePullSecrets": [{"name": "pull"}],
    "volumes": [
        {"name": "v1", "configMap": {"name": "cm-volume"}},
        {"name": "v2", "secret": {"secretName": "secret-volume"}},
        {"name": "v3", "persistentVolumeClaim": {"claimName": "data"}},
        {
            "name": "v4",
            "projected": {
                "sources": [
                    {"configMap": {"name": "cm-projected"}},
                    {"secret": {"name": "secret-projected"}},
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": []}},
                ]
            },
        },
        {"name": "v5", "emptyDir": {}},
    ],
    "initContainers": [
        {
            "name": "init",
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-init", "key": "a"}}}],
        }
    ],
    "containers": [
        {
            "name": "main",
            "env": [
                {"name": "PLAIN", "value": "x"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "secret-env", "key": "b"}}},
                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "envFrom": [{"configMapRef": {"name": "cm-envfrom"}}, {"secretRef": {"name": "secret-envfrom"}}],
        }
    ],
    "ephemeralContainers": [{"name": "debug", "envFrom": [{"secretRef": {"name": "secret-debug"}}]}],
}


def test_every_place_a_pod_spec_references_an_object() -> None:
    found = dependencies_of(workload(EVERY_PLACE))
    assert [(d.kind, d.name) for d in found] == [
        ("ConfigMap", "cm-envfrom"),
        ("ConfigMap", "cm-init"),
        ("ConfigMap", "cm-projected"),
        ("ConfigMap", "cm-volume"),
        ("PersistentVolumeClaim", "data"),
        ("Secret", "pull"),
        ("Secret", "secret-debug"),
        ("Secret", "secret-env"),
        ("Secret", "secret-envfrom"),
        ("Secret", "secret-projected"),
        ("Secret", "secret-volume"),
        ("ServiceAccount", "runner"),
    ]
    assert all(d.api_version == "v1" and d.namespace == "shop" for d in found)
    assert found[0].ref == "ConfigMap shop/cm-envfrom"


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
    ],
)
def test_every_built_in_workload_kind(api_version: str, kind: str) -> None:
    manifest = workload(
        {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}]},
        kind=kind,
        api_version=api_version,
    )
    assert refs(manifest) == [("Secret", "s")]


@pytest.mark.parametrize(
    "manifest",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"volumes": "x"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": []}},
        # A custom kind shaped like a Deployment is not assumed to be one: its fields mean what its
        # CRD says, and guessing would propagate objects nobody asked for.
        workload({"serviceAccountName": "x"}, kind="Rollout", api_version="argoproj.io/v1alpha1"),
        # A Deployment of another group is not the built-in one.
        workload({"serviceAccountName": "x"}, kind="Deployment", api_version="example.com/v1"),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": []}},
    ],
)
def test_no_dependencies_without_a_built_in_pod_template(manifest: dict[str, Any]) -> None:
    assert dependencies_of(manifest) == ()


def test_service_accounts_default_and_deprecated_field() -> None:
    assert refs(workload({"serviceAccountName": "default"})) == []
    assert refs(workload({"serviceAccount": "legacy"})) == [("ServiceAccount", "legacy")]
    assert refs(workload({"serviceAccountName": "new", "serviceAccount": "legacy"})) == [
        ("ServiceAccount", "new")
    ]


def test_duplicates_are_listed_once_and_kinds_are_not_mixed_up() -> None:
    spec = {
        "volumes": [
            {"name": "a", "configMap": {"name": "same"}},
            {"name": "b", "secret": {"secretName": "same"}},
        ],
        "containers": [
            {"name": "c1", "envFrom": [{"configMapRef": {"name": "same"}}]},
            {"name": "c2", "envFrom": [{"configMapRef": {"name": "same"}}]},
        ],
    }
    assert refs(workload(spec)) == [("ConfigMap", "same"), ("Secret", "same")]


def test_cluster_scoped_or_namespace_less_manifest() -> None:
    manifest = workload({"imagePullSecrets": [{"name": "p"}]})
    del manifest["metadata"]["namespace"]
    assert dependencies_of(manifest) == (
        DependencyRef(api_version="v1", kind="Secret", namespace=None, name="p"),
    )


def test_malformed_references_are_skipped_not_fatal() -> None:
    spec = {
        "volumes": [
            "not-a-volume",
            {"configMap": None},
            {"secret": {"secretName": 7}},
            {"projected": {"sources": {}}},
        ],
        "containers": {"name": "not-a-list"},
        "initContainers": [{"env": [None, {"valueFrom": "x"}], "envFrom": [{"secretRef": {"name": ""}}]}],
        "imagePullSecrets": [{"name": None}],
        "serviceAccountName": 42,
    }
    assert dependencies_of(workload(spec)) == ()


# -- properties ----------------------------------------------------------------------------------

names = st.sampled_from(["a", "b", "c", "cfg", "tls", "data", "runner"])

# Where a reference can be written, as a function from a name to the fragment that holds it.
PLACES: dict[str, tuple[str, Any]] = {
    "volume-configmap": ("ConfigMap", lambda n: ("volumes", {"name": "v", "configMap": {"name": n}})),
    "volume-secret": ("Secret", lambda n: ("volumes", {"name": "v", "secret": {"secretName": n}})),
    "volume-pvc": (
        "PersistentVolumeClaim",
        lambda n: ("volumes", {"name": "v", "persistentVolumeClaim": {"claimName": n}}),
    ),
    "projected-configmap": (
        "ConfigMap",
        lambda n: ("volumes", {"name": "v", "projected": {"sources": [{"configMap": {"name": n}}]}}),
    ),
    "projected-secret": (
        "Secret",
        lambda n: ("volumes", {"name": "v", "projected": {"sources": [{"secret": {"name": n}}]}}),
    ),
    "env-configmap": (
        "ConfigMap",
        lambda n: ("env", {"name": "E", "valueFrom": {"configMapKeyRef": {"name": n, "key": "k"}}}),
    ),
    "env-secret": (
        "Secret",
        lambda n: ("env", {"name": "E", "valueFrom": {"secretKeyRef": {"name": n, "key": "k"}}}),
    ),
    "envfrom-configmap": ("ConfigMap", lambda n: ("envFrom", {"configMapRef": {"name": n}})),
    "envfrom-secret": ("Secret", lambda n: ("envFrom", {"secretRef": {"name": n}})),
    "pull-secret": ("Secret", lambda n: ("imagePullSecrets", {"name": n})),
}


@st.composite
def pod_specs(draw: st.DrawFn) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """A pod spec with references in random places, and the (kind, name) set it references."""
    spec: dict[str, Any] = {}
    expected: set[tuple[str, str]] = set()
    groups = ("containers", "initContainers", "ephemeralContainers")
    containers: dict[str, list[dict[str, Any]]] = {
        g: [{"name": f"{g}-{i}"} for i in range(draw(st.integers(0, 2)))] for g in groups
    }
    containers["containers"] = containers["containers"] or [{"name": "main"}]
    for place, name in draw(st.lists(st.tuples(st.sampled_from(sorted(PLACES)), names), max_size=12)):
        kind, fragment = PLACES[place]
        where, value = fragment(name)
        expected.add((kind, name))
        if where in ("env", "envFrom"):
            group = draw(st.sampled_from([g for g in groups if containers[g]]))
            target = draw(st.sampled_from(containers[group]))
            target.setdefault(where, []).append(value)
        else:
            spec.setdefault(where, []).append(value)
    account = draw(st.none() | st.just("default") | names)
    if account is not None:
        spec["serviceAccountName"] = account
        if account != "default":
            expected.add(("ServiceAccount", account))
    spec.update({g: c for g, c in containers.items() if c})
    return spec, expected


@given(case=pod_specs(), kind=st.sampled_from(["Pod", "Deployment", "StatefulSet", "CronJob"]))
@settings(max_examples=200, deadline=None)
def test_finds_exactly_what_is_referenced_each_once_sorted(
    case: tuple[dict[str, Any], set[tuple[str, str]]], kind: str
) -> None:
    spec, expected = case
    api_version = {"Pod": "v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    manifest = workload(spec, kind=kind, api_version=api_version)
    before = copy.deepcopy(manifest)
    found = refs(manifest)
    assert found == sorted(expected)  # exactly the references, each once, sorted by kind then name
    assert manifest == before  # the template is not modified


@given(case=pod_specs(), data=st.data())
@settings(max_examples=100, deadline=None)
def test_order_of_containers_volumes_and_entries_does_not_matter(
    case: tuple[dict[str, Any], set[tuple[str, str]]], data: st.DataObject
) -> None:
    spec, _ = case
    shuffled = copy.deepcopy(spec)
    for key, value in shuffled.items():
        if isinstance(value, list):
            shuffled[key] = data.draw(st.permutations(value))
            for item in shuffled[key]:
                for inner in ("env", "envFrom"):
                    if isinstance(item, dict) and inner in item:
                        item[inner] = data.draw(st.permutations(item[inner]))
    assert dependencies_of(workload(shuffled)) == dependencies_of(workload(spec))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["name", "secretName", "configMap", "secret", "env", "valueFrom", "sources", "projected", "x"]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@given(
    spec=st.dictionaries(
        st.sampled_from(
            [
                "volumes",
                "containers",
                "initContainers",
                "ephemeralContainers",
                "imagePullSecrets",
                "serviceAccountName",
            ]
        ),
        json_values,
    )
)
@settings(max_examples=200, deadline=None)
def test_any_shape_of_pod_spec_is_survived(spec: dict[str, Any]) -> None:
    """Templates are user input: whatever their shape, the answer is a sorted tuple of named refs."""
    found = dependencies_of(workload(spec))
    assert all(isinstance(d.name, str) and d.name for d in found)
    keys = [(d.kind, d.name) for d in found]
    assert keys == sorted(set(keys))
