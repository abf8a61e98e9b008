"""Convergence that depends on no lucky timing (issue 11): a copy whose template is gone goes,
whatever the order of events the controller saw — or did not see; and a kind whose CRD is
applied together with its policy is watched as soon as the hub serves it, not at a poll.

The controller runs as its own process with `--sweep-interval 1` and a poll of unserved kinds
so slow (`--kinds-poll-interval 3600`) that only the CRD watch can pick a new kind up. The
states are made the way they arise in production: a template deleted while the controller is
down (no event for it after the restart: only a sweep finds its copies), and a member copy that
no work records (what the apply-during-deletion race left behind).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from federation.devfleet import LocalFleet
from tests.controllerhelpers import ControllerProcess, apply, get, kubectl, running_controller, works
from tests.integration.test_propagation import MEMBER_LABELS, policy
from tests.kubehelpers import crd_manifest, create_crd_and_wait, eventually

HUB_ID = "itest-sweep"


@pytest.fixture(scope="module")
async def controller(
    fleet: LocalFleet, hub_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ControllerProcess]:
    log_dir = tmp_path_factory.mktemp("controller")
    async with running_controller(
        fleet,
        hub_id=HUB_ID,
        log_dir=log_dir,
        labels=MEMBER_LABELS,
        extra_args=["--sweep-interval", "1", "--kinds-poll-interval", "3600"],
    ) as proc:
        yield proc


def configmap(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"set": "sweep", **labels}},
        "data": {"k": name},
    }


def cm_policy(namespace: str, **spec: Any) -> dict[str, Any]:
    return policy(
        "sweep",
        namespace,
        [{"apiVersion": "v1", "kind": "ConfigMap", "labelSelector": {"matchLabels": {"set": "sweep"}}}],
        placement={"clusterNames": ["member-1", "member-2"]},
        **spec,
    )


async def test_a_template_deleted_while_the_controller_was_down_loses_its_copies_after_the_restart(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    apply(fleet, "hub", cm_policy(namespace), configmap("doomed", namespace), configmap("kept", namespace))

    async def landed() -> bool:
        return all(
            get(fleet, c, "configmap", n, namespace)
            for c in ("member-1", "member-2")
            for n in ("doomed", "kept")
        )

    await eventually(landed, timeout=60, what="both copies in both members")
    await anyio.to_thread.run_sync(lambda: controller.stop(kill=True))
    # Gone without the controller seeing it: our finalizer taken off by hand, then deleted.
    kubectl(fleet, "hub", "-n", namespace, "patch", "configmap", "doomed", "--type=merge",
            "-p", json.dumps({"metadata": {"finalizers": None}}))  # fmt: skip
    kubectl(fleet, "hub", "-n", namespace, "delete", "configmap", "doomed", "--wait=true")
    assert get(fleet, "hub", "configmap", "doomed", namespace) is None
    await anyio.to_thread.run_sync(controller.start)

    async def swept() -> bool:
        return all(get(fleet, c, "configmap", "doomed", namespace) is None for c in ("member-1", "member-2"))

    await eventually(swept, timeout=30, what="the copies of the deleted template removed after the restart")
    assert all(get(fleet, c, "configmap", "kept", namespace) for c in ("member-1", "member-2"))
    rows = await works(controller.database_url, namespace)
    assert {(r["name"], r["cluster"]) for r in rows} == {("kept", "member-1"), ("kept", "member-2")}
    assert controller.metric("federation_sweep_findings_total", finding="template_gone") >= 2


def stamped(name: str, namespace: str, *, source: str | None = None) -> dict[str, Any]:
    """A member object stamped as this hub's copy (what the propagator writes)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"federation.io/hub": HUB_ID, "federation.io/managed-by": "federation"},
            "annotations": {
                "federation.io/source": source or f"core/v1/ConfigMap/{namespace}/{name}",
                "federation.io/policy": f"PropagationPolicy/{namespace}/sweep",
            },
        },
        "data": {"k": name},
    }


async def test_a_member_copy_no_work_records_goes_when_its_stamp_proves_it_ours_and_the_template_is_gone(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    # The policy makes ConfigMaps a watched kind; no template of these names exists on the hub.
    apply(fleet, "hub", cm_policy(namespace))
    found_before = controller.metric("federation_sweep_findings_total", finding="unrecorded_copy")
    # Its template exists on the hub (not governed: no `set` label): reported, never removed.
    kubectl(fleet, "hub", "-n", namespace, "create", "configmap", "alive")
    apply(
        fleet,
        "member-1",
        stamped("alive", namespace),
        # Its stamp names another object: nothing proves it is a copy of ours.
        stamped("forged", namespace, source=f"core/v1/ConfigMap/{namespace}/somebody-else"),
    )
    # Created last: a sweep that lists it has listed the two above (one list, one snapshot).
    apply(fleet, "member-1", stamped("stray", namespace))

    async def stray_gone() -> bool:
        return get(fleet, "member-1", "configmap", "stray", namespace) is None

    await eventually(stray_gone, timeout=30, what="the stray copy deleted by the sweep")
    # The sweep that removed it had listed (and judged) the other two first.
    assert get(fleet, "member-1", "configmap", "forged", namespace) is not None
    assert get(fleet, "member-1", "configmap", "alive", namespace) is not None
    assert controller.metric("federation_sweep_findings_total", finding="unrecorded_copy") >= found_before + 3


async def test_a_policy_applied_with_its_crd_places_the_first_custom_resource_within_seconds(
    fleet: LocalFleet, controller: ControllerProcess, namespace: str
) -> None:
    group = f"kinds{secrets.token_hex(3)}.example.com"
    crd = crd_manifest(group, "Widget", "widgets")
    await create_crd_and_wait(fleet.clusters["member-1"], crd)  # the member serves it already
    started = time.monotonic()
    apply(
        fleet,
        "hub",
        crd,
        policy(
            "widgets",
            namespace,
            [{"apiVersion": f"{group}/v1", "kind": "Widget"}],
            placement={"clusterNames": ["member-1"]},
        ),
    )

    async def served() -> bool:
        kubectl(fleet, "hub", "get", f"widgets.{group}", "-A")  # fails (AssertionError) until served
        return True

    await eventually(served, timeout=30, interval=0.05, what="the hub serving the new kind")
    apply(
        fleet,
        "hub",
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": namespace},
            "spec": {"size": 3},
        },
    )
    created = time.monotonic()

    async def landed() -> bool:
        return get(fleet, "member-1", f"widgets.{group}", "w", namespace) is not None

    # The poll of unserved kinds is an hour here: only the CRD watch can have started the kind.
    await eventually(landed, timeout=5, interval=0.05, what="the first custom resource in the member")
    print(
        f"first copy {time.monotonic() - created:.2f}s after the CR, "
        f"{time.monotonic() - started:.2f}s after the CRD and policy were applied"
    )
