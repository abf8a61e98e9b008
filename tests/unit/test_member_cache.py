"""What a propagator caches of a member copy (`federation.propagate.cache.member_copy`): every
reader of the cache — drift, conflicts and ownership, status — sees the same as with the whole
object, on a copy as a member's apiserver returns it after our server-side apply."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from federation.informers.transform import share_strings
from federation.propagate.applier import desired_hash, owner_hub
from federation.propagate.cache import member_copy
from federation.propagate.drift import differences, project_object, projection_hash
from federation.status.aggregate import aggregate_status
from federation.status.collect import member_status_row
from federation.store import ResourceId

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "labels": {"app": "web", "federation.io/hub": "hub-1", "federation.io/managed-by": "federation"},
        "annotations": {"federation.io/hash": "abc123", "team": "storefront"},
    },
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]
            },
        },
    },
}


def live_copy() -> dict[str, Any]:
    """DESIRED as the member holds it: server-set metadata, defaults, two managers, status."""
    live = copy.deepcopy(DESIRED)
    live["metadata"].update(
        uid="0b5c1c2e-1111-2222-3333-444455556666",
        resourceVersion="4711",
        generation=2,
        creationTimestamp="2026-11-27T10:00:00Z",
        ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}],
        finalizers=["example.com/keep"],
        managedFields=[
            {
                "manager": "federation",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {}}}}},
            },
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"},
        ],
    )
    live["metadata"]["annotations"].update(
        {
            "deployment.kubernetes.io/revision": "2",
            "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
        }
    )
    container = live["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    live["spec"].update(revisionHistoryLimit=10, progressDeadlineSeconds=600)
    live["status"] = {
        "observedGeneration": 2,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}],
    }
    return live


def test_drift_reads_the_same_projection_and_diff() -> None:
    whole, cached = live_copy(), member_copy(live_copy())
    assert project_object(cached, DESIRED) == project_object(whole, DESIRED)
    assert projection_hash(cached, DESIRED) == projection_hash(whole, DESIRED)
    drifted = copy.deepcopy(whole)
    drifted["spec"]["replicas"] = 7
    assert differences(project_object(DESIRED, DESIRED), project_object(member_copy(drifted), DESIRED)) == [
        {"path": "/spec/replicas", "hub": 3, "member": 7}
    ]


def test_ownership_and_deletion_preconditions_read_the_same() -> None:
    whole, cached = live_copy(), member_copy(live_copy())
    assert owner_hub(cached) == owner_hub(whole) == "hub-1"
    assert desired_hash(cached) == desired_hash(whole) == "abc123"
    for field in ("uid", "resourceVersion", "generation", "name", "namespace", "labels"):
        assert cached["metadata"][field] == whole["metadata"][field]
    ours = {k for k in whole["metadata"]["annotations"] if k.startswith("federation.io/")}
    assert ours <= cached["metadata"]["annotations"].keys()  # what an orphaning removes


def test_status_reads_the_same() -> None:
    whole, cached = live_copy(), member_copy(live_copy())
    rid = ResourceId(1)
    assert member_status_row(rid, "m1", cached) == member_status_row(rid, "m1", whole)
    assert aggregate_status(DESIRED, {"m1": cached}, placed=["m1"], now="t") == aggregate_status(
        DESIRED, {"m1": whole}, placed=["m1"], now="t"
    )


def test_what_is_dropped() -> None:
    meta = member_copy(live_copy())["metadata"]
    assert not {"managedFields", "ownerReferences", "finalizers"} & meta.keys()
    assert meta["annotations"] == {"federation.io/hash": "abc123", "team": "storefront"}


def test_copies_share_their_equal_strings() -> None:
    """Two copies parsed apart hold one object per equal short string once cached."""
    first, second = (member_copy(orjson.loads(orjson.dumps(live_copy()))) for _ in range(2))
    assert share_strings(live_copy()) == live_copy()  # equal values, only held once
    image = first["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image is second["spec"]["template"]["spec"]["containers"][0]["image"]
    assert first["status"]["conditions"][0]["reason"] is second["status"]["conditions"][0]["reason"]
