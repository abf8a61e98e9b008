"""Staged rollouts on members that run workloads: the gates read real health.

Collected by `test_workloads` (imported there), so they share its fleet and controller; this
module's name keeps pytest from collecting them a second time on a fleet of their own.

Each test changes a template under a policy with ``spec.rollout`` and watches the members:
the canary gets the change first, the others only once the canary's pods have been Ready for
the soak (kwok makes them Ready; an image tagged ``:broken`` never is: the control plane's
kwok stage leaves such pods Pending, the stand-in for a bad image). Nothing here writes a
member's status; the times compared are the ones the test observed, with the margin its own
polling adds.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from federation.devfleet import LocalFleet
from tests.controllerhelpers import FEDERATION, ControllerProcess, apply, events, get, kubectl
from tests.integration.conftest import deployment
from tests.integration.test_propagation import policy
from tests.kubehelpers import eventually

MEMBERS = ("member-1", "member-2", "member-3")
V1, V2, BROKEN = "registry.example.com/app:1", "registry.example.com/app:2", "registry.example.com/app:broken"
#: How far the test's own observations may lag what they observe (a kubectl round per member).
POLL_MARGIN = 1.5


def staged(name: str, namespace: str, *, soak: str = "10s", **rollout: Any) -> dict[str, Any]:
    """A policy placing Deployment `name` on every member: [canary: member-1] → [the rest]."""
    canary = {"name": "canary", "clusterNames": ["member-1"], "waitAfter": soak, **rollout.pop("canary", {})}
    return policy(
        name,
        namespace,
        [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
        rollout={"stages": [canary, {"name": "rest", "waitAfter": "1s"}], **rollout},
    )


def image_in(fleet: LocalFleet, cluster: str, name: str, namespace: str) -> str | None:
    copy = get(fleet, cluster, "deployment", name, namespace)
    return None if copy is None else copy["spec"]["template"]["spec"]["containers"][0]["image"]


def images(fleet: LocalFleet, name: str, namespace: str) -> dict[str, str | None]:
    return {c: image_in(fleet, c, name, namespace) for c in MEMBERS}


def ready_on(fleet: LocalFleet, cluster: str, name: str, namespace: str, image: str) -> bool:
    """The member's Deployment runs `image` with every replica updated and Ready."""
    copy = get(fleet, cluster, "deployment", name, namespace)
    if copy is None or copy["spec"]["template"]["spec"]["containers"][0]["image"] != image:
        return False
    status, want = copy.get("status") or {}, copy["spec"]["replicas"]
    return bool(
        status.get("observedGeneration") == copy["metadata"]["generation"]
        and status.get("updatedReplicas") == want
        and status.get("readyReplicas") == want
        and status.get("replicas") == want
    )


