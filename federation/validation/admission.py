"""What the admission webhook judges that the CRDs' schemas and CEL rules cannot.

CEL sees one object, and cannot type a field of any JSON type, so it cannot tell whether an
override's JSON patch makes sense, whether another policy already claims the same resources at
the same priority, or whether a Secret exists. These pure functions can, given the object and
what the hub holds; `federation.server.webhook` does the reading and the HTTP, and runs these
in a worker thread. ``federation plan`` takes the checks it shares with the webhook from the
same package (`federation.validation`), so both refuse in the same words. Each problem is one
line naming the object and the field, as every message of ours does.

Every check costs time linear in the review's size, and the one that could cost the most (the
JSON patch check) has a cap, `PATCH_CHECK_MAX_WORK`: above it that check is skipped with a
warning while the others still run. Where a new check goes: one that needs nothing but the
object goes in `local_problems` (it then runs for every kind, always, even when the patch check
is skipped); one that needs the hub goes in the webhook's ``_problems`` beside the others.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from federation.api import (
    ClusterOverridePolicy,
    ClusterPropagationPolicy,
    LabelSelector,
    MemberCluster,
    OverridePolicy,
    OverridePolicyLike,
    OverrideRule,
    PolicyLike,
    PropagationPolicy,
    ResourceSelector,
    SelectorOperator,
    TopLevelObject,
    parse_object,
)
from federation.errors import CheckTooLargeError, InvalidObjectError
from federation.validation.identity import identity_problems
from federation.validation.meter import Meter
from federation.validation.patchcheck import failing_patches, patch_check_cost

PATCH_CHECK_MAX_WORK = 300_000
"""Work units (`federation.validation.patchcheck.patch_check_cost`: one JSON patch operation applied
or forgotten on one distinct representative template) a review's patch check may cost.

Measured on the reference machine (2 shared cores, other test sessions running): 1.7–3.6 µs
of CPU per unit, so a check at the cap costs 0.5–1.1 s. Two such checks share the GIL in the
webhook's two worker threads and still end well inside the 4 s budget (the apiserver gives up
at 5 s). Real policies cost hundreds of units (10 selectors × 20 rules × 20 operations is
8,000); the 8 selectors × 100 rules × 256 operations review of issue 10 costs 409,600 (1.5 s
of CPU now, 36 s before the check was linear), so it is admitted with a warning instead."""


@dataclass
class Findings:
    """What the checks of one object found: problems refuse it, warnings go back to the user."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- every object: the API models --------------------------------------------------------------


def parse(obj: Mapping[str, Any], *, meter: Meter | None = None) -> tuple[TopLevelObject | None, list[str]]:
    """The typed object, or the model's own message (it names the object and the field).

    An override policy's rules are validated one by one before the whole object: the worker
    thread this runs in then holds the GIL for one rule at a time rather than for the whole
    1.5 MiB (a pydantic validation is one call the event loop cannot interleave with), and
    ``meter`` sees the deadline between rules. A rule that fails on its own is left for the
    whole object's validation, so messages name the same field as `parse_object`'s.
    """
    try:
        return parse_object(_rules_validated(obj, meter or Meter())), []
    except InvalidObjectError as exc:
        return None, [str(exc)]


def _rules_validated(obj: Mapping[str, Any], meter: Meter) -> Mapping[str, Any]:
    spec = obj.get("spec")
    if obj.get("kind") not in ("OverridePolicy", "ClusterOverridePolicy") or not isinstance(spec, Mapping):
        return obj
    rules = spec.get("rules")
    if not isinstance(rules, list) or len(rules) < 2:
        return obj
    validated: list[Any] = []
    for rule in rules:
        meter.check()
        try:
            validated.append(OverrideRule.model_validate(rule))
        except ValidationError:
            validated.append(rule)
    return {**obj, "spec": {**spec, "rules": validated}}


def local_problems(obj: TopLevelObject) -> list[str]:
    """What refuses ``obj`` on its own, beyond its model: checks that read nothing but the
    object and cost time linear in its size. They run for every object of ours, always, even
    when the patch check is skipped: an override that would change what a copy is (its
    identity, hub-owned metadata, the ownership stamp, a namespaced policy's RBAC grant), in the
    translator's words (`federation.validation.identity_problems`)."""
    if isinstance(obj, OverridePolicy | ClusterOverridePolicy):
        return identity_problems(obj)
    return []


# -- override policies: JSON patches that cannot apply -------------------------------------------


