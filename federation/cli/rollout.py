"""`federation rollout`: staged rollouts — where each changed template stands, approve, undo.

Reads and writes the `rollouts` table in Postgres directly, like `status` and `events`: it works
without reaching the hub or the members. What it writes is only what a person asks (an approval,
an undo); the controller reads it at its next look at the rollout (within a second for one in
progress, five for a halted one) and does the rest — and says so in its events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from federation.cli.common import database_options, with_database
from federation.cli.output import Listing, Output, emit, object_name, output_option
from federation.cli.status import kind_matches
from federation.errors import ConfigError
from federation.store import ResourceId, RolloutListing, Store

#: How people name a policy, by the kind it means.
POLICY_WORDS = {
    "propagationpolicy": "PropagationPolicy",
    "propagationpolicies": "PropagationPolicy",
    "pp": "PropagationPolicy",
    "clusterpropagationpolicy": "ClusterPropagationPolicy",
    "clusterpropagationpolicies": "ClusterPropagationPolicy",
    "cpp": "ClusterPropagationPolicy",
}
_ACTIVE = ("Progressing", "WaitingApproval", "Halted")

ROLLOUTS = Listing(
    columns=("kind", "namespace", "name", "policy", "phase", "stage", "new", "reason"),
    wide=("started", "updated", "previous_on"),
    elastic=("reason", "previous_on"),
    name=lambda r: object_name(r["kind"], r["group"], r["name"]),
)
#: One template's rollout, a row per chosen cluster.
PER_CLUSTER = Listing(
    columns=("cluster", "stage", "revision", "health"),
    elastic=("health",),
    name=lambda r: object_name("MemberCluster", "federation.io", r["cluster"]),
)


def _policy(r: RolloutListing) -> str | None:
    if r.policy_kind is None or r.policy_name is None:
        return None
    where = f"{r.policy_namespace}/" if r.policy_namespace else ""
    return f"{r.policy_kind}/{where}{r.policy_name}"


def _row(r: RolloutListing) -> dict[str, Any]:
    ro = r.rollout
    clusters = ro.clusters or {}
    new = [c for c, v in clusters.items() if isinstance(v, dict) and v.get("revision") == "new"]
    complete = ro.phase == "Complete"
    return {
        "kind": r.ref.kind,
        "group": r.ref.api_group or None,
        "namespace": r.ref.namespace or None,
        "name": r.ref.name,
        "policy": _policy(r),
        "phase": ro.phase,
        "stage": None if complete else ro.stage_name or ro.failed_stage,
        "new": None if complete else f"{len(new)}/{len(clusters)}",
        "reason": ro.reason,
        "started": ro.started_at,
        "updated": ro.updated_at,
        "previous_on": None if complete else ", ".join(sorted(set(clusters) - set(new))) or None,
        "approved": list(ro.approved),
        "clusters": clusters,
    }


def select(found: list[RolloutListing], target: str | None, namespace: str | None) -> list[RolloutListing]:
    """The rollouts `target` names: a template (``KIND/NAME``), every template of a policy
    (``propagationpolicy/NAME``, ``clusterpropagationpolicy/NAME``), or all (None)."""
    if target is None:
        return [r for r in found if namespace is None or r.ref.namespace == namespace]
    word, sep, name = target.partition("/")
    if not sep or not word or not name:
        raise ConfigError(
            f"{target!r}: expected KIND/NAME of a template (deployment/web) or of a policy "
            "(propagationpolicy/web, clusterpropagationpolicy/all-web)"
        )
    policy_kind = POLICY_WORDS.get(word.lower().partition(".")[0])
    if policy_kind is not None:
        return [
            r
            for r in found
            if r.policy_kind == policy_kind
            and r.policy_name == name
            and (namespace is None or policy_kind != "PropagationPolicy" or r.policy_namespace == namespace)
        ]
    return [
        r
        for r in found
        if r.ref.name == name
        and kind_matches(word, r.ref)
        and (namespace is None or r.ref.namespace == namespace)
    ]


def _with_store(
    database_url: str | None, state_dir: Path, action: Callable[[Store], Awaitable[None]]
) -> None:
    async def run(url: str) -> None:
        store = await Store.connect(url)
        try:
            await action(store)
        finally:
            await store.close()

    with_database(database_url, state_dir, run)


@click.group("rollout")
def rollout() -> None:
    """Staged rollouts: templates whose policy has spec.rollout reach their clusters in stages.

    \b
    Examples:
      federation rollout status
      federation rollout status deployment/web -n shop       # a row per cluster
      federation rollout approve propagationpolicy/web -n shop
      federation rollout undo deployment/web -n shop
    """


target_argument = click.argument("target", required=False, metavar="[KIND/NAME]")
namespace_option = click.option("-n", "--namespace", help="The namespace of the template or policy.")


@rollout.command("status")
@target_argument
@namespace_option
@click.option("--all", "show_all", is_flag=True, help="Also the templates whose last rollout is complete.")
@database_options
@output_option
def status(target: str | None, namespace: str | None, show_all: bool, database_url: str | None,
           state_dir: Path, output: Output) -> None:  # fmt: skip
    """Where each changed template stands: its phase, its stage, how many clusters run the new
    revision, and why it waits.

    With one template (KIND/NAME), a row per chosen cluster: its stage, the revision it runs
    (new or previous) and its health on the new one.
    """

    async def show(store: Store) -> None:
        one = target is not None and target.partition("/")[0].lower() not in POLICY_WORDS
        listed = await store.list_rollouts(namespace=namespace, complete=show_all or one)
        found = select(listed, target, namespace)
        if one:
            if len(found) != 1:
                raise ConfigError(_none(target, namespace) if not found else f"{target}: names {len(found)} "
                                  "templates; give -n NAMESPACE")  # fmt: skip
            clusters = found[0].rollout.clusters or {}
            rows = [{"cluster": c, **v} for c, v in sorted(clusters.items()) if isinstance(v, dict)]
            emit(rows, PER_CLUSTER, output)
            return
        rows = [_row(r) for r in found if show_all or r.rollout.phase != "Complete"]
        emit(rows, ROLLOUTS, output)

    _with_store(database_url, state_dir, show)


@rollout.command("approve")
@click.argument("target", metavar="KIND/NAME")
@namespace_option
@click.option("--stage", help="Approve this stage (ahead of time too); default: the stage each waits in.")
@database_options
def approve(target: str, namespace: str | None, stage: str | None, database_url: str | None,
            state_dir: Path) -> None:  # fmt: skip
    """Let rollouts waiting for approval go on to their next stage.

    TARGET is a template (deployment/web) or a policy (propagationpolicy/web,
    clusterpropagationpolicy/all): every rollout of its templates in progress is approved.
    """

    async def act(store: Store) -> None:
        chosen = _active(select(await _in_progress(store, namespace), target, namespace), target, namespace)
        taken = await store.approve_rollouts([ResourceId(r.rollout.resource_id) for r in chosen], stage)
        for r in chosen:
            which = stage or r.rollout.stage_name
            click.echo(f"approved stage {which} of {r.ref}")
        if not taken:
            click.echo("(already approved: nothing changed)")

    _with_store(database_url, state_dir, act)


@rollout.command("undo")
@click.argument("target", metavar="KIND/NAME")
@namespace_option
@database_options
def undo(target: str, namespace: str | None, database_url: str | None, state_dir: Path) -> None:
    """Put the previous revision back on the clusters a rollout reached, and end it.

    For rollouts in progress or halted; the template on the hub keeps the new revision (revert it
    there to change what a later rollout brings). A completed rollout has nothing to undo:
    revert the template, and the revert rolls out in stages like any change.
    """

    async def act(store: Store) -> None:
        chosen = _active(select(await _in_progress(store, namespace), target, namespace), target, namespace)
        await store.undo_rollouts([ResourceId(r.rollout.resource_id) for r in chosen])
        for r in chosen:
            click.echo(f"undo asked for {r.ref}: the controller puts the previous revision back")

    _with_store(database_url, state_dir, act)


async def _in_progress(store: Store, namespace: str | None) -> list[RolloutListing]:
    return await store.list_rollouts(namespace=namespace, complete=False)


def _active(found: list[RolloutListing], target: str, namespace: str | None) -> list[RolloutListing]:
    active = [r for r in found if r.rollout.phase in _ACTIVE]
    if not active:
        raise ConfigError(_none(target, namespace))
    return active


def _none(target: str | None, namespace: str | None) -> str:
    where = f" in namespace {namespace}" if namespace else ""
    return (
        f"{target}{where}: no rollout in progress (see `federation rollout status --all`; only "
        "templates under a policy with spec.rollout have one)"
    )
