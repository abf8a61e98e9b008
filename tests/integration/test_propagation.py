"""Propagation end to end on the local fleet: a real hub, three real members, real Postgres, and
the controller as its own process (`federation run`).

No kubelet or controller-manager runs in the members, so tests that need a Deployment's status
play the member's deployment controller by writing `status` themselves.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from federation.devfleet import LocalFleet
from tests.controllerhelpers import (
    FEDERATION,
    ControllerProcess,
    apply,
    events,
    get,
    kubectl,
    policy_seen,
    running_controller,
    works,
)
from tests.kubehelpers import crd_manifest, create_crd_and_wait, eventually

MEMBER_LABELS = {
    "member-1": {"region": "eu", "gpu": "true"},
    "member-2": {"region": "us"},
    "member-3": {"region": "ap"},
}


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    log_dir = tmp_path_factory.mktemp("controller")
    async with running_controller(fleet, hub_id="itest-hub", log_dir=log_dir, labels=MEMBER_LABELS) as proc:
        yield proc


def deployment(name: str, namespace: str, *, replicas: int = 3, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def policy(name: str, namespace: str, selectors: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"resourceSelectors": selectors, **spec},
    }


def write_member_status(fleet: LocalFleet, cluster: str, name: str, namespace: str, *, ready: int) -> None:
    """Play the member's deployment controller: report `ready` of spec.replicas ready."""
    obj = get(fleet, cluster, "deployment", name, namespace)
    assert obj is not None
    want = obj["spec"]["replicas"]
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": want,
        "updatedReplicas": want,
        "readyReplicas": ready,
        "availableReplicas": ready,
        **({"unavailableReplicas": want - ready} if want > ready else {}),
    }
    kubectl(fleet, cluster, "replace", "--subresource=status", "-f", "-", stdin=json.dumps(obj))


async def test_duplicated_and_divided_land_with_overrides_and_status_comes_back(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    apply(
        fleet,
        "hub",
        deployment("everywhere", namespace, replicas=2),
        deployment("web", namespace, replicas=6),
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "OverridePolicy",
            "metadata": {"name": "tags", "namespace": namespace},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                "rules": [{"overriders": {"image": [{"component": "tag", "value": "1.27-${CLUSTER_NAME}"}]}}],
            },
        },
    )
    # The copies are checked as soon as they land: the override must be known before the first.
    await policy_seen(fleet, "overridepolicy", namespace, "tags")
    apply(
        fleet,
        "hub",
        policy("dup", namespace, [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "everywhere"}]),
        policy(
            "div",
            namespace,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            placement={
                "clusterSelector": {
                    "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]
                },
                "replicaScheduling": {
                    "type": "Divided",
                    "weights": [
                        {"clusterSelector": {"matchLabels": {"region": "eu"}}, "weight": 2},
                        {"clusterSelector": {"matchLabels": {"region": "us"}}, "weight": 1},
                    ],
                },
            },
        ),
    )

    async def landed() -> bool:
        for cluster in MEMBER_LABELS:
            copy = get(fleet, cluster, "deployment", "everywhere", namespace)
            assert copy is not None, f"everywhere not in {cluster} yet"
            assert copy["spec"]["replicas"] == 2
        web = {c: get(fleet, c, "deployment", "web", namespace) for c in MEMBER_LABELS}
        assert web["member-1"] is not None and web["member-2"] is not None, "web not divided yet"
        return True

    await eventually(landed, timeout=30, what="both deployments in their members")
    web = {c: get(fleet, c, "deployment", "web", namespace) for c in MEMBER_LABELS}
    assert web["member-3"] is None, "member-3 (region ap) is not selected"
    assert web["member-1"] is not None and web["member-2"] is not None
    assert (web["member-1"]["spec"]["replicas"], web["member-2"]["spec"]["replicas"]) == (4, 2)
    for c in ("member-1", "member-2"):
        image = web[c]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"nginx:1.27-{c}"
        labels = web[c]["metadata"]["labels"]
        assert labels["federation.io/hub"] == "itest-hub"
        assert (
            web[c]["metadata"]["annotations"]["federation.io/source"] == f"apps/v1/Deployment/{namespace}/web"
        )

    # Status up: the members report, the hub Deployment shows the sum and who lags.
    write_member_status(fleet, "member-1", "web", namespace, ready=4)
    write_member_status(fleet, "member-2", "web", namespace, ready=1)

    async def aggregated() -> bool:
        hub = get(fleet, "hub", "deployment", "web", namespace)
        assert hub is not None
        status = hub.get("status") or {}
        assert status.get("replicas") == 6 and status.get("readyReplicas") == 5, status
        available = {c["type"]: c for c in status.get("conditions", [])}["Available"]
        assert available["status"] == "False" and "member-2: 1/2 replicas available" in available["message"]
        return True

    await eventually(aggregated, timeout=30, what="aggregated status on the hub Deployment")
    write_member_status(fleet, "member-2", "web", namespace, ready=2)

    async def all_available() -> bool:
        hub = get(fleet, "hub", "deployment", "web", namespace)
        assert hub is not None
        conds = {c["type"]: c for c in (hub.get("status") or {}).get("conditions", [])}
        assert conds["Available"]["status"] == "True", conds
        return True

    await eventually(all_available, timeout=30, what="Available=True once every cluster is ready")
    rows = await works(controller.database_url, namespace)
    assert {(r["name"], r["cluster"], r["state"]) for r in rows} == {
        ("everywhere", "member-1", "applied"),
        ("everywhere", "member-2", "applied"),
        ("everywhere", "member-3", "applied"),
        ("web", "member-1", "applied"),
        ("web", "member-2", "applied"),
    }