def override_findings(
    policy: OverridePolicyLike,
    *,
    others: Sequence[OverridePolicyLike] = (),
    max_work: int = PATCH_CHECK_MAX_WORK,
    meter: Meter | None = None,
) -> Findings:
    """`override_problems` within the cap: a policy whose patch check would cost more than
    ``max_work`` units is not judged (a warning says so; the controller reports a failing
    override per template and cluster). ``meter`` also stops it at twice the cap (copies and
    trial saves are counted only as they happen) and at its deadline (`CheckTimedOutError`
    propagates: the caller admits the object as it does when its budget runs out)."""
    cost = patch_check_cost(policy, others=others)
    skipped = Findings(
        warnings=[
            f"federation webhook: {policy.ref}: the JSON patches were not checked: checking them costs "
            f"{cost} work units, more than the {max_work} a review may; the controller still reports "
            f"an override that fails, per template and cluster"
        ]
    )
    if cost > max_work:
        return skipped
    meter = meter or Meter()
    limit = meter.spent + 2 * max_work
    meter.limit = limit if meter.limit is None else min(meter.limit, limit)
    try:
        return Findings(problems=override_problems(policy, others=others, meter=meter))
    except CheckTooLargeError:
        return skipped


def override_problems(
    policy: OverridePolicyLike, *, others: Sequence[OverridePolicyLike] = (), meter: Meter | None = None
) -> list[str]:
    """Each rule's JSON patch operation that fails on every template of a selected kind.

    The operation's own form (a pointer, ``value`` for add/replace/test, ``from`` for move/copy)
    is the model's to check (`parse`); this finds what only the patch's effect can show: a
    ``move`` into its own child, a path the representative template of the kind cannot have, an
    op on what an earlier op removed, a ``test`` that cannot pass. See
    `federation.validation.patchcheck` for what is and is not decided.
    """
    out = []
    for failure in failing_patches(policy, others=others, meter=meter):
        op = policy.spec.rules[failure.rule].overriders.json_patch[failure.operation]  # type: ignore[index]
        selector = policy.spec.resource_selectors[failure.selector]
        out.append(
            f"{policy.ref}: spec.rules[{failure.rule}].overriders.jsonPatch[{failure.operation}] "
            f"({op.op.value} {op.path}): fails on every {selector.api_version} {selector.kind} that "
            f"spec.resourceSelectors[{failure.selector}] selects: {failure.reason}"
        )
    return out


# -- propagation policies: equal priorities on the same resources ------------------------------


@dataclass
class _KeyConstraint:
    exists: bool = False
    absent: bool = False
    allowed: frozenset[str] | None = None  # None: any value
    excluded: frozenset[str] = frozenset()

    def satisfiable(self) -> bool:
        if self.exists and self.absent:
            return False
        if self.allowed is not None:
            return not self.absent and bool(self.allowed - self.excluded)
        return True


def _constrain(constraints: dict[str, _KeyConstraint], selector: LabelSelector | None) -> None:
    if selector is None:
        return
    requirements: list[tuple[str, SelectorOperator, tuple[str, ...]]] = [
        (k, SelectorOperator.IN, (v,)) for k, v in selector.match_labels.items()
    ]
    requirements += [(r.key, r.operator, r.values) for r in selector.match_expressions]
    for key, operator, values in requirements:
        c = constraints.setdefault(key, _KeyConstraint())
        if operator is SelectorOperator.IN:
            c.exists = True
            c.allowed = frozenset(values) if c.allowed is None else c.allowed & frozenset(values)
        elif operator is SelectorOperator.NOT_IN:
            c.excluded |= frozenset(values)
        elif operator is SelectorOperator.EXISTS:
            c.exists = True
        else:
            c.absent = True


def labels_can_match_both(a: LabelSelector | None, b: LabelSelector | None) -> bool:
    """Whether some set of labels satisfies both selectors (decided exactly, per key)."""
    constraints: dict[str, _KeyConstraint] = {}
    _constrain(constraints, a)
    _constrain(constraints, b)
    return all(c.satisfiable() for c in constraints.values())


def selectors_overlap(a: ResourceSelector, b: ResourceSelector) -> bool:
    """Whether one resource can be selected by both (same apiVersion and kind, no namespace,
    name or label requirement that sets them apart)."""
    return (
        a.api_version == b.api_version
        and a.kind == b.kind
        and (a.namespace is None or b.namespace is None or a.namespace == b.namespace)
        and (a.name is None or b.name is None or a.name == b.name)
        and labels_can_match_both(a.label_selector, b.label_selector)
    )


def describe_selector(selector: ResourceSelector) -> str:
    parts = [selector.api_version, selector.kind]
    if selector.namespace is not None:
        parts.append(f"namespace={selector.namespace}")
    if selector.name is not None:
        parts.append(f"name={selector.name}")
    if selector.label_selector is not None:
        parts.append(f"labels {selector.label_selector.describe()}")
    return " ".join(parts)


