"""A copy's identity is its template's: every override that would change what the copy is gets
refused where the copy is made (translate), naming the rule, the overrider and the field; and what
never propagates (credentials, the clusters' own namespaces) is refused whatever selects it.

These are the pure halves of issue 10's first two findings; tests/security/ performs the same
attacks against the real fleet.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.api import ClusterOverridePolicy, OverridePolicy, PropagationPolicy
from federation.cli import main
from federation.errors import ConfigError, IdentityError, InvalidObjectError, OverrideError
from federation.placement import ClusterSnapshot
from federation.propagate.applier import Result, foreign_target
from federation.translate import Ownership, format_policy, hub_id, resolve_overrides, translate
from federation.translate.identity import (
    RULE_TEXT,
    Guard,
    Identity,
    Violation,
    check_override,
    guarded_fields,
    identity_of,
)
from federation.translate.protected import KindRef, ProtectedReason, Protection
from federation.validation import identity_problems
from tests.policy_cases import ESCALATION

EU = ClusterSnapshot("eu-1", {"region": "eu"})
OWNER = Ownership(hub=hub_id("hub-a"), policy=format_policy("PropagationPolicy", "team-a", "p"))


def configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app", "namespace": "team-a", "uid": "u-1", "labels": {"app": "x"}},
        "data": {"k": "v"},
    }


def rolebinding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "readers", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}],
    }


def policy(
    rules: list[dict[str, Any]],
    *,
    cluster_scoped: bool = False,
    api_version: str = "v1",
    kind: str = "ConfigMap",
) -> OverridePolicy | ClusterOverridePolicy:
    spec = {"resourceSelectors": [{"apiVersion": api_version, "kind": kind}], "rules": rules}
    if cluster_scoped:
        return ClusterOverridePolicy.model_validate(
            {"kind": "ClusterOverridePolicy", "metadata": {"name": "fleet"}, "spec": spec}
        )
    return OverridePolicy.model_validate(
        {"kind": "OverridePolicy", "metadata": {"name": "evil", "namespace": "team-a"}, "spec": spec}
    )


def translated(template: dict[str, Any], *policies: OverridePolicy | ClusterOverridePolicy) -> dict[str, Any]:
    resolved = resolve_overrides(template, cluster=EU, policies=list(policies))
    return translate(template, cluster=EU, replicas=None, overrides=resolved, ownership=OWNER).manifest


def refused(template: dict[str, Any], *policies: OverridePolicy | ClusterOverridePolicy) -> IdentityError:
    with pytest.raises(IdentityError) as info:
        translated(template, *policies)
    return info.value


# -- the attacks of issue 10, finding 1 -------------------------------------------------------------


def test_a_json_patch_turning_a_configmap_into_a_clusterrolebinding_is_refused_naming_rule_and_field() -> (
    None
):
    err = refused(configmap(), policy([{"overriders": {"jsonPatch": ESCALATION}}]))
    assert err.field == "apiVersion"
    assert err.guard == Guard.IDENTITY.value
    assert err.policy == "OverridePolicy team-a/evil" and err.rule_index == 0 and err.cluster == "eu-1"
    assert str(err) == (
        "OverridePolicy team-a/evil rule[0].overriders.jsonPatch changes apiVersion (API group none → "
        "'rbac.authorization.k8s.io'): an override never changes a copy's identity (group, kind, "
        "namespace, name); refused for ConfigMap team-a/app on cluster eu-1"
    )
    assert isinstance(err, OverrideError)  # handled wherever a broken override is


def test_a_merge_patch_moving_the_copy_to_kube_system_coredns_is_refused() -> None:
    rules = [{"overriders": {"mergePatch": {"metadata": {"namespace": "kube-system", "name": "coredns"}}}}]
    err = refused(configmap(), policy(rules))
    assert err.field == "metadata.namespace"
    assert "(namespace 'team-a' → 'kube-system')" in str(err)
    assert "rule[0].overriders.mergePatch" in str(err)


@pytest.mark.parametrize(
    ("overriders", "field"),
    [
        ({"jsonPatch": [{"op": "replace", "path": "/kind", "value": "Secret"}]}, "kind"),
        ({"jsonPatch": [{"op": "replace", "path": "/metadata/name", "value": "other"}]}, "metadata.name"),
        ({"jsonPatch": [{"op": "remove", "path": "/metadata/name"}]}, "metadata.name"),
        (
            {"jsonPatch": [{"op": "replace", "path": "/metadata", "value": {"name": "app"}}]},
            "metadata.namespace",
        ),
        ({"jsonPatch": [{"op": "move", "from": "/metadata/name", "path": "/data/n"}]}, "metadata.name"),
        (
            {"jsonPatch": [{"op": "copy", "from": "/data/k", "path": "/metadata/namespace"}]},
            "metadata.namespace",
        ),
        ({"mergePatch": {"metadata": None}}, "metadata.namespace"),
        ({"mergePatch": {"apiVersion": "example.com/v1"}}, "apiVersion"),
        ({"image": [{"component": "repository", "value": "x", "path": "/metadata/name"}]}, None),
        # what binds the copy to other objects, or to its lifecycle
        ({"mergePatch": {"metadata": {"generateName": "app-"}}}, "metadata.generateName"),
        (
            {
                "jsonPatch": [
                    {
                        "op": "add",
                        "path": "/metadata/ownerReferences",
                        "value": [
                            {
                                "apiVersion": "v1",
                                "kind": "Namespace",
                                "name": "kube-system",
                                "uid": "x",
                                "blockOwnerDeletion": True,
                            }
                        ],
                    }
                ]
            },
            "metadata.ownerReferences",
        ),
        ({"mergePatch": {"metadata": {"finalizers": ["x.io/never"]}}}, "metadata.finalizers"),
        ({"mergePatch": {"metadata": {"uid": "u-2"}}}, "metadata.uid"),
        ({"mergePatch": {"metadata": {"resourceVersion": "1"}}}, "metadata.resourceVersion"),
        # the ownership stamp
        ({"labels": {"set": {"federation.io/hub": "other-hub"}}}, "metadata.labels[federation.io/hub]"),
        (
            {"annotations": {"set": {"federation.io/source": "core/v1/Secret/x/y"}}},
            "metadata.annotations[federation.io/source]",
        ),
        (
            {"mergePatch": {"metadata": {"labels": {"federation.io/managed-by": "me"}}}},
            "metadata.labels[federation.io/managed-by]",
        ),
    ],
)
def test_every_override_that_changes_what_the_copy_is_is_refused(
    overriders: dict[str, Any], field: str | None
) -> None:
    for cluster_scoped in (False, True):  # the fleet admin's overrides obey the same rules
        if field is None:  # the image overrider refuses a non-image string itself
            with pytest.raises(OverrideError):
                translated(configmap(), policy([{"overriders": overriders}], cluster_scoped=cluster_scoped))
            continue
        err = refused(configmap(), policy([{"overriders": overriders}], cluster_scoped=cluster_scoped))
        assert err.field == field, str(err)


def test_a_later_rule_cannot_undo_the_check_by_restoring_the_identity() -> None:
    """Each overrider is judged on its own result: a rule that changes the kind fails even if a
    later rule would change it back (the copy in between is never produced)."""
    rules = [
        {"overriders": {"jsonPatch": [{"op": "replace", "path": "/kind", "value": "Secret"}]}},
        {"overriders": {"jsonPatch": [{"op": "replace", "path": "/kind", "value": "ConfigMap"}]}},
    ]
    assert refused(configmap(), policy(rules)).rule_index == 0


def test_overrides_that_keep_the_identity_pass() -> None:
    rules = [
        {"overriders": {"jsonPatch": [{"op": "test", "path": "/metadata/name", "value": "app"}]}},
        {
            "overriders": {
                "mergePatch": {"data": {"region": "${CLUSTER_NAME}"}, "metadata": {"labels": {"a": "b"}}}
            }
        },
        {"overriders": {"labels": {"set": {"team": "a"}, "remove": ["app"]}}},
        # another version of the same group and kind names the same object
        {"overriders": {"jsonPatch": [{"op": "replace", "path": "/apiVersion", "value": "v1"}]}},
    ]
    out = translated(configmap(), policy(rules))
    assert identity_of(out) == identity_of(configmap())
    assert out["data"] == {"k": "v", "region": "eu-1"}


def test_a_namespaced_override_may_not_change_what_an_rbac_object_grants_but_the_fleet_admin_may() -> None:
    escalate = [
        {"overriders": {"jsonPatch": [{"op": "replace", "path": "/roleRef/name", "value": "cluster-admin"}]}}
    ]
    err = refused(
        rolebinding(),
        policy(escalate, api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding"),
    )
    assert err.field == "roleRef" and err.guard == Guard.RBAC.value
    subjects = [
        {"overriders": {"mergePatch": {"subjects": [{"kind": "Group", "name": "system:authenticated"}]}}}
    ]
    assert (
        refused(
            rolebinding(), policy(subjects, api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding")
        ).field
        == "subjects"
    )
    fleet = policy(
        escalate, cluster_scoped=True, api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding"
    )
    assert translated(rolebinding(), fleet)["roleRef"]["name"] == "cluster-admin"
    labels = [{"overriders": {"labels": {"set": {"tier": "x"}}}}]  # other changes stay allowed
    out = translated(
        rolebinding(), policy(labels, api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding")
    )
    assert out["metadata"]["labels"]["tier"] == "x"


def test_retain_fields_cannot_strip_the_identity() -> None:
    with pytest.raises(InvalidObjectError, match=r"spec.retainFields changes kind"):
        translate(
            configmap(), cluster=EU, replicas=None, overrides=(), ownership=OWNER, retain_fields=("/kind",)
        )
    with pytest.raises(
        InvalidObjectError, match=r"retainFields\[1\] /metadata/namespace: retainFields may not"
    ):
        PropagationPolicy.model_validate(
            {
                "kind": "PropagationPolicy",
                "metadata": {"name": "p", "namespace": "team-a"},
                "spec": {
                    "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                    "retainFields": ["/data/k", "/metadata/namespace"],
                },
            }
        )


def test_the_words_are_one_function() -> None:
    v = Violation(Guard.IDENTITY, "kind", "kind 'ConfigMap' → 'Secret'")
    assert v.describe() == (
        "changes kind (kind 'ConfigMap' → 'Secret'): an override never changes a copy's identity "
        "(group, kind, namespace, name)"
    )
    assert (
        Violation(Guard.HUB_METADATA, "metadata.finalizers")
        .describe()
        .startswith("changes metadata.finalizers: overrides may not set metadata")
    )


def test_guarded_fields_is_an_independent_snapshot() -> None:
    before = rolebinding()
    before["metadata"]["labels"] = {"federation.io/x": "1"}
    snap = guarded_fields(before)
    before["roleRef"]["name"] = "cluster-admin"
    before["metadata"]["labels"]["federation.io/x"] = "2"
    assert check_override(snap, before, namespaced=True) is not None
    assert snap["roleRef"]["name"] == "view" and snap["metadata"]["labels"] == {"federation.io/x": "1"}


# -- property: whatever a JSON patch does, the copy that comes out is the template's --------------

_PATHS = st.sampled_from(
    [
        "/apiVersion",
        "/kind",
        "/metadata",
        "/metadata/name",
        "/metadata/namespace",
        "/metadata/labels",
        "/metadata/labels/federation.io~1hub",
        "/metadata/labels/app",
        "/metadata/annotations",
        "/metadata/ownerReferences",
        "/metadata/finalizers",
        "/metadata/generateName",
        "/data",
        "/data/k",
        "/roleRef",
        "/subjects",
        "/spec",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(
        ["ClusterRoleBinding", "kube-system", "v1", "rbac.authorization.k8s.io/v1", "app", "team-a"]
    ),
    st.dictionaries(
        st.sampled_from(["name", "namespace", "federation.io/hub", "a"]), st.text(max_size=5), max_size=3
    ),
    st.lists(st.text(max_size=3), max_size=2),
)
_OPS = st.lists(
    st.one_of(
        st.builds(lambda p, v: {"op": "add", "path": p, "value": v}, _PATHS, _VALUES),
        st.builds(lambda p, v: {"op": "replace", "path": p, "value": v}, _PATHS, _VALUES),
        st.builds(lambda p: {"op": "remove", "path": p}, _PATHS),
        st.builds(lambda f, p: {"op": "move", "from": f, "path": p}, _PATHS, _PATHS),
        st.builds(lambda f, p: {"op": "copy", "from": f, "path": p}, _PATHS, _PATHS),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, cluster_scoped=st.booleans(), rbac=st.booleans())
def test_no_json_patch_yields_a_copy_with_another_identity(
    ops: list[dict[str, Any]], cluster_scoped: bool, rbac: bool
) -> None:
    template = rolebinding() if rbac else configmap()
    selector = ("rbac.authorization.k8s.io/v1", "RoleBinding") if rbac else ("v1", "ConfigMap")
    try:
        p = policy(
            [{"overriders": {"jsonPatch": ops}}],
            cluster_scoped=cluster_scoped,
            api_version=selector[0],
            kind=selector[1],
        )
    except InvalidObjectError:
        return  # the model refuses it (e.g. a move into its own child): nothing to translate
    before = copy.deepcopy(template)
    try:
        out = translated(template, p)
    except InvalidObjectError:  # OverrideError and IdentityError among them
        return  # refused, or the patch does not apply: no copy is made
    assert template == before
    assert identity_of(out) == identity_of(template)
    meta = out["metadata"]
    assert not any(k in meta for k in ("ownerReferences", "finalizers", "generateName"))
    assert meta["labels"]["federation.io/hub"] == "hub-a"
    if rbac and not cluster_scoped:
        assert (out.get("roleRef"), out.get("subjects")) == (template["roleRef"], template["subjects"])


# -- the applier's own check (defence in depth) ------------------------------------------------------


def test_the_applier_refuses_a_manifest_that_names_another_object_than_its_template() -> None:
    expected = Identity("", "ConfigMap", "team-a", "app")
    assert foreign_target(configmap(), expected) is None
    assert foreign_target(configmap(), None) is None  # (no template known: a unit-test work)
    crb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "app"},
    }
    outcome = foreign_target(crb, expected)
    assert outcome is not None and outcome.result is Result.FAILED and not outcome.wrote
    assert (
        "names ClusterRoleBinding.rbac.authorization.k8s.io app, "
        "but this work copies ConfigMap.core team-a/app" in outcome.message
    )
    moved = {**configmap(), "metadata": {"name": "coredns", "namespace": "kube-system"}}
    gone = foreign_target(moved, expected, result=Result.DELETED)
    assert gone is not None and gone.result is Result.DELETED and gone.message.startswith("left untouched")


# -- what never propagates ------------------------------------------------------------------------


def secret(namespace: str = "team-a", name: str = "s", type_: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
    }
    if type_ is not None:
        out["type"] = type_
    return out


PROTECTION = Protection(
    controller_namespace="federation-system",
    credentials_namespaces=frozenset({"fleet-system"}),
    member_credentials=frozenset({("team-a", "member-1-kubeconfig")}),
    deny_namespaces=("infra-*",),
    deny_kinds=(KindRef.parse("ClusterRoleBinding"), KindRef.parse("Certificate.cert-manager.io")),
)


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (secret("kube-system"), ProtectedReason.RESERVED_NAMESPACE),
        (secret("kube-anything"), ProtectedReason.RESERVED_NAMESPACE),
        (
            {**configmap(), "metadata": {"name": "c", "namespace": "kube-public"}},
            ProtectedReason.RESERVED_NAMESPACE,
        ),
        (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}},
            ProtectedReason.RESERVED_NAMESPACE,
        ),
        (secret("federation-system"), ProtectedReason.CONTROLLER_NAMESPACE),
        (secret("fleet-system", "member-2"), ProtectedReason.CREDENTIALS_NAMESPACE),
        (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fleet-system"}},
            ProtectedReason.CREDENTIALS_NAMESPACE,
        ),
        (secret("team-a", "member-1-kubeconfig"), ProtectedReason.MEMBER_CREDENTIALS),
        (secret(type_="kubernetes.io/service-account-token"), ProtectedReason.TOKEN_SECRET),
        (secret(type_="bootstrap.kubernetes.io/token"), ProtectedReason.TOKEN_SECRET),
        (secret("infra-db"), ProtectedReason.DENIED_NAMESPACE),
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "x"},
            },
            ProtectedReason.DENIED_KIND,
        ),
        (
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {"name": "c", "namespace": "team-a"},
            },
            ProtectedReason.DENIED_KIND,
        ),
    ],
)
def test_what_never_propagates(manifest: dict[str, Any], reason: ProtectedReason) -> None:
    refusal = PROTECTION.refusal(manifest)
    assert refusal is not None and refusal.reason is reason
    assert refusal.describe().startswith("never propagated: ")


@pytest.mark.parametrize(
    "manifest",
    [
        secret(),
        secret(type_="Opaque"),
        secret(type_="kubernetes.io/tls"),
        secret("team-a", "member-1-kubeconfig-not"),
        configmap(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
        {
            "apiVersion": "other.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "c", "namespace": "team-a"},
        },
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"}},
    ],
)
def test_what_may_propagate(manifest: dict[str, Any]) -> None:
    assert PROTECTION.refusal(manifest) is None


def test_kube_star_is_reserved_even_with_no_configuration() -> None:
    bare = Protection()
    refusal = bare.refusal(secret("kube-system"))
    assert refusal is not None and refusal.reason is ProtectedReason.RESERVED_NAMESPACE
    assert bare.refusal(secret("fleet-system")) is not None  # the defaults
    assert bare.refusal(secret("federation-system")) is not None


def test_deny_kind_and_namespace_flags_are_parsed_or_refused_naming_the_flag() -> None:
    assert KindRef.parse("Secret.") == KindRef("Secret", "")
    assert KindRef.parse("Ingress.networking.k8s.io") == KindRef("Ingress", "networking.k8s.io")
    assert KindRef.parse("Ingress").matches("networking.k8s.io", "Ingress")
    assert not KindRef.parse("Secret.").matches("example.com", "Secret")
    for bad in ("", "9x", "Ingress/networking", "a b"):
        with pytest.raises(ConfigError, match="--deny-kind"):
            KindRef.parse(bad)
    with pytest.raises(ConfigError, match="--deny-namespace"):
        Protection(deny_namespaces=("a b",))


# -- the same rule from the policy alone: the webhook's and plan's refusal up front ---------------


def test_the_escalation_is_refused_up_front_in_the_translators_words() -> None:
    problems = identity_problems(policy([{"overriders": {"jsonPatch": ESCALATION}}]))
    rule = "an override never changes a copy's identity (group, kind, namespace, name)"
    where = "OverridePolicy team-a/evil: spec.rules[0].overriders"
    assert problems == [
        f"{where}.jsonPatch[0] (replace /apiVersion) changes apiVersion: {rule}",
        f"{where}.jsonPatch[1] (replace /kind) changes kind: {rule}",
        f"{where}.jsonPatch[2] (remove /metadata/namespace) changes metadata.namespace: {rule}",
    ]
    runtime = str(refused(configmap(), policy([{"overriders": {"jsonPatch": ESCALATION}}])))
    assert RULE_TEXT[Guard.IDENTITY] in runtime and RULE_TEXT[Guard.IDENTITY] in problems[0]


@pytest.mark.parametrize(
    ("overriders", "where"),
    [
        (
            {"mergePatch": {"metadata": {"namespace": "kube-system", "name": "coredns"}}},
            "mergePatch changes metadata.",
        ),
        ({"mergePatch": {"metadata": None}}, "mergePatch changes metadata"),
        ({"mergePatch": {"kind": "Secret"}}, "mergePatch changes kind"),
        ({"mergePatch": {"metadata": {"generateName": "x-"}}}, "mergePatch changes metadata.generateName"),
        (
            {"mergePatch": {"metadata": {"labels": {"federation.io/hub": "h"}}}},
            "changes metadata.labels[federation.io/hub]",
        ),
        (
            {"jsonPatch": [{"op": "add", "path": "/metadata/ownerReferences", "value": []}]},
            "jsonPatch[0] (add /metadata/ownerReferences) changes metadata.ownerReferences",
        ),
        (
            {"jsonPatch": [{"op": "add", "path": "/metadata/finalizers/-", "value": "x"}]},
            "changes metadata.finalizers",
        ),
        (
            {"jsonPatch": [{"op": "move", "from": "/metadata/name", "path": "/data/x"}]},
            "jsonPatch[0] (move /data/x) changes metadata.name",
        ),
        (
            {"jsonPatch": [{"op": "replace", "path": "/metadata/labels", "value": {"federation.io/x": "1"}}]},
            "changes metadata.labels[federation.io/x]",
        ),
        ({"jsonPatch": [{"op": "remove", "path": "/apiVersion"}]}, "changes apiVersion"),
        ({"jsonPatch": [{"op": "replace", "path": "/apiVersion", "value": "apps/v1"}]}, "changes apiVersion"),
        (
            {"labels": {"set": {"federation.io/policy": "x"}}},
            "labels changes metadata.labels[federation.io/policy]",
        ),
        (
            {"annotations": {"set": {"federation.io/hash": "x"}}},
            "annotations changes metadata.annotations[federation.io/hash]",
        ),
        (
            {"image": [{"component": "tag", "value": "1", "path": "/metadata/namespace"}]},
            "image[0] (path /metadata/namespace) changes metadata.namespace",
        ),
    ],
)
def test_identity_problems_name_the_overrider_and_the_field(overriders: dict[str, Any], where: str) -> None:
    for cluster_scoped in (False, True):
        problems = identity_problems(policy([{"overriders": overriders}], cluster_scoped=cluster_scoped))
        assert len(problems) == 1 and where in problems[0], problems


@pytest.mark.parametrize(
    "overriders",
    [
        {"jsonPatch": [{"op": "test", "path": "/metadata/name", "value": "app"}]},
        {"jsonPatch": [{"op": "test", "path": "/kind", "value": "ConfigMap"}]},
        {"jsonPatch": [{"op": "copy", "from": "/metadata/name", "path": "/data/name"}]},
        {"jsonPatch": [{"op": "replace", "path": "/apiVersion", "value": "v1"}]},
        {"jsonPatch": [{"op": "add", "path": "/metadata/labels/team", "value": "a"}]},
        {"jsonPatch": [{"op": "remove", "path": "/metadata/labels"}]},
        # depends on the cluster's name: the translator judges it
        {"jsonPatch": [{"op": "add", "path": "/metadata/${CLUSTER_NAME}", "value": "a"}]},
        {"mergePatch": {"metadata": {"labels": {"federation.io/old": None, "a": "b"}}, "data": {"x": "y"}}},
        {"labels": {"set": {"team": "a"}, "remove": ["federation.io/anything"]}},
        {"replicas": 3},
        {"image": [{"component": "tag", "value": "2"}]},
    ],
)
def test_identity_problems_leave_harmless_overrides_alone(overriders: dict[str, Any]) -> None:
    assert identity_problems(policy([{"overriders": overriders}])) == []


def test_rbac_grants_are_refused_up_front_only_for_namespaced_policies() -> None:
    rules = [
        {"overriders": {"jsonPatch": [{"op": "replace", "path": "/roleRef/name", "value": "cluster-admin"}]}}
    ]
    kind = {"api_version": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"}
    (problem,) = identity_problems(policy(rules, **kind))
    assert (
        "jsonPatch[0] (replace /roleRef/name) changes roleRef: a namespaced OverridePolicy may not" in problem
    )
    assert identity_problems(policy(rules, cluster_scoped=True, **kind)) == []


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, rbac=st.booleans(), cluster_scoped=st.booleans())
def test_every_op_refused_up_front_is_refused_at_translation(
    ops: list[dict[str, Any]], rbac: bool, cluster_scoped: bool
) -> None:
    """Soundness: each JSON patch op the webhook and plan refuse, applied on its own, is refused
    by the translator too (on the representative templates here), unless it wrote a guarded field
    without changing it (the rule up front forbids writing them at all; within a longer patch a
    later op may also undo an earlier one, which the translator, judging the result, lets pass)."""
    template = rolebinding() if rbac else configmap()
    kind = {"api_version": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"} if rbac else {}
    for op in ops:
        try:
            p = policy([{"overriders": {"jsonPatch": [op]}}], cluster_scoped=cluster_scoped, **kind)
        except InvalidObjectError:
            continue
        if not identity_problems(p):
            continue
        try:
            out = translated(template, p)
        except InvalidObjectError:
            continue  # refused at translation too
        assert guarded_fields(out) == guarded_fields(translated(template)), op


def test_plan_refuses_such_policies_and_never_plans_protected_templates(tmp_path: Path) -> None:
    files = {
        "policies.yaml": [
            {
                "apiVersion": "federation.io/v1alpha1",
                "kind": "PropagationPolicy",
                "metadata": {"name": "p", "namespace": "team-a"},
                "spec": {
                    "resourceSelectors": [
                        {"apiVersion": "v1", "kind": "ConfigMap"},
                        {"apiVersion": "v1", "kind": "Secret"},
                    ]
                },
            },
            {
                "apiVersion": "federation.io/v1alpha1",
                "kind": "OverridePolicy",
                "metadata": {"name": "evil", "namespace": "team-a"},
                "spec": {
                    "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                    "rules": [{"overriders": {"jsonPatch": ESCALATION}}],
                },
            },
        ],
        "templates.yaml": [configmap(), secret(type_="kubernetes.io/service-account-token")],
    }
    args = []
    for name, docs in files.items():
        (tmp_path / name).write_text(yaml.safe_dump_all(docs))
        args += ["-f", str(tmp_path / name)]
    (tmp_path / "clusters.yaml").write_text(
        yaml.safe_dump({"clusters": [{"name": "eu-1"}, {"name": "us-1"}]})
    )
    result = CliRunner().invoke(main, ["plan", *args, "--clusters", str(tmp_path / "clusters.yaml")])
    assert result.exit_code == 1, result.output
    out = result.output
    assert out.startswith("REFUSED override rules (the admission webhook refuses these policies):\n")
    refusal = "OverridePolicy team-a/evil: spec.rules[0].overriders.jsonPatch[0] (replace /apiVersion)"
    assert f"{refusal} changes apiVersion" in out
    assert "eu-1: FAILED: OverridePolicy team-a/evil rule[0].overriders.jsonPatch changes apiVersion" in out
    assert "Secret team-a/s (v1)" in out
    assert (
        "never propagated: Secret.core team-a/s is a credential (type kubernetes.io/service-account-token)"
        in out
    )


def test_identity_problems_judge_each_op_once_whatever_the_number_of_selectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Linear in the review's size (the webhook runs it on every review): adding selectors adds
    no work per op, as issue 10's 8 selectors × 100 rules × 256 ops review would otherwise cost."""
    from federation.validation import identity as module

    calls = 0
    judge = module._pointer_violation

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return judge(*args, **kwargs)

    monkeypatch.setattr(module, "_pointer_violation", counted)
    ops = [{"op": "add", "path": f"/data/k{i}", "value": "v"} for i in range(256)]
    for selectors in (1, 100):
        calls = 0
        spec = {
            "resourceSelectors": [
                {"apiVersion": f"g{i}.example.com/v1", "kind": "Thing"} for i in range(selectors)
            ],
            "rules": [{"overriders": {"jsonPatch": ops}} for _ in range(100)],
        }
        p = OverridePolicy.model_validate(
            {"kind": "OverridePolicy", "metadata": {"name": "big", "namespace": "team-a"}, "spec": spec}
        )
        assert identity_problems(p) == []
        assert calls == 100 * 256, (selectors, calls)
