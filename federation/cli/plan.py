"""`federation plan`: where each template would go and why, without touching any cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("plan")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file of policies, override policies and templates (repeatable; multi-document).",
)
@click.option(
    "--clusters",
    "clusters_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The clusters file (see clusters.example.yaml).",
)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Format."
)
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    help="Namespace of namespaced objects that name none (as kubectl apply does).",
)
@click.option("--hub-id", default="hub", show_default=True, help="Hub id stamped on the member copies.")
def plan(files: tuple[Path, ...], clusters_file: Path, output: str, namespace: str, hub_id: str) -> None:
    """Explain, without touching any cluster, where each template would go and why.

    For every template: the policy that governs it (and those it overrides), then every
    cluster with chosen?, replicas and the reason, then what the override policies change in
    each chosen cluster's copy. Exits 1 if an override cannot be applied.

    \b
    Example:
      federation plan -f examples/policies.yaml -f examples/workloads.yaml \\
          --clusters examples/clusters.yaml
    """
    from federation.plan import build_plan, load_plan_inputs, render_json, render_text

    inputs = load_plan_inputs(files=files, clusters_file=clusters_file, namespace=namespace)
    report = build_plan(inputs, hub=hub_id)
    click.echo(render_json(report) if output == "json" else render_text(report), nl=False)
    if report.errors:
        sys.exit(1)
