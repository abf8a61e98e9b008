"""`federation clusters list|join|unjoin`: the member clusters of the fleet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from federation.cli.common import (
    database_options,
    default_kubeconfig,
    hub_options,
    out_console,
    with_database,
)
from federation.cli.output import Listing, Output, emit, object_name, output_option
from federation.errors import ConfigError
from federation.store import Store


def parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise ConfigError(f"--label {v!r}: expected KEY=VALUE")
        out[key] = value
    return out


def parse_taints(values: tuple[str, ...]) -> list[dict[str, str]]:
    out = []
    for v in values:
        kv, sep, effect = v.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ConfigError(f"--taint {v!r}: expected KEY[=VALUE]:NoSchedule|PreferNoSchedule|NoExecute")
        key, _, value = kv.partition("=")
        out.append(
            {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}
        )
    return out


@click.group("clusters")
def clusters() -> None:
    """The member clusters: list them, join one, take one out."""


CLUSTERS = Listing(
    columns=(
        "name",
        "ready",
        "version",
        "owner",
        "works",
        "applied",
        "pending",
        "conflict",
        "failed",
        "labels",
    ),
    wide=("drift_1h", "endpoint", "last_probe", "reason", "lease_expires"),
    elastic=("labels", "reason"),
    name=lambda r: object_name("MemberCluster", "federation.io", r["name"]),
)


@clusters.command("list")
@database_options
@output_option
def list_clusters(database_url: str | None, state_dir: Path, output: Output) -> None:
    """List the member clusters as the controller last saw them (readiness, version, works), and
    which controller replica owns each (runs its propagator: the holder of its lease).

    \b
    Example:
      federation clusters list -o wide
    """

    async def show(url: str) -> None:
        store = await Store.connect(url)
        try:
            rows = await store.cluster_statuses()
        finally:
            await store.close()
        emit(
            [
                {
                    "name": c.cluster,
                    "ready": "True" if c.ready else "False",
                    "version": c.kubernetes_version,
                    "owner": _owner(c.lease_holder, c.lease_expires_at),
                    "works": c.works_total,
                    "applied": c.works_applied,
                    "pending": c.works_pending,
                    "conflict": c.works_conflict,
                    "failed": c.works_failed,
                    "drift_1h": c.drift_events_last_hour,
                    "labels": ",".join(f"{k}={v}" for k, v in sorted(c.labels.items())) or None,
                    "reason": c.ready_reason,
                    "endpoint": c.endpoint,
                    "last_probe": c.last_probe_at,
                    "lease_expires": c.lease_expires_at,
                }
                for c in sorted(rows, key=lambda c: c.cluster)
            ],
            CLUSTERS,
            output,
        )

    with_database(database_url, state_dir, show)


def _owner(holder: str | None, expires_at: datetime | None) -> str | None:
    """The replica owning a cluster; an expired lease is shown as such (its holder stopped
    renewing: it died or lost the database, and another replica takes the cluster next)."""
    if holder is None or expires_at is None:
        return None
    return holder if expires_at > datetime.now(UTC) else f"{holder} (expired)"


@clusters.command("join")
@click.argument("name")
@click.option(
    "--kubeconfig",
    "member_kubeconfig",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Kubeconfig of the cluster that joins.",
)
@click.option("--context", help="Context of that kubeconfig [default: its current context].")
@click.option("--label", "-l", "labels", multiple=True, help="A label placement can select on (KEY=VALUE).")
@click.option("--taint", "taints", multiple=True, help="A taint (KEY[=VALUE]:Effect).")
@click.option("--secrets-namespace", default="fleet-system", show_default=True, help="Where the Secret goes.")
@hub_options
def join_cluster(name: str, member_kubeconfig: Path, context: str | None, labels: tuple[str, ...],
                 taints: tuple[str, ...], secrets_namespace: str, hub_kubeconfig: Path | None,
                 hub_context: str | None) -> None:  # fmt: skip
    """Join a cluster: check it answers, store its kubeconfig in a Secret, create its MemberCluster.

    The kubeconfig is flattened (one context, certificates embedded) so the controller can use
    it from inside the hub.

    \b
    Example:
      federation clusters join eu-west --kubeconfig eu-west.yaml -l region=eu -l gpu=true
    """
    import anyio

    from federation.clusters.join import flatten_kubeconfig, join
    from federation.kube import KubeClient

    kubeconfig = flatten_kubeconfig(member_kubeconfig, context=context, name=name)
    label_map, taint_list = parse_labels(labels), parse_taints(taints)
    hub_path = default_kubeconfig(hub_kubeconfig)

    async def run() -> str:
        member = await KubeClient.connect(
            name, kubeconfig_data=kubeconfig, source=str(member_kubeconfig), timeout=10
        )
        try:
            version = str((await member.version()).get("gitVersion", "?"))
        finally:
            await member.close()
        hub = await KubeClient.connect("hub", kubeconfig=hub_path, context=hub_context)
        try:
            await join(
                hub, name=name, kubeconfig=kubeconfig, labels=label_map, taints=taint_list,
                secrets_namespace=secrets_namespace,
            )  # fmt: skip
        finally:
            await hub.close()
        return version

    version = anyio.run(run)
    out_console.print(f"cluster {name} ({version}) joined the fleet; labels: {label_map or 'none'}")


@clusters.command("unjoin")
@click.argument("name")
@click.option(
    "--secrets-namespace",
    default="fleet-system",
    show_default=True,
    help="Where its Secret is, when the MemberCluster does not say (it normally does).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the controller to delete the copies in the cluster.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Do not wait for the copies to be deleted: remove the cluster now and leave them in place "
    "(for a cluster that will not answer again).",
)
@hub_options
def unjoin_cluster(
    name: str,
    secrets_namespace: str,
    timeout: float,
    force: bool,
    hub_kubeconfig: Path | None,
    hub_context: str | None,
) -> None:
    """Take a cluster out of the fleet: its MemberCluster, the copies, then its Secret.

    Deleting the MemberCluster takes the cluster out of placement at once: resources placed
    there move to other clusters (per their policies), and the running controller deletes the
    copies it propagated into it (copies of policies with deletionPolicy Orphan stay). The
    MemberCluster goes once that is done; then its kubeconfig Secret is deleted. With --force
    it goes at once and every copy stays.

    \b
    Example:
      federation clusters unjoin eu-west
      federation clusters unjoin eu-west --force     # the cluster is gone for good
    """
    import anyio

    from federation.cli.common import progress
    from federation.clusters.join import unjoin
    from federation.kube import KubeClient

    hub_path = default_kubeconfig(hub_kubeconfig)

    async def run() -> bool:
        hub = await KubeClient.connect("hub", kubeconfig=hub_path, context=hub_context)
        try:
            return await unjoin(
                hub,
                name=name,
                secrets_namespace=secrets_namespace,
                force=force,
                timeout=timeout,
                progress=progress,
            )
        finally:
            await hub.close()

    if not anyio.run(run):
        raise ConfigError(f"cluster {name} is not a member of the fleet", hint="federation clusters list")
    left = "copies left in place" if force else "the controller deleted its copies (Orphan policies' stay)"
    out_console.print(f"cluster {name} left the fleet; {left}")
