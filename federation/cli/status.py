"""`federation status`: where every resource stands across the fleet, or one resource per cluster.

Reads the dashboard views in Postgres (the same rows the API and Grafana show), so it works
whether or not this machine can reach the clusters.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import click
import orjson

from federation.changes import ChangeFilter
from federation.cli.common import database_options, with_database, with_database_async
from federation.cli.follow import follow, run_until_interrupted
from federation.cli.output import Listing, Output, emit, object_name, output_option
from federation.errors import ConfigError
from federation.store import ChangeRow, ObjectRef, ResourceId, ResourceStatus, Store, WorkStatus

#: kubectl's short names for the kinds people type most.
ALIASES = {
    "deploy": "deployment",
    "cm": "configmap",
    "svc": "service",
    "sts": "statefulset",
    "ds": "daemonset",
    "rs": "replicaset",
    "pvc": "persistentvolumeclaim",
    "sa": "serviceaccount",
    "ns": "namespace",
}


def kind_matches(spec: str, ref: ObjectRef) -> bool:
    """Whether `deployment`, `deployments`, `Deployment`, `deploy` or `deployments.apps` names ref's kind."""
    word, _, group = spec.lower().partition(".")
    word = ALIASES.get(word, word)
    kind = ref.kind.lower()
    if group and group != ref.api_group.lower():
        return False
    return word in (kind, kind + "s", kind + "es", kind[:-1] + "ies" if kind.endswith("y") else kind)


def _ref_fields(ref: ObjectRef) -> dict[str, Any]:
    """What names an object in a row (and its `-o name`)."""
    return {
        "kind": ref.kind,
        "group": ref.api_group or None,
        "namespace": ref.namespace or None,
        "name": ref.name,
    }


def _resource_row(r: ResourceStatus) -> dict[str, Any]:
    replicas = f"{r.replicas_ready}/{r.replicas_desired}" if r.replicas_desired is not None else None
    return {
        **_ref_fields(r.ref),
        "clusters": f"{r.clusters_applied}/{r.clusters_desired}",
        "healthy": r.clusters_healthy,
        "conflicted": r.clusters_conflicted,
        "failed": r.clusters_failed,
        "replicas": replicas,
        "health": r.worst_health.value if r.worst_health else None,
        "unschedulable": r.unschedulable,
        "changed": r.last_change,
        "removing": r.clusters_removing,
        "revision": r.placement_revision,
    }


RESOURCES = Listing(
    columns=(
        "kind",
        "namespace",
        "name",
        "clusters",
        "healthy",
        "conflicted",
        "failed",
        "replicas",
        "health",
    ),
    wide=("unschedulable", "removing", "revision", "changed"),
    elastic=("unschedulable",),
    name=lambda r: object_name(r["kind"], r["group"], r["name"]),
)
#: One resource, a row per cluster: ``-o name`` names the clusters (as the hub's MemberClusters).
PER_CLUSTER = Listing(
    columns=("cluster", "placed", "replicas", "applied", "health", "last_error"),
    wide=(
        "healthy_since",
        "attempts",
        "in_sync",
        "desired_hash",
        "applied_hash",
        "member_rv",
        "next_attempt",
    ),
    elastic=("last_error",),
    name=lambda r: object_name("MemberCluster", "federation.io", r["cluster"]),
)
#: One cluster's copies, a row per resource.
COPIES = Listing(
    columns=("resource", "placed", "replicas", "applied", "health", "last_error"),
    wide=PER_CLUSTER.wide,
    elastic=("last_error",),
    name=lambda r: object_name(r["kind"], r["group"], r["name"]),
)


def _work_row(w: WorkStatus) -> dict[str, Any]:
    replicas = f"{w.replicas_ready or 0}/{w.replicas_desired}" if w.replicas_desired is not None else None
    return {
        "cluster": w.cluster,
        "placed": w.state.value,
        "replicas": replicas,
        "applied": w.applied_at,
        "health": w.health.value,
        "healthy_since": w.healthy_since,
        "last_error": (w.last_error or "")[:120] or None,
        "attempts": w.attempts,
        "in_sync": w.in_sync,
        "desired_hash": w.desired_hash,
        "applied_hash": w.applied_hash,
        "member_rv": w.member_resource_version,
        "next_attempt": w.next_attempt_at,
        "error": w.last_error,
    }


def resolve(statuses: list[ResourceStatus], target: str, namespace: str | None) -> ResourceStatus:
    """The one resource `KIND/NAME` (in `namespace`) names, or a clear error."""
    kind, sep, name = target.partition("/")
    if not sep or not kind or not name:
        raise ConfigError(f"{target!r}: expected KIND/NAME, e.g. deployment/web")
    found = [
        s
        for s in statuses
        if s.ref.name == name
        and kind_matches(kind, s.ref)
        and (namespace is None or s.ref.namespace == namespace)
    ]
    if not found:
        where = f" in namespace {namespace}" if namespace else ""
        raise ConfigError(
            f"no resource {target}{where} is known to the controller",
            hint="federation status lists every resource a policy places",
        )
    if len(found) > 1:
        spaces = ", ".join(sorted(s.ref.namespace for s in found))
        raise ConfigError(f"{target} exists in several namespaces ({spaces})", hint="pass -n NAMESPACE")
    return found[0]