def _competes(policy: PolicyLike, other: PolicyLike) -> bool:
    """Whether rule 4 ranks the two against each other: both cluster-scoped, or both of one
    namespace (a namespace's own policies are its users'; a fleet admin's are a separate tier)."""
    if isinstance(policy, ClusterPropagationPolicy):
        return isinstance(other, ClusterPropagationPolicy)
    return isinstance(other, PropagationPolicy) and other.metadata.namespace == policy.metadata.namespace


def _deleting(policy: TopLevelObject) -> bool:
    return bool((policy.metadata.model_extra or {}).get("deletionTimestamp"))


def priority_conflicts(policy: PolicyLike, *, others: Sequence[PolicyLike]) -> list[str]:
    """Other policies of the same tier with the same priority that can select a resource this
    one selects: rule 4 would break the tie by age, silently; refuse the ambiguity instead."""
    out = []
    for other in others:
        same = other.kind == policy.kind and other.metadata.name == policy.metadata.name
        if same or _deleting(other) or not _competes(policy, other):
            continue
        if other.spec.priority != policy.spec.priority:
            continue
        for i, mine in enumerate(policy.spec.resource_selectors):
            theirs = next(
                (j for j, s in enumerate(other.spec.resource_selectors) if selectors_overlap(mine, s)), None
            )
            if theirs is None:
                continue
            out.append(
                f"{policy.ref}: spec.priority: {policy.spec.priority} is also the priority of {other.ref}, "
                f"and spec.resourceSelectors[{i}] ({describe_selector(mine)}) can select the same resources "
                f"as its spec.resourceSelectors[{theirs}] "
                f"({describe_selector(other.spec.resource_selectors[theirs])}): which one governs them "
                f"would be decided by age; give one of the two another priority"
            )
            break
    return out


# -- member clusters: the kubeconfig Secret ------------------------------------------------------


def credentials_namespace_problems(cluster: MemberCluster, *, credentials: Collection[str]) -> list[str]:
    """A MemberCluster whose Secret is outside the controller's credentials namespaces: refused
    before anything is read, so no answer says whether a Secret elsewhere exists, or what it
    holds (the controller would never read it anyway)."""
    ref = cluster.spec.kubeconfig_secret_ref
    if ref is None or ref.namespace in credentials:
        return []
    allowed = ", ".join(sorted(credentials)) or "none configured"
    return [
        f"{cluster.ref}: spec.kubeconfigSecretRef.namespace: {ref.namespace} is not a credentials namespace "
        f"of this controller ({allowed}); put the kubeconfig Secret in one of them, or start the controller "
        f"with --credentials-namespace {ref.namespace}"
    ]


def secret_problems(cluster: MemberCluster, secret: Mapping[str, Any] | None) -> list[str]:
    """Whether ``spec.kubeconfigSecretRef`` names a Secret holding a usable kubeconfig.

    Only the kubeconfig's structure is read (clusters, contexts, the context to use): loading it
    could run an exec plugin, which an admission check must never do.
    """
    ref = cluster.spec.kubeconfig_secret_ref
    if ref is None:
        return []
    where = f"Secret {ref.namespace}/{ref.name}"
    if secret is None:
        return [f"{cluster.ref}: spec.kubeconfigSecretRef: {where} does not exist"]
    data = secret.get("data") or {}
    if ref.key not in data:
        has = "it has: " + ", ".join(sorted(map(str, data))) if data else "it has no keys"
        return [f"{cluster.ref}: spec.kubeconfigSecretRef.key: {where} has no key {ref.key!r} ({has})"]
    try:
        config = yaml.safe_load(base64.b64decode(str(data[ref.key]), validate=True))
    except (binascii.Error, ValueError, yaml.YAMLError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [
            f"{cluster.ref}: spec.kubeconfigSecretRef.key: {where} key {ref.key!r} "
            f"is not a kubeconfig: {problem}"
        ]
    if not isinstance(config, Mapping) or not config.get("clusters"):
        return [
            f"{cluster.ref}: spec.kubeconfigSecretRef.key: {where} key {ref.key!r} is not a kubeconfig "
            f"(no clusters in it)"
        ]
    contexts = [
        str(c.get("name"))
        for c in config.get("contexts") or []
        if isinstance(c, Mapping) and c.get("name") is not None
    ]
    wanted = cluster.spec.context
    if wanted is not None and wanted not in contexts:
        has = ", ".join(contexts) or "none"
        return [f"{cluster.ref}: spec.context: {where} has no context {wanted!r} (it has: {has})"]
    current = config.get("current-context")
    if wanted is None and (not current or current not in contexts):
        return [
            f"{cluster.ref}: spec.context: not set, and the kubeconfig in {where} has no usable "
            f"current-context ({current!r}); name one of: {', '.join(contexts) or 'none'}"
        ]
    return []
