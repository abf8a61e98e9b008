"""Valid and invalid federation.io objects, shared by the unit tests (pydantic) and the
integration test (the real apiserver with the generated CRDs): both must accept the valid ones
and refuse the invalid ones, naming the same field."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

API = "federation.io/v1alpha1"

#: Issue 10's first attack: a tenant's JSON patch that turns their ConfigMap into a
#: ClusterRoleBinding to cluster-admin (tests/unit/test_identity.py, tests/security/).
TENANT = "mallory"
ESCALATION = [
    {"op": "replace", "path": "/apiVersion", "value": "rbac.authorization.k8s.io/v1"},
    {"op": "replace", "path": "/kind", "value": "ClusterRoleBinding"},
    {"op": "remove", "path": "/metadata/namespace"},
    {"op": "remove", "path": "/data"},
    {
        "op": "add",
        "path": "/roleRef",
        "value": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    },
    {"op": "add", "path": "/subjects", "value": [{"kind": "User", "name": TENANT}]},
]


def pp(spec_placement: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}], **spec}
    if spec_placement is not None:
        body["placement"] = spec_placement
    return {"apiVersion": API, "kind": "PropagationPolicy", "metadata": {"name": "p"}, "spec": body}


def op(overriders: dict[str, Any], **rule: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "OverridePolicy",
        "metadata": {"name": "o"},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "rules": [{"overriders": overriders, **rule}],
        },
    }


@dataclass(frozen=True)
class Case:
    id: str
    obj: dict[str, Any]
    field: str = ""
    """For an invalid case: the field path both validators must name."""

    def in_namespace(self, namespace: str) -> dict[str, Any]:
        obj = copy.deepcopy(self.obj)
        if obj["kind"] in {"PropagationPolicy", "OverridePolicy"}:
            obj["metadata"]["namespace"] = namespace
        return obj


_DIVIDED_WEIGHTS = {
    "replicaScheduling": {
        "type": "Divided",
        "weights": [
            {"clusterNames": ["a"], "weight": 2},
            {"clusterSelector": {"matchLabels": {"region": "us"}}, "weight": 1},
        ],
    }
}


def divided(**scheduling: Any) -> dict[str, Any]:
    return {"replicaScheduling": {"type": "Divided", **scheduling}}


VALID = [
    Case("empty-placement", pp()),
    Case("divided-weights", pp(_DIVIDED_WEIGHTS)),
    Case("divided-dynamic", pp(divided(dynamic="AvailableReplicas"))),
    Case("divided-equal", pp(divided())),
    Case(
        "every-field",
        pp(
            {
                "clusterNames": ["a", "b", "old"],
                "clusterSelector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                "excludeClusters": ["old"],
                "tolerations": [{"key": "maintenance", "operator": "Exists", "effect": "NoSchedule"}],
                "maxClusters": 3,
                "spreadConstraints": [{"topologyKey": "region", "minGroups": 2, "maxGroups": 3}],
                **_DIVIDED_WEIGHTS,
            },
            priority=5,
            conflictResolution="Overwrite",
            deletionPolicy="Orphan",
            retainFields=["/spec/replicas"],
            propagateDependencies=True,
            suspend=True,
        ),
    ),
    Case(
        "override-all-kinds",
        op(
            {
                "jsonPatch": [
                    {"op": "add", "path": "/metadata/labels/x", "value": "${CLUSTER_NAME}"},
                    {"op": "move", "from": "/a", "path": "/b"},
                    {"op": "remove", "path": "/c"},
                ],
                "mergePatch": {"spec": {"paused": True}},
                "image": [
                    {"component": "registry", "value": "registry.eu.example.com"},
                    {"component": "repository", "value": "team/app"},
                    {"component": "tag", "value": "1.0"},
                    {"component": "digest", "operator": "Remove"},
                ],
                "labels": {"set": {"a": "b"}, "remove": ["c"]},
                "annotations": {"set": {"d": "${CLUSTER_NAME}"}},
                "replicas": 2,
            },
            targetClusters={"clusterNames": ["eu-1"]},
        ),
    ),
    Case(
        "override-by-selector",
        op({"replicas": 1}, targetClusters={"clusterSelector": {"matchLabels": {"region": "eu"}}}),
    ),
    Case(
        "member-cluster",
        {
            "apiVersion": API,
            "kind": "MemberCluster",
            "metadata": {"name": "eu-1", "labels": {"region": "eu"}},
            "spec": {
                "kubeconfigSecretRef": {"namespace": "federation-system", "name": "eu-1", "key": "config"},
                "context": "admin@eu-1",
                "taints": [{"key": "maintenance", "value": "true", "effect": "NoSchedule"}],
            },
        },
    ),
    Case(
        "staged-rollout",
        pp(
            rollout={
                "stages": [
                    {"name": "canary", "clusterNames": ["a"], "waitAfter": "10m", "approval": True},
                    {
                        "name": "eu",
                        "clusterSelector": {"matchLabels": {"region": "eu"}},
                        "maxConcurrentClusters": "25%",
                    },
                    {"name": "rest", "maxConcurrentClusters": 2, "deadline": "1h30m"},
                ],
                "onFailure": "Rollback",
            }
        ),
    ),
]

INVALID = [
    Case(
        "unknown-enum",
        pp({"replicaScheduling": {"type": "Dividd"}}),
        "spec.placement.replicaScheduling.type",
    ),
    Case(
        "unknown-dynamic",
        pp(divided(dynamic="FreeCPU")),
        "spec.placement.replicaScheduling.dynamic",
    ),
    Case("unknown-deletion-policy", pp(deletionPolicy="Keep"), "spec.deletionPolicy"),
    Case("unknown-conflict-resolution", pp(conflictResolution="Merge"), "spec.conflictResolution"),
    Case(
        "negative-weight",
        pp(divided(weights=[{"clusterNames": ["a"], "weight": -1}])),
        "spec.placement.replicaScheduling.weights[0].weight",
    ),
    Case(
        "zero-weight",
        pp(divided(weights=[{"clusterNames": ["a"], "weight": 0}])),
        "spec.placement.replicaScheduling.weights[0].weight",
    ),
    Case(
        "weight-with-names-and-selector",
        pp(divided(weights=[{"clusterNames": ["a"], "clusterSelector": {}, "weight": 1}])),
        "spec.placement.replicaScheduling.weights[0]",
    ),
    Case(
        "weight-with-no-clusters",
        pp(divided(weights=[{"weight": 1}])),
        "spec.placement.replicaScheduling.weights[0]",
    ),
    Case(
        "max-groups-below-min",
        pp({"spreadConstraints": [{"topologyKey": "region", "minGroups": 3, "maxGroups": 2}]}),
        "spec.placement.spreadConstraints[0]",
    ),
    Case(
        "dynamic-without-divided",
        pp({"replicaScheduling": {"type": "Duplicated", "dynamic": "AvailableReplicas"}}),
        "spec.placement.replicaScheduling",
    ),
    Case(
        "weights-without-divided",
        pp({"replicaScheduling": {"weights": [{"clusterNames": ["a"], "weight": 1}]}}),
        "spec.placement.replicaScheduling",
    ),
    Case(
        "weights-and-dynamic",
        pp(divided(dynamic="AvailableReplicas", weights=[{"clusterNames": ["a"], "weight": 1}])),
        "spec.placement.replicaScheduling",
    ),
    Case(
        "min-groups-above-max-clusters",
        pp({"maxClusters": 1, "spreadConstraints": [{"topologyKey": "region", "minGroups": 2}]}),
        "spec.placement",
    ),
    Case("no-selectors", {**pp(), "spec": {"resourceSelectors": []}}, "spec.resourceSelectors"),
    Case(
        "selector-in-without-values",
        pp({"clusterSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
        "spec.placement.clusterSelector.matchExpressions[0]",
    ),
    Case(
        "toleration-exists-with-value",
        pp({"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}),
        "spec.placement.tolerations[0]",
    ),
    Case("retain-field-not-pointer", pp(retainFields=["spec.replicas"]), "spec.retainFields[0]"),
    Case("suspend-not-bool", pp(suspend="sometimes"), "spec.suspend"),
    Case(
        "target-clusters-names-and-selector",
        op({"replicas": 1}, targetClusters={"clusterNames": ["a"], "clusterSelector": {}}),
        "spec.rules[0].targetClusters",
    ),
    Case(
        "target-clusters-empty",
        op({"replicas": 1}, targetClusters={}),
        "spec.rules[0].targetClusters",
    ),
    Case(
        "unknown-image-component",
        op({"image": [{"component": "Tag", "value": "1"}]}),
        "spec.rules[0].overriders.image[0].component",
    ),
    Case(
        "move-without-from",
        op({"jsonPatch": [{"op": "move", "path": "/a"}]}),
        "spec.rules[0].overriders.jsonPatch[0]",
    ),
    Case(
        "bad-patch-op",
        op({"jsonPatch": [{"op": "frobnicate", "path": "/a"}]}),
        "spec.rules[0].overriders.jsonPatch[0].op",
    ),
    Case("empty-overriders", op({}), "spec.rules[0].overriders"),
    Case("negative-replicas", op({"replicas": -1}), "spec.rules[0].overriders.replicas"),
    Case(
        "taint-bad-effect",
        {
            "apiVersion": API,
            "kind": "MemberCluster",
            "metadata": {"name": "x"},
            "spec": {"taints": [{"key": "a", "effect": "Sometimes"}]},
        },
        "spec.taints[0].effect",
    ),
    Case(
        "rollout-stage-names-twice",
        pp(rollout={"stages": [{"name": "a", "clusterNames": ["x"]}, {"name": "a"}]}),
        "spec.rollout.stages",
    ),
    Case(
        "rollout-rest-not-last",
        pp(rollout={"stages": [{"name": "rest"}, {"name": "canary", "clusterNames": ["x"]}]}),
        "spec.rollout.stages",
    ),
    Case(
        "rollout-stage-names-and-selector",
        pp(rollout={"stages": [{"name": "a", "clusterNames": ["x"], "clusterSelector": {}}]}),
        "spec.rollout.stages[0]",
    ),
    Case(
        "rollout-zero-concurrency",
        pp(rollout={"stages": [{"name": "a", "maxConcurrentClusters": 0}]}),
        "spec.rollout.stages[0].maxConcurrentClusters",
    ),
    Case(
        "rollout-bad-duration",
        pp(rollout={"stages": [{"name": "a", "waitAfter": "ten minutes"}]}),
        "spec.rollout.stages[0].waitAfter",
    ),
    Case(
        "rollout-unknown-on-failure",
        pp(rollout={"stages": [{"name": "a"}], "onFailure": "Pray"}),
        "spec.rollout.onFailure",
    ),
]