async def _watch(url: str, namespace: str | None, since: int | None, output: Output) -> None:
    """The table now, then a resource's new row after each change of it (the change log)."""
    store = await Store.connect(url)
    try:
        start = await store.last_position() if since is None else since
        rows = [
            _resource_row(s) for s in await store.resource_statuses() if namespace in (None, s.ref.namespace)
        ]
        rows.sort(key=lambda r: (r["namespace"] or "", r["kind"], r["name"]))
        stream = output.format in ("json", "yaml", "jmespath", "name")
        for row in rows if stream else ():
            click.echo(orjson.dumps(row, default=str).decode())
        if not stream:
            emit(rows, RESOURCES, output)
        quiet = replace(output, headers=False)

        async def changed(change: ChangeRow) -> None:
            rid = change.resource_id
            if rid is None and change.ref is not None:
                rid = await store.resource_id_of(change.ref)
            found = await store.resource_status(ResourceId(rid)) if rid is not None else None
            if found is None:
                return
            row = _resource_row(found)
            if stream:
                click.echo(orjson.dumps({"position": change.position, **row}, default=str).decode())
            else:
                emit([row], RESOURCES, quiet)

        await follow(
            store, ChangeFilter.of(namespace=namespace), since=start, output=output, on_change=changed
        )
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()


@click.command("status")
@click.argument("target", required=False, metavar="[KIND/NAME]")
@click.option("-n", "--namespace", help="Only this namespace.")
@click.option("--cluster", help="Only this member cluster's copies (with KIND/NAME) or works (without).")
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="After the table, a line with a resource's new row each time it changes, until Ctrl-C "
    "(without KIND/NAME and --cluster).",
)
@click.option("--since-position", type=click.IntRange(0), help="With -w: changes after this position.")
@database_options
@output_option
def status(target: str | None, namespace: str | None, cluster: str | None, watch: bool,
           since_position: int | None, database_url: str | None, state_dir: Path,
           output: Output) -> None:  # fmt: skip
    """Show where resources stand across the fleet.

    Without an argument: one line per resource (clusters applied/desired, healthy, conflicted,
    failed, replicas ready/desired, worst health). With KIND/NAME: one line per cluster (placed,
    replicas, applied, health, last error). `-o wide` adds hashes, attempts and the member's
    resourceVersion; `-o json|yaml` gives every field; for scripts, `-o name`, `--no-headers`
    and `-o jmespath=EXPR` (a query over the JSON rows). Tables never cut a value.

    \b
    Examples:
      federation status
      federation status deployment/web -n shop
      federation status configmaps/app-settings -n shop -o json
      federation status -o jmespath="[?health!='Healthy'].name"
      federation status deployment/web -n shop -o name      # the clusters it is in
      federation status -w -n shop                          # like kubectl get -w, fleet-wide
    """
    if watch and (target is not None or cluster is not None):
        raise click.UsageError("-w follows every resource: give neither KIND/NAME nor --cluster")
    if watch:
        run_until_interrupted(
            lambda: with_database_async(
                database_url, state_dir, lambda url: _watch(url, namespace, since_position, output)
            )
        )
        return

    async def show(url: str) -> None:
        store = await Store.connect(url)
        try:
            if cluster is not None:
                known = sorted(c.cluster for c in await store.cluster_statuses())
                if cluster not in known:
                    raise ConfigError(
                        f"no cluster {cluster!r} in the fleet (clusters: {', '.join(known) or 'none'})",
                        hint="federation clusters list",
                    )
            statuses = await store.resource_statuses()
            if target is None and cluster is not None:
                works = [w for w in await store.works_of_cluster(cluster, limit=10_000)
                         if namespace is None or w.ref.namespace == namespace]  # fmt: skip
                emit(
                    [
                        {"resource": str(w.ref), **_work_row(w), **_ref_fields(w.ref)}
                        for w in sorted(works, key=lambda w: str(w.ref))
                    ],
                    COPIES,
                    output,
                )
                return
            if target is None:
                rows = [
                    _resource_row(s) for s in statuses if namespace is None or s.ref.namespace == namespace
                ]
                rows.sort(key=lambda r: (r["namespace"] or "", r["kind"], r["name"]))
                emit(rows, RESOURCES, output)
                return
            found = resolve(statuses, target, namespace)
            works = [
                w for w in await store.works_of_resource(found.resource_id) if cluster in (None, w.cluster)
            ]
            emit([_work_row(w) for w in sorted(works, key=lambda w: w.cluster)], PER_CLUSTER, output)
        finally:
            await store.close()

    with_database(database_url, state_dir, show)