def federation(controller: ControllerProcess, *args: str) -> str:
    done = subprocess.run(
        [FEDERATION, *args, "--database-url", controller.database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"federation {' '.join(args)}: {done.stderr}"
    return done.stdout


def rollout_of(controller: ControllerProcess, name: str, namespace: str) -> dict[str, Any]:
    rows = json.loads(federation(controller, "rollout", "status", "--all", "-n", namespace, "-o", "json"))
    found = [r for r in rows if r["name"] == name]
    assert found, f"no rollout of {name} yet: {rows}"
    return dict(found[0])


async def rolled_out(
    fleet: LocalFleet, controller: ControllerProcess, name: str, ns: str, image: str
) -> None:
    """Every member runs `image` Ready and the rollout is complete."""

    async def done() -> bool:
        assert all(ready_on(fleet, c, name, ns, image) for c in MEMBERS), images(fleet, name, ns)
        phase = rollout_of(controller, name, ns)["phase"]
        assert phase == "Complete", phase
        return True

    await eventually(done, timeout=90, interval=0.5, what=f"{name} on {image} Ready in every member")


async def watch_until(
    fleet: LocalFleet, name: str, ns: str, done: Callable[[dict[str, str | None]], bool], *, timeout: float
) -> tuple[list[tuple[float, dict[str, str | None]]], float]:
    """Poll the members' images until `done`; every observation (time, images) and the time the
    canary was first seen Ready on V2 (inf if never)."""
    seen: list[tuple[float, dict[str, str | None]]] = []
    canary_ready = float("inf")

    async def check() -> bool:
        nonlocal canary_ready
        now = time.monotonic()
        found = images(fleet, name, ns)
        seen.append((now, found))
        if canary_ready == float("inf") and ready_on(fleet, "member-1", name, ns, V2):
            canary_ready = now
        assert done(found), found
        return True

    await eventually(check, timeout=timeout, interval=0.2, what=f"{name}: {done.__doc__ or 'the change'}")
    return seen, canary_ready


async def test_an_image_change_reaches_the_canary_first_and_the_rest_after_its_soak(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    fleet, ns, controller = workload_fleet, workload_ns, workload_controller
    apply(fleet, "hub", deployment("web", ns, replicas=2), staged("web", ns, soak="10s"))
    await rolled_out(fleet, controller, "web", ns, V1)

    apply(fleet, "hub", deployment("web", ns, replicas=2, image=V2))

    def everywhere(found: dict[str, str | None]) -> bool:
        """every member on the new image"""
        return all(i == V2 for i in found.values())

    seen, canary_ready = await watch_until(fleet, "web", ns, everywhere, timeout=120)
    first_new = {c: next(t for t, found in seen if found[c] == V2) for c in MEMBERS}
    # The canary first; nobody else before the canary's pods were Ready for the 10 s soak.
    assert first_new["member-1"] < min(first_new["member-2"], first_new["member-3"]), first_new
    for c in ("member-2", "member-3"):
        assert first_new[c] - canary_ready >= 10 - POLL_MARGIN, (c, first_new[c] - canary_ready)
    await rolled_out(fleet, controller, "web", ns, V2)
    kinds = [e["type"] for e in await events(controller.database_url, ns) if e["type"].startswith("Rollout")]
    assert kinds.count("RolloutStarted") == 1 and "RolloutComplete" in kinds, kinds
    assert kinds.index("RolloutStagePassed") > kinds.index("RolloutStarted"), kinds


async def test_a_bad_image_halts_after_the_canary_or_is_rolled_back(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    """Two Deployments get a bad image at once: under onFailure Halt the canary keeps it (until
    `federation rollout undo`), under Rollback the controller puts the canary back itself; the
    others never see it."""
    fleet, ns, controller = workload_fleet, workload_ns, workload_controller
    short = {"canary": {"deadline": "15s"}}
    apply(
        fleet,
        "hub",
        deployment("halt", ns, replicas=2),
        staged("halt", ns, soak="2s", **short),
        deployment("back", ns, replicas=2),
        staged("back", ns, soak="2s", onFailure="Rollback", **short),
    )
    for name in ("halt", "back"):
        await rolled_out(fleet, controller, name, ns, V1)
    apply(
        fleet,
        "hub",
        deployment("halt", ns, replicas=2, image=BROKEN),
        deployment("back", ns, replicas=2, image=BROKEN),
    )

    async def failed(name: str, phase: str) -> dict[str, Any]:
        row = rollout_of(controller, name, ns)
        assert row["phase"] == phase, row
        return row

    halted = await eventually(lambda: failed("halt", "Halted"), timeout=60, interval=0.5, what="halt halted")
    assert "stage canary failed" in halted["reason"] and "member-1" in halted["reason"], halted
    assert images(fleet, "halt", ns) == {"member-1": BROKEN, "member-2": V1, "member-3": V1}
    await eventually(lambda: failed("back", "RolledBack"), timeout=60, interval=0.5, what="back rolled back")

    async def back_on_v1() -> bool:
        assert images(fleet, "back", ns) == dict.fromkeys(MEMBERS, V1)
        return True

    await eventually(back_on_v1, timeout=30, what="the canary of back on the previous image again")

    # Halted stays halted: the others never get the bad image, the canary keeps it.
    status = json.loads(
        federation(controller, "rollout", "status", "deployment/halt", "-n", ns, "-o", "json")
    )
    assert {r["cluster"]: r["revision"] for r in status} == {
        "member-1": "new",
        "member-2": "previous",
        "member-3": "previous",
    }
    out = federation(controller, "rollout", "undo", "deployment/halt", "-n", ns)
    assert "undo asked" in out
    await eventually(lambda: failed("halt", "RolledBack"), timeout=30, interval=0.5, what="halt undone")

    async def halt_on_v1() -> bool:
        assert images(fleet, "halt", ns) == dict.fromkeys(MEMBERS, V1)
        return True

    await eventually(halt_on_v1, timeout=30, what="the canary of halt on the previous image again")
    kinds = [e["type"] for e in await events(controller.database_url, ns)]
    assert "RolloutHalted" in kinds and kinds.count("RolloutRolledBack") == 2, kinds

    async def condition() -> bool:
        """The policy says so too (its status is written within a few seconds)."""
        pol = get(fleet, "hub", "propagationpolicy", "halt", ns) or {}
        rolled = [c for c in (pol.get("status") or {}).get("conditions", []) if c["type"] == "RolledOut"]
        assert rolled and (rolled[0]["status"], rolled[0]["reason"]) == ("False", "RolledBack"), rolled
        assert "undone by hand" in rolled[0]["message"], rolled
        return True

    await eventually(condition, timeout=30, what="the policy's RolledOut condition saying RolledBack")


MODEL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "modelcontexts.serving.example.com"},
    "spec": {
        "group": "serving.example.com",
        "scope": "Namespaced",
        "names": {"plural": "modelcontexts", "singular": "modelcontext", "kind": "ModelContext"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"modelRef": {"type": "string"}}}
                        },
                    }
                },
            }
        ],
    },
}


def model(namespace: str, ref: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.example.com/v1",
        "kind": "ModelContext",
        "metadata": {"name": "assistant", "namespace": namespace},
        "spec": {"modelRef": ref},
    }


