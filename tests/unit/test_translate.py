"""Translation: pruning, replicas, overrides (and their errors), ownership stamp and hash."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api import ClusterOverridePolicy, ImageComponent, ImageOperator, OverridePolicy
from federation.errors import ConfigError, OverrideError
from federation.placement import ClusterSnapshot
from federation.translate import (
    OWNERSHIP,
    HubId,
    ImageRefError,
    Ownership,
    apply_merge_patch,
    apply_patch,
    content_hash,
    format_policy,
    format_source,
    hub_id,
    override_image,
    parse_source,
    resolve_overrides,
    strip_fields,
    translate,
)
from federation.translate.jsonpatch import PatchError

EU = ClusterSnapshot("eu-1", {"region": "eu"})
US = ClusterSnapshot("us-1", {"region": "us"})
OWNER = Ownership(hub=hub_id("hub-a"), policy=format_policy("PropagationPolicy", "shop", "web"))


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "1234",
            "resourceVersion": "99",
            "generation": 3,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "finalizers": ["hub.example.com/x"],
            "ownerReferences": [{"kind": "X"}],
            "labels": {"app": "web", "federation.io/hub": "forged"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "federation.io/hash": "forged",
                "team": "shop",
            },
        },
        "spec": {
            "replicas": 6,
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [{"name": "web", "image": "ghcr.io/example/web:1.27"}],
                }
            },
        },
        "status": {"readyReplicas": 6},
    }


def overrides(rules: list[dict[str, Any]], *, cluster_scoped: bool = False, name: str = "o") -> Any:
    spec = {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}], "rules": rules}
    if cluster_scoped:
        return ClusterOverridePolicy.model_validate(
            {"kind": "ClusterOverridePolicy", "metadata": {"name": name}, "spec": spec}
        )
    return OverridePolicy.model_validate(
        {"kind": "OverridePolicy", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}
    )


def run(
    rules: list[dict[str, Any]], *, cluster: ClusterSnapshot = EU, template: dict[str, Any] | None = None
) -> dict[str, Any]:
    template = template or deployment()
    resolved = resolve_overrides(template, cluster=cluster, policies=[overrides(rules)])
    return translate(template, cluster=cluster, replicas=4, overrides=resolved, ownership=OWNER).manifest


# -- pruning, replicas, stamp --------------------------------------------------------------------


def test_hub_only_metadata_and_status_are_dropped_and_ownership_stamped() -> None:
    template = deployment()
    before = copy.deepcopy(template)
    out = translate(template, cluster=EU, replicas=4, overrides=(), ownership=OWNER)
    assert template == before  # the template is not modified
    meta = out.manifest["metadata"]
    assert set(meta) == {"name", "namespace", "labels", "annotations"}
    assert "status" not in out.manifest
    assert meta["labels"] == {
        "app": "web",
        "federation.io/hub": "hub-a",
        "federation.io/managed-by": "federation",
    }
    assert meta["annotations"] == {
        "team": "shop",
        "federation.io/source": "apps/v1/Deployment/shop/web",
        "federation.io/source-uid": "1234",
        "federation.io/policy": "PropagationPolicy/shop/web",
        "federation.io/hash": out.hash,
    }
    assert out.manifest["spec"]["replicas"] == 4


def test_replicas_none_leaves_spec_alone_and_service_ip_is_dropped() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "x"},
        "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80}]},
    }
    out = translate(svc, cluster=EU, replicas=None, overrides=(), ownership=OWNER).manifest
    assert out["spec"] == {"ports": [{"port": 80}]}
    headless = {**svc, "spec": {"clusterIP": "None"}}
    assert translate(headless, cluster=EU, replicas=None, overrides=(), ownership=OWNER).manifest["spec"] == {
        "clusterIP": "None"
    }


def test_hash_is_sha256_of_canonical_json_without_the_hash_annotation() -> None:
    out = translate(deployment(), cluster=EU, replicas=4, overrides=(), ownership=OWNER)
    manifest = copy.deepcopy(out.manifest)
    del manifest["metadata"]["annotations"][OWNERSHIP.hash_annotation]
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert out.hash == hashlib.sha256(canonical).hexdigest()[:32]
    assert content_hash(out.manifest) == out.hash


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)


@settings(deadline=None)
@given(data=st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_hash_ignores_key_order_and_sees_every_change(data: dict[str, Any]) -> None:
    manifest = {"metadata": {"name": "x"}, "data": data}
    reordered = {"data": dict(reversed(list(data.items()))), "metadata": {"name": "x"}}
    assert content_hash(manifest) == content_hash(reordered)
    changed = {**manifest, "data": {**data, "extra-key": 1}}
    assert content_hash(changed) != content_hash(manifest)
    stamped = {**manifest, "metadata": {"name": "x", "annotations": {OWNERSHIP.hash_annotation: "abc"}}}
    assert content_hash(stamped) == content_hash(manifest)


def test_retained_fields_are_left_out_before_hashing() -> None:
    out = translate(
        deployment(), cluster=EU, replicas=4, overrides=(), ownership=OWNER, retain_fields=["/spec/replicas"]
    )
    assert "replicas" not in out.manifest["spec"]
    assert out.hash == content_hash(out.manifest)
    assert strip_fields({"a": {"b": 1, "c": [1, 2]}}, ["/a/b", "/a/c/0", "/missing/x", "bad"]) == {
        "a": {"c": [2]}
    }


def test_source_and_policy_formats_round_trip() -> None:
    assert (
        format_source(api_version="v1", kind="ConfigMap", namespace="shop", name="cfg")
        == "core/v1/ConfigMap/shop/cfg"
    )
    cluster_role = format_source(
        api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole", namespace=None, name="viewer"
    )
    assert cluster_role == "rbac.authorization.k8s.io/v1/ClusterRole//viewer"
    ref = parse_source(cluster_role)
    assert (ref.api_version, ref.kind, ref.namespace, ref.name) == (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        None,
        "viewer",
    )
    assert parse_source("core/v1/ConfigMap/shop/cfg").api_version == "v1"
    with pytest.raises(ValueError, match="is not"):
        parse_source("v1/ConfigMap/cfg")
    assert format_policy("ClusterPropagationPolicy", None, "all") == "ClusterPropagationPolicy/all"


def test_hub_id_must_be_a_label_value() -> None:
    with pytest.raises(ConfigError, match="not a valid label value"):
        hub_id("hub/a")
    with pytest.raises(ConfigError):
        Ownership(hub=HubId("-bad-"), policy="p")


# -- overrides -----------------------------------------------------------------------------------


def test_override_order_cluster_policies_first_then_by_name_then_rules() -> None:
    cop = overrides([{"overriders": {"labels": {"set": {"order": "cop"}}}}], cluster_scoped=True, name="z")
    op_b = overrides(
        [
            {"overriders": {"labels": {"set": {"order": "b0"}}}},
            {"overriders": {"labels": {"set": {"order": "b1"}}}},
        ],
        name="b",
    )
    op_a = overrides([{"overriders": {"labels": {"set": {"order": "a"}}}}], name="a")
    resolved = resolve_overrides(deployment(), cluster=EU, policies=[op_b, op_a, cop])
    assert [(r.policy, r.rule_index) for r in resolved] == [
        ("ClusterOverridePolicy z", 0),
        ("OverridePolicy shop/a", 0),
        ("OverridePolicy shop/b", 0),
        ("OverridePolicy shop/b", 1),
    ]
    out = translate(deployment(), cluster=EU, replicas=None, overrides=resolved, ownership=OWNER).manifest
    assert out["metadata"]["labels"]["order"] == "b1"


def test_target_clusters_limit_a_rule() -> None:
    rules = [
        {
            "targetClusters": {"clusterSelector": {"matchLabels": {"region": "us"}}},
            "overriders": {"replicas": 1},
        }
    ]
    assert run(rules, cluster=EU)["spec"]["replicas"] == 4
    assert run(rules, cluster=US)["spec"]["replicas"] == 1


def test_target_clusters_by_name() -> None:
    rules = [{"targetClusters": {"clusterNames": ["eu-1"]}, "overriders": {"replicas": 1}}]
    assert run(rules, cluster=EU)["spec"]["replicas"] == 1
    assert run(rules, cluster=US)["spec"]["replicas"] == 4


@pytest.mark.parametrize(
    ("api_version", "kind", "path"),
    [
        ("v1", "Pod", ("spec",)),
        ("batch/v1", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
        ("batch/v1", "Job", ("spec", "template", "spec")),
        ("argoproj.io/v1alpha1", "Rollout", ("spec", "template", "spec")),  # custom, Deployment-shaped
    ],
)
def test_image_overrides_find_the_pod_spec_of_every_workload_kind(
    api_version: str, kind: str, path: tuple[str, ...]
) -> None:
    template: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "w", "namespace": "shop"},
    }
    node = template
    for part in path:
        node = node.setdefault(part, {})
    node["containers"] = [{"name": "c", "image": "nginx:1"}]
    policy = OverridePolicy.model_validate(
        {
            "kind": "OverridePolicy",
            "metadata": {"name": "o", "namespace": "shop"},
            "spec": {
                "resourceSelectors": [{"apiVersion": api_version, "kind": kind}],
                "rules": [{"overriders": {"image": [{"component": "tag", "value": "2"}]}}],
            },
        }
    )
    resolved = resolve_overrides(template, cluster=EU, policies=[policy])
    out: Any = translate(template, cluster=EU, replicas=None, overrides=resolved, ownership=OWNER).manifest
    for part in path:
        out = out[part]
    assert out["containers"][0]["image"] == "nginx:2"


def test_every_overrider_kind_with_cluster_name() -> None:
    out = run(
        [
            {
                "overriders": {
                    "jsonPatch": [
                        {
                            "op": "add",
                            "path": "/spec/template/spec/nodeSelector",
                            "value": {"site": "${CLUSTER_NAME}"},
                        }
                    ],
                    "mergePatch": {
                        "spec": {
                            "paused": True,
                            "template": {"metadata": {"labels": {"c": "${CLUSTER_NAME}"}}},
                        }
                    },
                    "image": [{"component": "tag", "value": "1.28-${CLUSTER_NAME}"}],
                    "labels": {"set": {"tier": "${CLUSTER_NAME}"}, "remove": ["app"]},
                    "annotations": {"remove": ["team"]},
                    "replicas": 2,
                }
            }
        ]
    )
    spec = out["spec"]
    assert spec["template"]["spec"]["nodeSelector"] == {"site": "eu-1"}
    assert spec["paused"] is True and spec["template"]["metadata"]["labels"] == {"c": "eu-1"}
    assert spec["template"]["spec"]["containers"][0]["image"] == "ghcr.io/example/web:1.28-eu-1"
    assert spec["template"]["spec"]["initContainers"][0]["image"] == "busybox:1.28-eu-1"
    assert out["metadata"]["labels"]["tier"] == "eu-1" and "app" not in out["metadata"]["labels"]
    assert "team" not in out["metadata"]["annotations"]
    assert spec["replicas"] == 2


def test_image_override_at_a_path() -> None:
    template = {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "metadata": {"name": "t", "namespace": "shop"},
        "spec": {"image": "nginx:1"},
    }
    policy = OverridePolicy.model_validate(
        {
            "kind": "OverridePolicy",
            "metadata": {"name": "o", "namespace": "shop"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "example.com/v1", "kind": "Thing"}],
                "rules": [
                    {
                        "overriders": {
                            "image": [
                                {"component": "registry", "value": "mirror.local:5000", "path": "/spec/image"}
                            ]
                        }
                    }
                ],
            },
        }
    )
    resolved = resolve_overrides(template, cluster=EU, policies=[policy])
    out = translate(template, cluster=EU, replicas=None, overrides=resolved, ownership=OWNER).manifest
    assert out["spec"]["image"] == "mirror.local:5000/nginx:1"


@pytest.mark.parametrize(
    ("overriders", "message"),
    [
        (
            {"jsonPatch": [{"op": "replace", "path": "/spec/nope/x", "value": 1}]},
            "OverridePolicy shop/o rule[0].overriders.jsonPatch[0] (replace /spec/nope/x) "
            "failed for Deployment shop/web on cluster eu-1: path /spec/nope does not exist",
        ),
        (
            {"jsonPatch": [{"op": "test", "path": "/spec/replicas", "value": 5}]},
            "OverridePolicy shop/o rule[0].overriders.jsonPatch[0] (test /spec/replicas) "
            "failed for Deployment shop/web on cluster eu-1: test failed: /spec/replicas is 4, not 5",
        ),
        (
            {"image": [{"component": "tag", "value": "bad tag!"}]},
            "OverridePolicy shop/o rule[0].overriders.image[0] (tag Replace) "
            "failed for Deployment shop/web on cluster eu-1: initContainers[0].image:",
        ),
        (
            {"image": [{"component": "tag", "value": "1", "path": "/spec/replicas"}]},
            "rule[0].overriders.image[0] (tag Replace) "
            "failed for Deployment shop/web on cluster eu-1: /spec/replicas is not an image string",
        ),
    ],
)
def test_override_errors_name_policy_rule_operation_and_cluster(
    overriders: dict[str, Any], message: str
) -> None:
    with pytest.raises(OverrideError) as info:
        run([{"overriders": overriders}])
    assert message in str(info.value)
    assert (
        info.value.policy == "OverridePolicy shop/o"
        and info.value.rule_index == 0
        and info.value.cluster == "eu-1"
    )


def test_image_override_without_a_pod_template_is_an_error() -> None:
    cm = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {},
    }
    with pytest.raises(OverrideError, match="has no pod template"):
        run([{"overriders": {"image": [{"component": "tag", "value": "1"}]}}], template=cm)


# -- JSON patch, merge patch, images -------------------------------------------------------------

RFC6902 = [  # RFC 6902 appendix A (subset) plus edge cases
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ({"a/b": 1, "m~n": 2}, [{"op": "copy", "from": "/a~1b", "path": "/m~0n"}], {"a/b": 1, "m~n": 1}),
    ({"foo": 1}, [{"op": "test", "path": "/foo", "value": 1.0}], {"foo": 1}),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), RFC6902)
def test_json_patch_rfc_examples(doc: Any, patch: list[dict[str, Any]], expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert apply_patch(doc, patch) == expected
    assert doc == before


@pytest.mark.parametrize(
    ("doc", "patch", "message"),
    [
        ({"foo": "bar"}, [{"op": "remove", "path": "/baz"}], "path /baz does not exist"),
        ({"foo": [1]}, [{"op": "add", "path": "/foo/5", "value": 1}], "out of range"),
        ({"foo": [1]}, [{"op": "replace", "path": "/foo/01", "value": 1}], "not an array index"),
        ({"foo": True}, [{"op": "test", "path": "/foo", "value": 1}], "test failed"),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "into its own child"),
        ({}, [{"op": "add", "path": "a", "value": 1}], "must start with '/'"),
    ],
)
def test_json_patch_errors(doc: Any, patch: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_patch(doc, patch)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc_examples(target: Any, patch: Any, expected: Any) -> None:
    assert apply_merge_patch(target, patch) == expected


@pytest.mark.parametrize(
    ("image", "component", "operator", "value", "expected"),
    [
        ("nginx", ImageComponent.TAG, ImageOperator.REPLACE, "1.25", "nginx:1.25"),
        (
            "nginx:1.24",
            ImageComponent.REGISTRY,
            ImageOperator.REPLACE,
            "registry.eu.example.com",
            "registry.eu.example.com/nginx:1.24",
        ),
        (
            "localhost:5000/team/app:1@sha256:" + "a" * 64,
            ImageComponent.DIGEST,
            ImageOperator.REMOVE,
            "",
            "localhost:5000/team/app:1",
        ),
        (
            "ghcr.io/org/app:1",
            ImageComponent.REPOSITORY,
            ImageOperator.REPLACE,
            "org/other",
            "ghcr.io/org/other:1",
        ),
        ("ghcr.io/org/app:1", ImageComponent.REGISTRY, ImageOperator.REMOVE, "", "org/app:1"),
        (
            "app:1",
            ImageComponent.DIGEST,
            ImageOperator.REPLACE,
            "sha256:" + "b" * 64,
            "app:1@sha256:" + "b" * 64,
        ),
    ],
)
def test_image_components(
    image: str, component: ImageComponent, operator: ImageOperator, value: str, expected: str
) -> None:
    assert override_image(image, component=component, operator=operator, value=value) == expected


@pytest.mark.parametrize("bad", ["", "UPPER/case", "app:bad tag", "app@sha256:xyz"])
def test_bad_image_references(bad: str) -> None:
    with pytest.raises(ImageRefError):
        override_image(bad, component=ImageComponent.TAG, operator=ImageOperator.REPLACE, value="1")
