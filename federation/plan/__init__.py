"""``federation plan``: a dry run that explains, per resource, every cluster in or out.

Reads policies, override policies, templates and a clusters file; runs the controller's own
pipeline (`federation.hub.pipeline`) on them, so the plan cannot disagree with the controller;
and renders the result as a table or JSON. Nothing here talks to a cluster.
"""

from federation.plan.inputs import PlanInputs, load_plan_inputs
from federation.plan.render import render_json, render_text
from federation.plan.report import ClusterRow, PlanReport, ResourcePlan, build_plan

__all__ = [
    "ClusterRow",
    "PlanInputs",
    "PlanReport",
    "ResourcePlan",
    "build_plan",
    "load_plan_inputs",
    "render_json",
    "render_text",
]