async def test_a_model_change_on_the_canary_waits_for_approval_before_the_rest(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    fleet, ns, controller = workload_fleet, workload_ns, workload_controller
    for cluster in ("hub", *MEMBERS):
        apply(fleet, cluster, MODEL_CRD)
    for cluster in ("hub", *MEMBERS):
        kubectl(
            fleet, cluster, "wait", "--for=condition=Established", "crd/modelcontexts.serving.example.com"
        )
    selector = [{"apiVersion": "serving.example.com/v1", "kind": "ModelContext", "name": "assistant"}]
    stages = [
        {"name": "canary", "clusterNames": ["member-1"], "waitAfter": "2s", "approval": True},
        {"name": "rest"},
    ]
    apply(
        fleet, "hub", model(ns, "llama-3-8b"), policy("assistant", ns, selector, rollout={"stages": stages})
    )

    def refs() -> dict[str, str | None]:
        out = {}
        for c in MEMBERS:
            copy = get(fleet, c, "modelcontext.serving.example.com", "assistant", ns)
            out[c] = None if copy is None else copy["spec"]["modelRef"]
        return out

    async def all_on(ref: str) -> bool:
        assert refs() == dict.fromkeys(MEMBERS, ref)
        return True

    await eventually(lambda: all_on("llama-3-8b"), timeout=60, what="the first model everywhere")
    apply(fleet, "hub", model(ns, "llama-3-70b"))

    async def waiting() -> dict[str, Any]:
        row = rollout_of(controller, "assistant", ns)
        assert row["phase"] == "WaitingApproval", row
        return row

    row = await eventually(waiting, timeout=60, interval=0.5, what="the canary soaked, waiting for approval")
    assert "waiting for approval" in row["reason"] and row["stage"] == "canary", row
    assert refs() == {"member-1": "llama-3-70b", "member-2": "llama-3-8b", "member-3": "llama-3-8b"}

    async def condition_waiting() -> bool:
        pol = get(fleet, "hub", "propagationpolicy", "assistant", ns) or {}
        rolled = [c for c in (pol.get("status") or {}).get("conditions", []) if c["type"] == "RolledOut"]
        assert rolled and rolled[0]["reason"] == "WaitingApproval", rolled
        assert "ModelContext" in rolled[0]["message"] and "approval" in rolled[0]["message"], rolled
        return True

    await eventually(condition_waiting, timeout=30, what="the policy's RolledOut condition says it waits")
    # The dashboard API says the same, per cluster.
    (item,) = controller.api(f"/api/v1/rollouts?namespace={ns}")["items"]
    assert (item["kind"], item["phase"], item["stage"]) == ("ModelContext", "WaitingApproval", "canary")
    assert item["policy"] == f"PropagationPolicy/{ns}/assistant"
    assert {c: v["revision"] for c, v in item["clusters"].items()} == {
        "member-1": "new",
        "member-2": "previous",
        "member-3": "previous",
    }
    # Still waiting a while later: nothing but the approval moves it.
    assert (await waiting())["phase"] == "WaitingApproval"
    assert refs()["member-2"] == "llama-3-8b"

    out = federation(controller, "rollout", "approve", "propagationpolicy/assistant", "-n", ns)
    assert "approved stage canary of ModelContext" in out, out
    await eventually(
        lambda: all_on("llama-3-70b"), timeout=60, what="the new model everywhere after approval"
    )

    async def complete() -> bool:
        assert rollout_of(controller, "assistant", ns)["phase"] == "Complete"
        return True

    await eventually(complete, timeout=30, interval=0.5, what="the rollout complete")


async def test_a_controller_killed_mid_stage_resumes_and_no_cluster_jumps_ahead(
    workload_fleet: LocalFleet, workload_controller: ControllerProcess, workload_ns: str
) -> None:
    fleet, ns, controller = workload_fleet, workload_ns, workload_controller
    apply(fleet, "hub", deployment("resume", ns, replicas=2), staged("resume", ns, soak="12s"))
    await rolled_out(fleet, controller, "resume", ns, V1)
    apply(fleet, "hub", deployment("resume", ns, replicas=2, image=V2))

    async def canary_on_v2() -> bool:
        assert images(fleet, "resume", ns) == {"member-1": V2, "member-2": V1, "member-3": V1}
        return True

    await eventually(canary_on_v2, timeout=60, what="the canary on the new image, the others not")
    canary_new = time.monotonic()
    controller.stop(kill=True)
    controller.start()

    def everywhere(found: dict[str, str | None]) -> bool:
        """every member on the new image after the restart"""
        return all(i == V2 for i in found.values())

    seen, _ = await watch_until(fleet, "resume", ns, everywhere, timeout=120)
    # Resumed where it was: the others waited for the canary's soak, counted from its pods
    # being Ready on the new image (which is after it got it) — the restart released nobody early.
    for c in ("member-2", "member-3"):
        first = next(t for t, found in seen if found[c] == V2)
        assert first - canary_new >= 12 - POLL_MARGIN, (c, first - canary_new)
    await rolled_out(fleet, controller, "resume", ns, V2)
    kinds = [e["type"] for e in await events(controller.database_url, ns) if e["type"] == "RolloutStarted"]
    assert len(kinds) == 1, "the restart started the rollout again"