async def test_policy_change_deletes_only_the_dropped_copy(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    sel = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "settings"}]
    apply(
        fleet,
        "hub",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace},
            "data": {"a": "1"},
        },
        policy("p", namespace, sel, placement={"clusterNames": ["member-1", "member-2"]}),
    )

    async def on_both() -> bool:
        return all(
            get(fleet, c, "configmap", "settings", namespace) is not None for c in ("member-1", "member-2")
        )

    await eventually(on_both, timeout=30, what="settings on member-1 and member-2")
    before = get(fleet, "member-1", "configmap", "settings", namespace)
    assert before is not None
    apply(fleet, "hub", policy("p", namespace, sel, placement={"clusterNames": ["member-1"]}))

    async def gone_from_member_2() -> bool:
        return get(fleet, "member-2", "configmap", "settings", namespace) is None

    await eventually(gone_from_member_2, timeout=30, what="member-2's copy deleted")
    after = get(fleet, "member-1", "configmap", "settings", namespace)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "member-1 untouched"
    assert get(fleet, "member-3", "configmap", "settings", namespace) is None


async def test_drift_is_restored_and_recorded_but_retained_fields_are_left_alone(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    apply(
        fleet,
        "hub",
        deployment("api", namespace, replicas=2),
        policy(
            "api",
            namespace,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}],
            placement={"clusterNames": ["member-3"]},
            retainFields=["/spec/replicas"],
        ),
    )

    async def landed() -> bool:
        return get(fleet, "member-3", "deployment", "api", namespace) is not None

    await eventually(landed, timeout=30, what="api in member-3")
    # A person edits the image in the member: the hub wins, and it is recorded with the diff.
    kubectl(fleet, "member-3", "-n", namespace, "set", "image", "deployment/api", "app=nginx:evil")

    async def restored() -> bool:
        copy = get(fleet, "member-3", "deployment", "api", namespace)
        assert copy is not None
        return bool(copy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27")

    await eventually(restored, timeout=30, what="the image restored")

    async def recorded() -> list[dict[str, Any]]:
        return [e for e in await events(controller.database_url, namespace) if e["type"] == "DriftCorrected"]

    drift = await eventually(recorded, timeout=15, what="a DriftCorrected event")
    details = (
        drift[0]["details"] if isinstance(drift[0]["details"], dict) else json.loads(drift[0]["details"])
    )
    assert {
        "path": "/spec/template/spec/containers/0/image",
        "hub": "nginx:1.27",
        "member": "nginx:evil",
    } in details["diff"]
    assert drift[0]["cluster"] == "member-3"

    # replicas is retained (an HPA in the member owns it): never written back.
    kubectl(fleet, "member-3", "-n", namespace, "scale", "deployment/api", "--replicas=7")
    marker = f"marker-{secrets.token_hex(2)}"
    kubectl(fleet, "hub", "-n", namespace, "annotate", "deployment/api", f"touch={marker}")

    async def annotation_arrived() -> bool:
        copy = get(fleet, "member-3", "deployment", "api", namespace)
        return copy is not None and copy["metadata"].get("annotations", {}).get("touch") == marker

    await eventually(annotation_arrived, timeout=30, what="a later hub change applied")
    copy = get(fleet, "member-3", "deployment", "api", namespace)
    assert copy is not None and copy["spec"]["replicas"] == 7, "a retained field must be left alone"


async def test_conflict_abort_leaves_the_object_alone_and_overwrite_adopts_it(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shared", "namespace": namespace},
        "data": {"owner": "member"},
    }
    apply(fleet, "member-1", theirs)
    before = get(fleet, "member-1", "configmap", "shared", namespace)
    assert before is not None
    sel = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "shared"}]
    apply(
        fleet,
        "hub",
        {**theirs, "data": {"owner": "hub"}},
        policy("shared", namespace, sel, placement={"clusterNames": ["member-1"]}),
    )

    async def conflicted() -> bool:
        rows = await works(controller.database_url, namespace)
        return any(r["state"] == "conflict" for r in rows)

    await eventually(conflicted, timeout=30, what="the work in conflict")
    after = get(fleet, "member-1", "configmap", "shared", namespace)
    assert after == before, "Abort must leave the member object byte-identical"
    rows = await works(controller.database_url, namespace)
    assert "not created by this hub" in (rows[0]["last_error"] or "")

    async def reported() -> bool:
        pol = get(fleet, "hub", "propagationpolicy", "shared", namespace)
        assert pol is not None
        conds = {c["type"]: c for c in (pol.get("status") or {}).get("conditions", [])}
        prop = conds.get("federation.io/Propagated") or {}
        return prop.get("reason") == "Conflict" and prop.get("status") == "False"

    await eventually(reported, timeout=30, what="Propagated=False reason=Conflict on the policy")

    apply(
        fleet,
        "hub",
        policy(
            "shared", namespace, sel, placement={"clusterNames": ["member-1"]}, conflictResolution="Overwrite"
        ),
    )

    async def adopted() -> bool:
        obj = get(fleet, "member-1", "configmap", "shared", namespace)
        return (
            obj is not None
            and obj["data"] == {"owner": "hub"}
            and obj["metadata"]["labels"].get("federation.io/hub") == "itest-hub"
        )

    await eventually(adopted, timeout=30, what="the object adopted (Overwrite)")

    async def both_recorded() -> bool:
        kinds = [e["type"] for e in await events(controller.database_url, namespace)]
        return kinds.count("Conflict") == 1 and kinds.count("Adopted") == 1

    await eventually(both_recorded, timeout=15, what="one Conflict and one Adopted event")


