"""Rendering a plan: a plain-text report for people, JSON for scripts.

Plain text (not a rich table) so the output is the same on every terminal width and can be
compared with a golden file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from federation.api import DeletionPolicy
from federation.plan.report import PlanReport, ResourcePlan

_DELETION_TEXT = {
    DeletionPolicy.DELETE: "Delete: copies are deleted with the template or the policy, "
    "and from a cluster that is dropped",
    DeletionPolicy.ORPHAN: "Orphan: copies stay, without our ownership stamp, when the template "
    "or the policy is deleted or a cluster is dropped",
}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths, strict=True)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _resource_text(plan: ResourcePlan) -> list[str]:
    lines = [f"{plan.ref} ({plan.api_version})"]
    if plan.policy is None and not plan.dependency_of:
        lines.append(f"  {plan.unschedulable}")
        return lines
    if plan.policy is None:
        lines.append("  policy:     none selects it")
    else:
        lines.append(f"  policy:     {plan.policy} (priority {plan.priority})")
    for loser in plan.losers:
        lines.append(f"  not used:   {loser}")
    if plan.dependency_of:
        lines.append(f"  follows:    {', '.join(plan.dependency_of)} (as a dependency)")
    lines.append(f"  placement:  {plan.scheduling}")
    if plan.deletion_policy is not None:
        lines.append(f"  deletion:   {_DELETION_TEXT[plan.deletion_policy]}")
    if plan.suspended:
        lines.append("  SUSPENDED:  the policy is suspended: the decision below is kept, nothing is applied")
    if plan.unschedulable:
        lines.append(f"  UNSCHEDULABLE: {plan.unschedulable}")
    if plan.dependencies is not None:
        lines.append("  dependencies (propagateDependencies: they follow this workload to its clusters):")
        lines += [
            f"    {d.ref}" + ("" if d.given else " (not in the given files: it must exist on the hub)")
            for d in plan.dependencies
        ] or ["    none"]
    if plan.rollout is not None:
        lines.append("  rollout (a change reaches the clusters in these stages, in order):")
        lines += [f"    {line}" for line in plan.rollout]
    lines.append("")
    staged = plan.rollout is not None
    rows = [
        (
            r.cluster,
            "yes" if r.chosen else "no",
            "-" if r.replicas is None else str(r.replicas),
            *((r.stage or "-",) if staged else ()),
            r.reason,
        )
        for r in plan.rows
    ]
    header = ("CLUSTER", "CHOSEN", "REPLICAS", *(("STAGE",) if staged else ()), "REASON")
    lines += _table(header, rows, indent="  ")
    chosen = [r for r in plan.rows if r.chosen]
    if chosen:
        lines.append("")
        lines.append("  overrides:")
        for r in chosen:
            if r.error:
                lines.append(f"    {r.cluster}: FAILED: {r.error}")
            elif not r.rules:
                lines.append(f"    {r.cluster}: none")
            else:
                lines.append(f"    {r.cluster}: {', '.join(r.rules)}")
                lines += [f"      {c}" for c in r.changes] or ["      (no change)"]
    return lines


def render_text(report: PlanReport) -> str:
    blocks = ["\n".join(_resource_text(p)) for p in report.resources]
    if report.policy_problems:
        refused = "\n".join(f"  {line}" for line in report.policy_problems)
        blocks.insert(0, f"REFUSED override rules (the admission webhook refuses these policies):\n{refused}")
    return ("\n\n".join(blocks) if blocks else "no resources given") + "\n"


def render_json(report: PlanReport) -> str:
    data: dict[str, Any] = {"resources": [asdict(p) for p in report.resources]}
    if report.policy_problems:
        data["policyProblems"] = list(report.policy_problems)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
