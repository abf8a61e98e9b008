"""Override rules that would change what a copy is, found before any template is translated.

The translator refuses such an override where the copy is made (`federation.translate.identity`:
that is the defence, and it holds whatever gets past this module). This module is the same rule
seen from the policy alone, so that the admission webhook and ``federation plan`` can refuse the
policy up front, where its author is, in the same words (`Violation.describe`).

Up front the rule is a little stricter than the translator's: an override may not *write* the
guarded fields (a JSON patch op on ``/kind`` or under ``/metadata/ownerReferences``, a merge patch
setting ``metadata.namespace``, a label overrider setting a ``federation.io/`` key), where the
translator refuses what *changes* them; the difference is only writes of the value already
there, which no policy needs. ``test`` ops read, so they pass, as does a new version of the same
API group. An op whose target depends on the cluster (a path holding ``${CLUSTER_NAME}``) is left
to the translator, which judges the concrete copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.api import OverridePolicy, OverridePolicyLike, Overriders
from federation.translate import CLUSTER_NAME_VARIABLE, OWNERSHIP
from federation.translate.identity import (
    HUB_OWNED_METADATA,
    RBAC_GRANT_FIELDS,
    RBAC_GROUP,
    Guard,
    Violation,
    valid_api_version,
)
from federation.translate.pointer import PointerError, parse_pointer

_WRITES = ("add", "replace", "remove")
_UNKNOWN = object()
"""The value a ``move`` or ``copy`` writes: whatever the template holds at ``from``."""
_IDENTITY = {"apiVersion": "apiVersion", "kind": "kind"}
_IDENTITY_META = ("name", "namespace")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _stamp_key(key: str) -> bool:
    return key.startswith(OWNERSHIP.prefix)


@dataclass(frozen=True)
class _Scope:
    """What of a policy's selectors the rule depends on: their API groups, and whether the
    policy is namespaced (a tenant's). Judging each op once against it, rather than once per
    selector, keeps the check linear in the policy's size (the webhook's bound)."""

    groups: frozenset[str]
    namespaced: bool

    @classmethod
    def of(cls, policy: OverridePolicyLike) -> _Scope:
        groups = frozenset(_group(s.api_version) for s in policy.spec.resource_selectors)
        return cls(groups=groups, namespaced=isinstance(policy, OverridePolicy))

    @property
    def rbac(self) -> bool:
        return self.namespaced and RBAC_GROUP in self.groups


def _pointer_violation(tokens: Sequence[str], *, op: str, value: Any, scope: _Scope) -> Violation | None:
    """What writing (``op``) at ``tokens`` breaks on every template of some selector."""
    if not tokens:
        return Violation(Guard.IDENTITY, "the whole object")
    head = tokens[0]
    if head in _IDENTITY and len(tokens) == 1:
        same_group = value is _UNKNOWN or (
            isinstance(value, str)
            and (
                CLUSTER_NAME_VARIABLE in value
                or (valid_api_version(value) and scope.groups <= {_group(value)})
            )
        )
        if head == "apiVersion" and op in ("add", "replace") and same_group:
            # Another version of the same group names the same object; a value copied from
            # elsewhere in the template is the translator's to judge.
            return None
        return Violation(Guard.IDENTITY, _IDENTITY[head])
    if head == "metadata":
        if len(tokens) == 1:
            return Violation(Guard.IDENTITY, "metadata", "the whole metadata, with name and namespace")
        field = tokens[1]
        if field in _IDENTITY_META:
            return Violation(Guard.IDENTITY, f"metadata.{field}")
        if field in HUB_OWNED_METADATA:
            return Violation(Guard.HUB_METADATA, f"metadata.{field}")
        if field in ("labels", "annotations"):
            if len(tokens) >= 3 and _stamp_key(tokens[2]):
                return Violation(Guard.OWNERSHIP, f"metadata.{field}[{tokens[2]}]")
            if len(tokens) == 2 and op in ("add", "replace") and isinstance(value, Mapping):
                stamped = sorted(str(k) for k in value if _stamp_key(str(k)))
                if stamped:
                    return Violation(Guard.OWNERSHIP, f"metadata.{field}[{stamped[0]}]")
        return None
    if scope.rbac and head in RBAC_GRANT_FIELDS:
        return Violation(Guard.RBAC, head)
    return None


def _json_patch(ops: Sequence[Mapping[str, Any]], *, scope: _Scope) -> list[tuple[int, Violation]]:
    found = []
    for j, op in enumerate(ops):
        name = str(op.get("op"))
        targets: list[tuple[str, str]] = []  # (pointer, how it is touched)
        if name in _WRITES:
            targets.append((str(op.get("path")), name))
        elif name in ("move", "copy") and op.get("from") != op.get("path"):  # onto itself: a no-op
            targets.append((str(op.get("path")), "add"))
            if name == "move":
                targets.append((str(op.get("from")), "remove"))
        for pointer, how in targets:
            if CLUSTER_NAME_VARIABLE in pointer:
                continue  # depends on the cluster: the translator judges it
            try:
                tokens = parse_pointer(pointer)
            except PointerError:
                continue  # the model refuses it already
            value = op.get("value") if name in ("add", "replace") else _UNKNOWN
            violation = _pointer_violation(tokens, op=how, value=value, scope=scope)
            if violation is not None:
                found.append((j, violation))
                break
    return found


def _merge_patch(patch: Mapping[str, Any], *, scope: _Scope) -> Violation | None:
    for key, value in patch.items():
        if key == "metadata" and isinstance(value, Mapping):
            for field, inner in value.items():
                if field in ("labels", "annotations"):
                    # null (or a null key) only removes what the template had: the stamp is
                    # added after every override, so only setting a federation.io/ key breaks it
                    stamped = (
                        sorted(str(k) for k, v in inner.items() if _stamp_key(str(k)) and v is not None)
                        if isinstance(inner, Mapping)
                        else []
                    )
                    if stamped:
                        return Violation(Guard.OWNERSHIP, f"metadata.{field}[{stamped[0]}]")
                    continue
                how = "remove" if inner is None else "replace"
                violation = _pointer_violation(["metadata", str(field)], op=how, value=inner, scope=scope)
                if violation is not None:
                    return violation
            continue
        how = "remove" if value is None else "replace"
        violation = _pointer_violation([str(key)], op=how, value=value, scope=scope)
        if violation is not None:
            return violation
    return None


def _metadata_overriders(o: Overriders, where: str) -> list[str]:
    lines = []
    for field, change in (("labels", o.labels), ("annotations", o.annotations)):
        stamped = sorted(k for k in change.set if _stamp_key(k)) if change is not None else []
        if stamped:
            stamp = Violation(Guard.OWNERSHIP, f"metadata.{field}[{stamped[0]}]")
            lines.append(f"{where}.{field} {stamp.describe()}")
    return lines


def identity_problems(policy: OverridePolicyLike) -> list[str]:
    """One line per overrider that would change what a copy is, naming the rule and the field.

    Linear in the policy's size: each op is judged once, against what all its selectors share
    (`_Scope`), so the admission webhook can run it on every review whatever its size."""
    scope = _Scope.of(policy)
    out: list[str] = []
    for i, rule in enumerate(policy.spec.rules):
        o = rule.overriders
        where = f"{policy.ref}: spec.rules[{i}].overriders"
        if o.json_patch:
            ops = [op.to_rfc6902() for op in o.json_patch]
            for j, broken in _json_patch(ops, scope=scope):
                out.append(f"{where}.jsonPatch[{j}] ({ops[j]['op']} {ops[j]['path']}) {broken.describe()}")
        if o.merge_patch is not None:
            merged = _merge_patch(o.merge_patch, scope=scope)
            if merged is not None:
                out.append(f"{where}.mergePatch {merged.describe()}")
        for k, image in enumerate(o.image or ()):
            if image.path is None or CLUSTER_NAME_VARIABLE in image.path:
                continue
            try:
                tokens = parse_pointer(image.path)
            except PointerError:
                continue
            violation = _pointer_violation(tokens, op="replace", value=None, scope=scope)
            if violation is not None:
                out.append(f"{where}.image[{k}] (path {image.path}) {violation.describe()}")
        out += _metadata_overriders(o, where)
    return out