async def test_a_manifest_the_member_rejects_fails_once_with_its_message_and_no_retry_storm(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    # Valid on the hub; the override breaks it for member-2 only (selector ≠ template labels).
    apply(
        fleet,
        "hub",
        deployment("bad", namespace, replicas=1),
        {
            "apiVersion": "federation.io/v1alpha1",
            "kind": "OverridePolicy",
            "metadata": {"name": "break", "namespace": namespace},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "bad"}],
                "rules": [
                    {
                        "overriders": {
                            "jsonPatch": [
                                {
                                    "op": "replace",
                                    "path": "/spec/template/metadata/labels/app",
                                    "value": "other",
                                }
                            ]
                        }
                    }
                ],
            },
        },
    )
    # Never a good copy first (it would be applied, and the test is about one failed attempt).
    await policy_seen(fleet, "overridepolicy", namespace, "break")
    apply(
        fleet,
        "hub",
        policy(
            "bad",
            namespace,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "bad"}],
            placement={"clusterNames": ["member-2"]},
        ),
    )

    async def failed() -> list[dict[str, Any]]:
        return [r for r in await works(controller.database_url, namespace) if r["state"] == "failed"]

    rows = await eventually(failed, timeout=30, what="the work failed")
    assert "selector" in (rows[0]["last_error"] or "") and "member-2" in rows[0]["last_error"]
    attempts = rows[0]["attempts"]
    assert attempts == 1

    async def on_policy() -> bool:
        pol = get(fleet, "hub", "propagationpolicy", "bad", namespace)
        conds = {c["type"]: c for c in ((pol or {}).get("status") or {}).get("conditions", [])}
        return (conds.get("federation.io/Propagated") or {}).get("reason") == "ApplyFailed"

    await eventually(on_policy, timeout=30, what="ApplyFailed on the policy status")
    recorded = [e for e in await events(controller.database_url, namespace) if e["type"] == "ApplyFailed"]
    assert len(recorded) == 1 and "selector" in recorded[0]["message"]
    # No retry storm: a failed work waits for its input to change. Three more claim rounds of
    # member-2's propagator later, still one attempt and one event.
    rounds = controller.metric("federation_claim_rounds_total", cluster="member-2")

    async def three_more_rounds() -> bool:
        return controller.metric("federation_claim_rounds_total", cluster="member-2") >= rounds + 3

    await eventually(three_more_rounds, timeout=30, what="three more claim rounds")
    rows = await failed()
    assert rows[0]["attempts"] == attempts
    assert (
        len([e for e in await events(controller.database_url, namespace) if e["type"] == "ApplyFailed"]) == 1
    )


