"""Does a JSON patch fail on *every* template a selector can select? Decided without a template.

An override's JSON patch is applied to each selected template (pruned of hub-only fields, see
``federation.translate.prune``) on each cluster. Whether it applies depends on the template,
which does not exist yet when the policy is admitted; but some patches fail whatever the
template is: ``remove /status/x`` (status never reaches a member), ``replace /spec/replicas`` on
a ConfigMap (a ConfigMap has no spec), ``remove /metadata/nme`` (metadata has a fixed set of
fields), a ``test`` of ``/metadata/name`` against another name than the selector's, or an op
on a path an earlier op of the same patch removed. Those are refused at admission, where the
author is; the rest is left to the controller, which reports a failing override per template
and cluster.

How: the patch runs on a *partial document*, the representative template of the selected
kind, in which every location is known present (with a known or unknown value), known absent,
or unknown. An op that fails on it is a definite failure only if it fails for every document
the partial one stands for, so each step keeps the partial document an over-approximation:

- What every template of a kind has, after the apiserver's defaulting and our pruning: the
  selector's apiVersion and kind (and name, namespace, matchLabels when it pins them); metadata
  limited to ObjectMeta's fields, minus the hub-only ones; no ``status``; and for the built-in
  kinds below, their required and defaulted fields (an integration test checks each one against
  a minimal object stored by a real apiserver). Any other kind (a CRD) is an open object.
- What may have changed it before this rule: earlier rules of the same policy, and the override
  policies ordered before it that select the same kind (the caller passes them). Every location
  those may write becomes unknown; their effects are never guessed.
- Ops are followed assuming every earlier op succeeded (if one did not, the patch failed anyway),
  so ``add /a/b`` makes ``/a/b`` known for the ops after it.
- A path or value with ``${CLUSTER_NAME}`` is unknown until a cluster is chosen: such an op is
  never judged, and what it touches becomes unknown.

What it costs: time linear in the policies' size (`patch_check_cost` counts it in work units
before anything runs). Selectors that yield the same representative template are judged once;
each distinct template is built once, what the earlier policies may write is forgotten once,
and the rules are walked in order, each judged in a trial that is undone afterwards (an undo
log, not a copy) before its own effects are forgotten: no rule's effects are applied twice. A
`Meter` counts the work as it goes and stops it at a limit or a deadline, since the check runs
in a worker thread that nothing else can interrupt.

What is not decided: anything that depends on a template's content beyond the fields above
(``replace /spec/template/spec/containers/1/image`` works for templates with two containers),
on which clusters a rule targets, or on override policies created after this one. A property
test (tests/unit/test_webhook.py) holds every refusal against the real `apply_patch` on concrete
templates the representative stands for, with and without an earlier rule applied.

Where the pieces are, one job each: the partial document and reading a location
(`federation.validation.partial`), the ops on it with undoable trials (`.document`), the
representative template of a kind (`.shapes`), the work meter (`.meter`); this module walks a
policy's rules over them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.api import (
    ClusterOverridePolicy,
    OverridePolicy,
    OverridePolicyLike,
    Overriders,
    ResourceSelector,
)
from federation.translate import CLUSTER_NAME_VARIABLE
from federation.translate.pointer import PointerError, parse_pointer
from federation.validation.document import Document, PreparedOp
from federation.validation.meter import Meter
from federation.validation.shapes import representative, representative_key


def _effect_pointers(overriders: Overriders) -> list[str]:
    """The pointers ``overriders`` may write at (besides a merge patch's keys)."""
    pointers: list[str] = []
    for op in overriders.json_patch or ():
        pointers.append(op.path)
        if op.from_ is not None:
            pointers.append(op.from_)
    # An image overrider without a path changes only container image strings: never known in a
    # representative template, so nothing to forget.
    pointers += [image.path for image in overriders.image or () if image.path is not None]
    if overriders.labels is not None:
        pointers.append("/metadata/labels")
    if overriders.annotations is not None:
        pointers.append("/metadata/annotations")
    if overriders.replicas is not None:
        pointers.append("/spec/replicas")
    return pointers


class Effects:
    """What one rule's overriders may write, parsed once for every representative template."""

    __slots__ = ("merge_patch", "pointers")

    def __init__(self, overriders: Overriders) -> None:
        self.pointers: list[tuple[str, list[str] | None]] = []
        for pointer in _effect_pointers(overriders):
            tokens: list[str] | None = None
            if CLUSTER_NAME_VARIABLE not in pointer:
                try:
                    tokens = parse_pointer(pointer)
                except PointerError:
                    continue  # the models admit only valid pointers
            self.pointers.append((pointer, tokens))
        self.merge_patch = overriders.merge_patch


def forget_effects(doc: Document, overriders: Overriders | Effects) -> None:
    """Make unknown whatever ``overriders`` (of an earlier rule or policy) may have written."""
    effects = overriders if isinstance(overriders, Effects) else Effects(overriders)
    for pointer, tokens in effects.pointers:
        doc.meter.spend()
        if tokens is None:
            doc.forget_variable(pointer)
        else:
            doc.forget_tokens(tokens)
    if effects.merge_patch is not None:
        doc.forget_merge(effects.merge_patch)


def _merge_keys(patch: Mapping[str, Any]) -> int:
    """Keys of a merge patch at every depth (what `Document.forget_merge` may visit)."""
    total, pending = 0, [patch]
    while pending:
        current = pending.pop()
        total += len(current)
        pending.extend(v for v in current.values() if isinstance(v, Mapping))
    return total


def _forget_cost(overriders: Overriders) -> int:
    """Work units of `forget_effects` for these overriders (an upper bound)."""
    merge = _merge_keys(overriders.merge_patch) if overriders.merge_patch is not None else 0
    return len(_effect_pointers(overriders)) + merge


@dataclass(frozen=True)
class PatchFailure:
    """A JSON patch operation that fails on every template one selector can select."""

    rule: int
    operation: int
    selector: int
    reason: str


def _selects_kind(policy: OverridePolicyLike, selector: ResourceSelector) -> bool:
    return any(
        s.api_version == selector.api_version and s.kind == selector.kind
        for s in policy.spec.resource_selectors
    )


def _precedes(other: OverridePolicyLike, policy: OverridePolicyLike) -> bool:
    """Whether ``other`` applies before ``policy`` on a template both select (the order of
    ``federation.translate.resolve_overrides``: cluster-scoped first, then by name)."""
    if other.kind == policy.kind and other.metadata.name == policy.metadata.name:
        return False
    if isinstance(other, ClusterOverridePolicy):
        return isinstance(policy, OverridePolicy) or other.metadata.name < policy.metadata.name
    return (
        isinstance(policy, OverridePolicy)
        and other.metadata.namespace == policy.metadata.namespace
        and other.metadata.name < policy.metadata.name
    )


def _template_namespace(policy: OverridePolicyLike, selector: ResourceSelector) -> str | None:
    own = policy.metadata.namespace if isinstance(policy, OverridePolicy) else None
    return own or selector.namespace


def _groups(policy: OverridePolicyLike) -> list[list[int]]:
    """The policy's selector indexes grouped by the representative template they yield, in the
    order of each group's first selector: selectors of one group get the same verdicts."""
    groups: dict[Hashable, list[int]] = {}
    for index, selector in enumerate(policy.spec.resource_selectors):
        key = representative_key(selector, namespace=_template_namespace(policy, selector))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def patch_check_cost(policy: OverridePolicyLike, *, others: Sequence[OverridePolicyLike] = ()) -> int:
    """Work units `failing_patches` spends at most on this policy, bar copies and trial saves
    (which its `Meter` counts as they happen): per distinct representative template, every
    operation of every rule applied once and forgotten once, and what the policies ordered
    before it may write forgotten once. Linear in the size of the policies."""
    own = sum(
        len(rule.overriders.json_patch or ()) + _forget_cost(rule.overriders) for rule in policy.spec.rules
    )
    before = [other for other in others if _precedes(other, policy)]
    total = 0
    for group in _groups(policy):
        selector = policy.spec.resource_selectors[group[0]]
        total += own + sum(
            _forget_cost(rule.overriders)
            for other in before
            if _selects_kind(other, selector)
            for rule in other.spec.rules
        )
    return total


def failing_patches(
    policy: OverridePolicyLike,
    *,
    others: Sequence[OverridePolicyLike] = (),
    meter: Meter | None = None,
) -> list[PatchFailure]:
    """Every rule's first JSON patch operation that fails on all templates of a selector (the
    first such selector).

    ``others`` are the hub's other override policies: those applied before ``policy`` on the
    same kind are taken into account (whatever they may write is unknown).

    Linear in the policies' size (`patch_check_cost`): per distinct representative template,
    the document is built once and what the earlier policies may write is forgotten once; then
    the rules are walked in order, each judged in a `Document.trial` of the document as the
    rules before it leave it, and then its own effects forgotten, so no rule's effects are ever
    forgotten twice. ``meter`` stops the walk at its limit or deadline (raising).
    """
    meter = meter or Meter()
    rules = policy.spec.rules
    prepared = [[PreparedOp(op.to_rfc6902()) for op in rule.overriders.json_patch or ()] for rule in rules]
    effects = [Effects(rule.overriders) for rule in rules]
    before = [other for other in others if _precedes(other, policy)]
    before_effects = {id(other): [Effects(rule.overriders) for rule in other.spec.rules] for other in before}
    found: dict[int, tuple[int, int, str]] = {}  # rule -> (selector, operation, reason)
    for group in _groups(policy):
        first = group[0]
        selector = policy.spec.resource_selectors[first]
        doc = Document(representative(selector, namespace=_template_namespace(policy, selector)), meter=meter)
        for other in before:
            if _selects_kind(other, selector):
                for other_effects in before_effects[id(other)]:
                    forget_effects(doc, other_effects)
        for rule_index, (ops, rule_effects) in enumerate(zip(prepared, effects, strict=True)):
            # Groups come in the order of their first selector: a rule that failed on an
            # earlier one is reported for that one, and needs no trial here.
            if ops and rule_index not in found:
                with doc.trial():
                    failure = next(
                        ((i, reason) for i, op in enumerate(ops) if (reason := doc.apply(op)) is not None),
                        None,
                    )
                if failure is not None:
                    found[rule_index] = (first, *failure)
            forget_effects(doc, rule_effects)
    return [
        PatchFailure(rule, op, selector, reason) for rule, (selector, op, reason) in sorted(found.items())
    ]
