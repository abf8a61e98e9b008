"""Valid and invalid federation.io objects, shared by the unit tests (pydantic) and the
integration test (the real apiserver with the generated CRDs): both must accept the valid ones
and refuse the invalid ones, naming the same field."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

API = "federation.io/v1alpha1"


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
            "overrideRules": [{"overriders": overriders, **rule}],
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


_DIVIDED_STATIC = {
    "replicaScheduling": {
        "type": "Divided",
        "weightPreference": {
            "staticWeights": [
                {"targetCluster": {"clusterNames": ["a"]}, "weight": 2},
                {"targetCluster": {"clusterSelector": {"matchLabels": {"region": "us"}}}, "weight": 1},
            ]
        },
    }
}

VALID = [
    Case("empty-placement", pp()),
    Case("divided-static", pp(_DIVIDED_STATIC)),
    Case(
        "divided-dynamic",
        pp(
            {
                "replicaScheduling": {
                    "type": "Divided",
                    "weightPreference": {"dynamicWeight": "AvailableReplicas"},
                }
            }
        ),
    ),
    Case(
        "spread-and-max",
        pp(
            {
                "maxClusters": 3,
                "spreadConstraints": [{"topologyKey": "region", "minGroups": 2, "maxGroups": 3}],
                "clusterTolerations": [{"key": "maintenance", "operator": "Exists", "effect": "NoSchedule"}],
                "clusterAffinity": {
                    "clusterSelector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                    "excludeClusters": ["old"],
                },
            },
            priority=5,
            conflictResolution="Overwrite",
            retainFields=["/spec/replicas"],
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
                    {"component": "Tag", "value": "1.0"},
                    {"component": "Digest", "operator": "Remove"},
                ],
                "labels": {"set": {"a": "b"}, "remove": ["c"]},
                "replicas": 2,
            },
            targetCluster={"clusterNames": ["eu-1"]},
        ),
    ),
    Case(
        "member-cluster",
        {
            "apiVersion": API,
            "kind": "MemberCluster",
            "metadata": {"name": "eu-1", "labels": {"region": "eu"}},
            "spec": {
                "kubeconfigSecretRef": {"namespace": "federation-system", "name": "eu-1"},
                "taints": [{"key": "maintenance", "value": "true", "effect": "NoSchedule"}],
            },
        },
    ),
]

INVALID = [
    Case(
        "unknown-enum",
        pp({"replicaScheduling": {"type": "Dividd"}}),
        "spec.placement.replicaScheduling.type",
    ),
    Case(
        "negative-weight",
        pp(
            {
                "replicaScheduling": {
                    "type": "Divided",
                    "weightPreference": {
                        "staticWeights": [{"targetCluster": {"clusterNames": ["a"]}, "weight": -1}]
                    },
                }
            }
        ),
        "spec.placement.replicaScheduling.weightPreference.staticWeights[0].weight",
    ),
    Case(
        "both-names-and-selector",
        pp(
            {
                "replicaScheduling": {
                    "type": "Divided",
                    "weightPreference": {
                        "staticWeights": [
                            {"targetCluster": {"clusterNames": ["a"], "clusterSelector": {}}, "weight": 1}
                        ]
                    },
                }
            }
        ),
        "spec.placement.replicaScheduling.weightPreference.staticWeights[0].targetCluster",
    ),
    Case(
        "max-groups-below-min",
        pp({"spreadConstraints": [{"topologyKey": "region", "minGroups": 3, "maxGroups": 2}]}),
        "spec.placement.spreadConstraints[0]",
    ),
    Case(
        "weights-without-divided",
        pp(
            {
                "replicaScheduling": {
                    "type": "Duplicated",
                    "weightPreference": {"dynamicWeight": "AvailableReplicas"},
                }
            }
        ),
        "spec.placement.replicaScheduling",
    ),
    Case(
        "static-and-dynamic",
        pp(
            {
                "replicaScheduling": {
                    "type": "Divided",
                    "weightPreference": {
                        "dynamicWeight": "AvailableReplicas",
                        "staticWeights": [{"targetCluster": {"clusterNames": ["a"]}, "weight": 1}],
                    },
                }
            }
        ),
        "spec.placement.replicaScheduling.weightPreference",
    ),
    Case(
        "min-groups-above-max-clusters",
        pp({"maxClusters": 1, "spreadConstraints": [{"topologyKey": "region", "minGroups": 2}]}),
        "spec.placement",
    ),
    Case("no-selectors", {**pp(), "spec": {"resourceSelectors": []}}, "spec.resourceSelectors"),
    Case(
        "selector-in-without-values",
        pp({"clusterAffinity": {"clusterSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
        "spec.placement.clusterAffinity.clusterSelector.matchExpressions[0]",
    ),
    Case(
        "toleration-exists-with-value",
        pp({"clusterTolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}),
        "spec.placement.clusterTolerations[0]",
    ),
    Case("retain-field-not-pointer", pp(retainFields=["spec.replicas"]), "spec.retainFields[0]"),
    Case(
        "move-without-from",
        op({"jsonPatch": [{"op": "move", "path": "/a"}]}),
        "spec.overrideRules[0].overriders.jsonPatch[0]",
    ),
    Case(
        "bad-patch-op",
        op({"jsonPatch": [{"op": "frobnicate", "path": "/a"}]}),
        "spec.overrideRules[0].overriders.jsonPatch[0].op",
    ),
    Case("empty-overriders", op({}), "spec.overrideRules[0].overriders"),
    Case("negative-replicas", op({"replicas": -1}), "spec.overrideRules[0].overriders.replicas"),
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
]