async def test_deleting_a_template_cleans_the_members_first_or_orphans_per_policy(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": namespace}, "data": {"k": "v"}}
    apply(
        fleet,
        "hub",
        {**cm, "metadata": {**cm["metadata"], "name": "gone"}},
        {**cm, "metadata": {**cm["metadata"], "name": "kept"}},
        policy(
            "del",
            namespace,
            [{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone"}],
            placement={"clusterNames": ["member-1", "member-2"]},
        ),
        policy(
            "orphan",
            namespace,
            [{"apiVersion": "v1", "kind": "ConfigMap", "name": "kept"}],
            placement={"clusterNames": ["member-1", "member-2"]},
            deletionPolicy="Orphan",
        ),
    )

    async def placed() -> bool:
        return all(
            get(fleet, c, "configmap", n, namespace) is not None
            for c in ("member-1", "member-2")
            for n in ("gone", "kept")
        )

    await eventually(placed, timeout=30, what="both ConfigMaps in both members")

    # Templates carry no finalizer of ours (issue 12): the works in Postgres record every copy,
    # and the deletion below is carried out from them.
    hub_obj = get(fleet, "hub", "configmap", "gone", namespace)
    assert hub_obj is not None and "federation.io/cleanup" not in hub_obj["metadata"].get("finalizers", [])

    kubectl(fleet, "hub", "-n", namespace, "delete", "configmap", "gone", "kept", "--wait=false")

    async def cleaned() -> bool:
        members_clean = all(
            get(fleet, c, "configmap", "gone", namespace) is None for c in ("member-1", "member-2")
        )
        hub_gone = get(fleet, "hub", "configmap", "gone", namespace) is None
        return members_clean and hub_gone

    await eventually(cleaned, timeout=30, what="Delete: the template gone, its member copies removed")

    async def orphaned() -> bool:
        if get(fleet, "hub", "configmap", "kept", namespace) is not None:
            return False
        for c in ("member-1", "member-2"):
            copy = get(fleet, c, "configmap", "kept", namespace)
            assert copy is not None, f"Orphan must leave {c}'s copy in place"
            if "federation.io/hub" in (copy["metadata"].get("labels") or {}):
                return False
        return True

    await eventually(orphaned, timeout=30, what="Orphan: copies left in place without our stamp")


async def test_a_custom_resource_goes_to_the_gpu_clusters_and_dependencies_follow_their_workload(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    group = f"ai{secrets.token_hex(3)}.example.com"
    crd = crd_manifest(group, "LLMGatewayConfig", "llmgatewayconfigs")
    for cluster in ("hub", "member-1"):  # only the GPU cluster serves the kind
        await create_crd_and_wait(fleet.clusters[cluster], crd)
    apply(
        fleet,
        "hub",
        {
            "apiVersion": f"{group}/v1",
            "kind": "LLMGatewayConfig",
            "metadata": {"name": "gw", "namespace": namespace},
            "spec": {"model": "llama", "maxTokens": 4096},
        },
        policy(
            "gpu",
            namespace,
            [{"apiVersion": f"{group}/v1", "kind": "LLMGatewayConfig"}],
            placement={"clusterSelector": {"matchLabels": {"gpu": "true"}}},
        ),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": namespace},
            "data": {"a": "1"},
        },
        {
            **deployment("uses-config", namespace, replicas=1),
            "spec": {
                **deployment("uses-config", namespace)["spec"],
                "template": {
                    "metadata": {"labels": {"app": "uses-config"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "nginx",
                                "envFrom": [{"configMapRef": {"name": "app-config"}}],
                            }
                        ]
                    },
                },
            },
        },
        policy(
            "deps",
            namespace,
            [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "uses-config"}],
            placement={"clusterNames": ["member-2", "member-3"]},
            propagateDependencies=True,
        ),
    )

    async def cr_landed() -> bool:
        out = kubectl(
            fleet,
            "member-1",
            "-n",
            namespace,
            "get",
            f"llmgatewayconfigs.{group}",
            "gw",
            "-o",
            "json",
            "--ignore-not-found",
        )
        return bool(out.strip()) and json.loads(out)["spec"]["maxTokens"] == 4096

    await eventually(cr_landed, timeout=30, what="the custom resource in the GPU cluster")

    async def config_followed() -> bool:
        return all(
            get(fleet, c, "configmap", "app-config", namespace) is not None for c in ("member-2", "member-3")
        )

    await eventually(config_followed, timeout=30, what="the referenced ConfigMap following its Deployment")
    assert get(fleet, "member-1", "configmap", "app-config", namespace) is None, "only where the workload is"


async def test_a_suspended_policy_moves_nothing(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    sel = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "frozen"}]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "frozen", "namespace": namespace},
        "data": {"v": "1"},
    }
    apply(fleet, "hub", cm, policy("s", namespace, sel, placement={"clusterNames": ["member-1"]}))

    async def landed() -> bool:
        copy = get(fleet, "member-1", "configmap", "frozen", namespace)
        return copy is not None and copy["data"] == {"v": "1"}

    await eventually(landed, timeout=30, what="the first version")
    apply(fleet, "hub", policy("s", namespace, sel, placement={"clusterNames": ["member-1"]}, suspend=True))
    # The template change must meet the suspended policy (two watches, no order between them).
    await policy_seen(fleet, "propagationpolicy", namespace, "s")
    apply(fleet, "hub", {**cm, "data": {"v": "2"}})

    # The change is observed by the controller (its resource row follows the template) but not
    # applied while the policy is suspended.
    async def seen_by_controller() -> bool:
        rows = await works(controller.database_url, namespace)
        return bool(rows) and rows[0]["state"] == "applied"

    await eventually(seen_by_controller, timeout=15, what="the work settled")
    rounds = controller.metric("federation_claim_rounds_total", cluster="member-1")

    async def two_rounds() -> bool:
        return controller.metric("federation_claim_rounds_total", cluster="member-1") >= rounds + 2

    await eventually(two_rounds, timeout=30, what="two more claim rounds")
    copy = get(fleet, "member-1", "configmap", "frozen", namespace)
    assert copy is not None and copy["data"] == {"v": "1"}, "suspended: nothing applied"
    apply(fleet, "hub", policy("s", namespace, sel, placement={"clusterNames": ["member-1"]}))

    async def resumed() -> bool:
        copy = get(fleet, "member-1", "configmap", "frozen", namespace)
        return copy is not None and copy["data"] == {"v": "2"}

    await eventually(resumed, timeout=30, what="the change applied once resumed")


async def test_cli_status_and_events_show_what_the_controller_did(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    apply(
        fleet,
        "hub",
        deployment("shown", namespace, replicas=4),
        policy("shown", namespace, [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "shown"}],
               placement={"clusterNames": ["member-1", "member-2"],
                          "replicaScheduling": {"type": "Divided",
                                                "weights": [{"clusterNames": ["member-1"], "weight": 1},
                                                            {"clusterNames": ["member-2"], "weight": 1}]}}),
    )  # fmt: skip

    async def applied() -> bool:
        rows = await works(controller.database_url, namespace)
        return len(rows) == 2 and all(r["state"] == "applied" for r in rows)

    await eventually(applied, timeout=30, what="both copies applied")
    cli = str(Path(sys.executable).parent / "federation")

    def federation(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, *args, "--database-url", controller.database_url], capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    one = federation("status", "deployment/shown", "-n", namespace, "-o", "json")
    assert one.returncode == 0, one.stderr
    rows = json.loads(one.stdout)
    assert [(r["cluster"], r["placed"]) for r in rows] == [("member-1", "applied"), ("member-2", "applied")]
    assert [r["replicas"] for r in rows] == ["0/2", "0/2"]
    table = federation("status", "-n", namespace)
    assert table.returncode == 0 and "shown" in table.stdout and "2/2" in table.stdout
    missing = federation("status", "deployment/absent", "-n", namespace)
    assert missing.returncode == 1 and "no resource deployment/absent" in missing.stderr
    unknown = federation("status", "--cluster", "no-such-cluster")
    assert unknown.returncode == 1 and "no cluster 'no-such-cluster' in the fleet" in unknown.stderr
    clusters = federation("clusters", "list", "-o", "json")
    assert {c["name"] for c in json.loads(clusters.stdout)} == set(MEMBER_LABELS)
    # Drift, then the event shows up in `federation events`.
    kubectl(fleet, "member-1", "-n", namespace, "set", "image", "deployment/shown", "app=nginx:drifted")

    async def drift_listed() -> bool:
        ev = federation(
            "events", "--cluster", "member-1", "--type", "DriftCorrected", "-n", namespace, "-o", "json"
        )
        return ev.returncode == 0 and any(e["object"].endswith("/shown") for e in json.loads(ev.stdout))

    await eventually(drift_listed, timeout=30, what="the drift event in `federation events`")


async def test_cli_listings_are_scriptable(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    """What a script does with the listings: piped tables keep every name whole (an 80-column
    squeeze once cut them to `app…`), `-o name`, `--no-headers` and `-o jmespath` on each."""
    long_name = "settings-" + "with-a-name-long-enough-that-a-squeezed-table-would-cut-it-" * 2 + "end"
    apply(
        fleet,
        "hub",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": long_name, "namespace": namespace},
         "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "listed-token", "namespace": namespace},
         "stringData": {"token": "not-for-tables"}},
        policy("listed", namespace, [{"apiVersion": "v1", "kind": "ConfigMap", "name": long_name},
                                     {"apiVersion": "v1", "kind": "Secret", "name": "listed-token"}],
               placement={"clusterNames": ["member-1", "member-2"]}),
    )  # fmt: skip

    async def applied() -> bool:
        rows = await works(controller.database_url, namespace)
        return len(rows) == 4 and all(r["state"] == "applied" for r in rows)

    await eventually(applied, timeout=30, what="the four copies applied")

    def federation(*args: str) -> str:
        # A pipe, and a narrow COLUMNS that a terminal-sizing table would obey.
        done = subprocess.run([FEDERATION, *args, "--database-url", controller.database_url],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "60"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout, "no control codes when piped"
        return done.stdout

    table = federation("status", "-n", namespace).splitlines()
    assert table[0].split() == ["KIND", "NAMESPACE", "NAME", "CLUSTERS", "HEALTHY", "CONFLICTED", "FAILED",
                                "REPLICAS", "HEALTH"]  # fmt: skip
    assert len(table) == 3
    assert any(line.split()[:4] == ["ConfigMap", namespace, long_name, "2/2"] for line in table[1:]), table
    assert len(table[1]) > 60, "wider than COLUMNS: nothing was cut to fit"
    assert federation("status", "-n", namespace, "-o", "name").splitlines() == [
        f"configmap/{long_name}",
        "secret/listed-token",
    ]
    bare = federation("status", "-n", namespace, "--no-headers").splitlines()
    assert [line.split()[2] for line in bare] == [long_name, "listed-token"]
    assert federation("status", "-n", namespace, "-o", "jmespath=[?kind=='Secret'].name").splitlines() == [
        "listed-token"
    ]
    assert federation("status", f"configmap/{long_name}", "-n", namespace, "-o", "name").splitlines() == [
        "membercluster.federation.io/member-1",
        "membercluster.federation.io/member-2",
    ]
    per_cluster = federation("status", f"configmap/{long_name}", "-n", namespace, "--no-headers")
    assert [line.split()[:2] for line in per_cluster.splitlines()] == [["member-1", "applied"],
                                                                       ["member-2", "applied"]]  # fmt: skip
    copies = federation("status", "--cluster", "member-1", "-n", namespace, "-o", "name").splitlines()
    assert copies == [f"configmap/{long_name}", "secret/listed-token"]

    names = federation("clusters", "list", "-o", "name").splitlines()
    assert names == [f"membercluster.federation.io/{c}" for c in sorted(MEMBER_LABELS)]
    rows = federation("clusters", "list", "--no-headers").splitlines()
    assert [r.split()[0] for r in rows] == sorted(MEMBER_LABELS)
    assert federation("clusters", "list", "-o", "jmespath=[?ready=='True'] | length(@)").strip() == "3"

    # An event in this namespace: drift on member-1, corrected.
    kubectl(fleet, "member-1", "-n", namespace, "patch", "configmap", long_name, "--type=merge",
            "-p", '{"data":{"k":"drifted"}}')  # fmt: skip
    query = ("events", "-n", namespace, "--type", "DriftCorrected")

    async def drift_listed() -> bool:
        return bool(federation(*query, "--no-headers").strip())

    await eventually(drift_listed, timeout=30, what="the drift event")
    listed = federation(*query, "--no-headers").splitlines()
    assert listed and all(long_name in line and "DriftCorrected" in line for line in listed), listed
    ids = [e["id"] for e in json.loads(federation(*query, "-o", "json"))]
    assert federation(*query, "-o", "name").splitlines() == [f"event/{i}" for i in ids]

    # The Secret's copies are sealed in Postgres: `keys usage` lists the controller's key.
    usage = json.loads(federation("keys", "usage", "-o", "json"))
    assert usage and all(u["works"] >= 2 for u in usage[:1]), usage
    assert federation("keys", "usage", "-o", "name").splitlines() == [f"key/{u['key']}" for u in usage]
    assert len(federation("keys", "usage", "--no-headers").splitlines()) == len(usage)
    assert "not-for-tables" not in federation("status", "-n", namespace, "-o", "json")


def federation_cli(fleet: LocalFleet, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI as a fleet admin runs it, against the fleet's hub."""
    hub = fleet.clusters["hub"]
    env = {
        **os.environ,
        "FEDERATION_HUB_KUBECONFIG": str(hub.kubeconfig),
        "FEDERATION_HUB_CONTEXT": hub.context,
    }
    return subprocess.run(
        [FEDERATION, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def join_member_3_as(fleet: LocalFleet, name: str) -> None:
    """member-3 joins a second time under `name`, tainted so that only the policies of the test
    at hand (which tolerate the taint) place anything there."""
    member = fleet.clusters["member-3"]
    joined = federation_cli(
        fleet, "clusters", "join", name, "--kubeconfig", str(member.kubeconfig), "--context", member.context,
        "--taint", "test/drain=yes:NoSchedule",
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr


def pinned_policy(name: str, namespace: str, cm: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return policy(
        name,
        namespace,
        [{"apiVersion": "v1", "kind": "ConfigMap", "name": cm}],
        placement={
            "clusterNames": [cluster],
            "tolerations": [{"key": "test/drain", "operator": "Exists", "effect": "NoSchedule"}],
        },
        **spec,
    )


async def test_unjoin_drains_the_cluster_before_it_goes(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    """Deleting a MemberCluster deletes what we propagated there (Orphan policies' copies stay),
    and only then does the object go; `clusters unjoin` waits for that, then removes the Secret."""
    name = f"drain-{secrets.token_hex(3)}"
    join_member_3_as(fleet, name)

    async def finalized() -> bool:
        mc = json.loads(kubectl(fleet, "hub", "get", "membercluster", name, "-o", "json"))
        assert "federation.io/drain" in (mc["metadata"].get("finalizers") or []), mc["metadata"]
        return True

    await eventually(finalized, timeout=30, what=f"the drain finalizer on MemberCluster {name}")
    apply(
        fleet,
        "hub",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "goes", "namespace": namespace}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stays", "namespace": namespace}},
        pinned_policy("goes", namespace, "goes", name),
        pinned_policy("stays", namespace, "stays", name, deletionPolicy="Orphan"),
    )

    async def landed() -> bool:
        for cm in ("goes", "stays"):
            assert get(fleet, "member-3", "configmap", cm, namespace) is not None, cm
        return True

    await eventually(landed, timeout=60, what=f"both ConfigMaps in {name} (member-3)")
    left = federation_cli(fleet, "clusters", "unjoin", name, "--timeout", "60")
    assert left.returncode == 0, left.stderr
    assert f"cluster {name} left the fleet" in left.stdout
    assert get(fleet, "member-3", "configmap", "goes", namespace) is None
    stays = get(fleet, "member-3", "configmap", "stays", namespace)
    assert stays is not None
    assert kubectl(fleet, "hub", "get", "membercluster", name, "--ignore-not-found").strip() == ""
    secret = kubectl(fleet, "hub", "-n", "fleet-system", "get", "secret", name, "--ignore-not-found")
    assert secret.strip() == ""
    # The hub's templates are untouched; nothing of the cluster is left to do.
    assert get(fleet, "hub", "configmap", "goes", namespace) is not None
    assert {(w["name"], w["state"]) for w in await works(controller.database_url, namespace)} <= {
        ("stays", "orphaned")
    }


async def one_copy_on_a_new_member(fleet: LocalFleet, namespace: str, prefix: str, cm: str) -> str:
    """Join member-3 under a new name, place ConfigMap `cm` there only; wait until it landed and
    the MemberCluster carries the drain finalizer. Returns the new member's name."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    join_member_3_as(fleet, name)
    apply(
        fleet,
        "hub",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm, "namespace": namespace}},
        pinned_policy(cm, namespace, cm, name),
    )

    async def landed_with_finalizer() -> bool:
        assert get(fleet, "member-3", "configmap", cm, namespace) is not None
        mc = json.loads(kubectl(fleet, "hub", "get", "membercluster", name, "-o", "json"))
        assert "federation.io/drain" in (mc["metadata"].get("finalizers") or [])
        return True

    await eventually(landed_with_finalizer, timeout=60, what=f"the ConfigMap in {name}, finalizer on")
    return name


async def test_unjoin_force_leaves_the_copies_and_records_them_orphaned(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    name = await one_copy_on_a_new_member(fleet, namespace, "gone", "left")
    left = federation_cli(fleet, "clusters", "unjoin", name, "--force", "--timeout", "30")
    assert left.returncode == 0, left.stderr
    assert "copies left in place" in left.stdout
    assert get(fleet, "member-3", "configmap", "left", namespace) is not None

    async def orphaned() -> bool:
        rows = [w for w in await works(controller.database_url, namespace) if w["cluster"] == name]
        assert [(w["name"], w["state"]) for w in rows] == [("left", "orphaned")], rows
        assert "removed from the fleet before its copies were deleted" in (rows[0]["last_error"] or "")
        return True

    await eventually(orphaned, timeout=30, what="the removed cluster's work recorded as orphaned")


async def test_a_drain_interrupted_by_a_restart_finishes_after_it(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    """The MemberCluster is deleted while no controller runs: the next one still connects to the
    leaving cluster (from the object being deleted), deletes the copy, then lets the object go."""
    name = await one_copy_on_a_new_member(fleet, namespace, "restart", "later")
    await anyio.to_thread.run_sync(controller.stop)
    try:
        kubectl(fleet, "hub", "delete", "membercluster", name, "--wait=false")
        mc = json.loads(kubectl(fleet, "hub", "get", "membercluster", name, "-o", "json"))
        assert mc["metadata"].get("deletionTimestamp"), "held by the finalizer while nobody drains"
    finally:
        await anyio.to_thread.run_sync(controller.start)

    async def drained() -> bool:
        assert get(fleet, "member-3", "configmap", "later", namespace) is None, "copy still there"
        assert kubectl(fleet, "hub", "get", "membercluster", name, "--ignore-not-found").strip() == ""
        return True

    await eventually(drained, timeout=60, what=f"{name} drained and gone after the restart")
    kubectl(fleet, "hub", "-n", "fleet-system", "delete", "secret", name, "--ignore-not-found")
