"""Resolving which override rules apply to a resource on a cluster, and applying them.

Order (documented in federation.api.overrides): ClusterOverridePolicies first, then
OverridePolicies, each kind by name, rules in their listed order, and within a rule the
overriders in field order: jsonPatch, mergePatch, image, labels, annotations, replicas.
Every failure becomes an ``OverrideError`` naming the policy, the rule, the operation, the
resource and the cluster — never an exception from deep inside a patch library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.api import (
    ClusterOverridePolicy,
    ImageOverrider,
    MetadataOverrider,
    OverridePolicy,
    OverridePolicyLike,
    Overriders,
)
from federation.api.refs import ref_of
from federation.errors import IdentityError, OverrideError
from federation.placement import ClusterSnapshot
from federation.translate.identity import check_override, guarded_fields
from federation.translate.images import ImageRefError, override_image
from federation.translate.jsonpatch import PatchError, apply_patch
from federation.translate.mergepatch import apply_merge_patch
from federation.translate.podspec import pod_spec
from federation.translate.pointer import PointerError, json_copy, parse_pointer, resolve
from federation.translate.sensitive import DEFAULT_FIELDS, SensitiveFields, group_kind

CLUSTER_NAME_VARIABLE = "${CLUSTER_NAME}"


@dataclass(frozen=True)
class ResolvedOverride:
    """One rule of one override policy that applies to a resource on a cluster."""

    policy: str
    """The policy as messages name it, e.g. ``OverridePolicy shop/images``."""
    rule_index: int
    overriders: Overriders
    namespaced: bool = False
    """From an OverridePolicy (a namespace's own), not a ClusterOverridePolicy (the fleet
    admin's): some changes only the fleet admin may make (`federation.translate.identity`)."""


def _selects(policy: OverridePolicyLike, resource: Mapping[str, Any]) -> bool:
    namespace = (resource.get("metadata") or {}).get("namespace") or None
    if isinstance(policy, OverridePolicy) and (namespace is None or namespace != policy.metadata.namespace):
        return False
    return any(sel.matches(resource) for sel in policy.spec.resource_selectors)


def resolve_overrides(
    resource: Mapping[str, Any], *, cluster: ClusterSnapshot, policies: Sequence[OverridePolicyLike]
) -> tuple[ResolvedOverride, ...]:
    """The rules that apply to ``resource`` on ``cluster``, in application order."""
    ordered = sorted(
        (p for p in policies if _selects(p, resource)),
        key=lambda p: (
            0 if isinstance(p, ClusterOverridePolicy) else 1,
            p.metadata.name,
            p.metadata.namespace or "",
        ),
    )
    out: list[ResolvedOverride] = []
    for policy in ordered:
        for i, rule in enumerate(policy.spec.rules):
            if rule.applies_to(cluster.name, cluster.labels):
                out.append(
                    ResolvedOverride(
                        policy=policy.ref,
                        rule_index=i,
                        overriders=rule.overriders,
                        namespaced=isinstance(policy, OverridePolicy),
                    )
                )
    return (out and tuple(out)) or ()


def substitute(value: Any, cluster: str) -> Any:
    """``value`` with ``${CLUSTER_NAME}`` replaced in every string (keys are left alone)."""
    if isinstance(value, str):
        return value.replace(CLUSTER_NAME_VARIABLE, cluster)
    if isinstance(value, dict):
        return {k: substitute(v, cluster) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, cluster) for v in value]
    return value


class _OverriderFailedError(Exception):
    """An overrider failed; ``where`` is its field path inside the rule (for the message)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def _apply_image(manifest: dict[str, Any], *, index: int, image: ImageOverrider, cluster: str) -> None:
    where = f"image[{index}] ({image.component.value} {image.operator.value})"
    value = substitute(image.value, cluster)

    def change(current: Any, location: str) -> str:
        if not isinstance(current, str):
            raise _OverriderFailedError(where, f"{location} is not an image string")
        try:
            return override_image(current, component=image.component, operator=image.operator, value=value)
        except ImageRefError as exc:
            raise _OverriderFailedError(where, f"{location}: {exc}") from None

    if image.path is not None:
        path = substitute(image.path, cluster)
        try:
            tokens = parse_pointer(path)
            parent = resolve(manifest, tokens[:-1])
            current = resolve(manifest, tokens)
        except PointerError as exc:
            raise _OverriderFailedError(where, str(exc)) from None
        last = tokens[-1]
        if isinstance(parent, list):
            parent[int(last)] = change(current, path)
        else:
            parent[last] = change(current, path)
        return
    pod = pod_spec(manifest, any_kind=True)
    if pod is None:
        raise _OverriderFailedError(
            where, f"a {manifest.get('kind')} has no pod template; give `path` to the image field"
        )
    for group in ("initContainers", "containers"):
        for n, container in enumerate(pod.get(group) or []):
            if isinstance(container, dict) and "image" in container:
                container["image"] = change(container["image"], f"{group}[{n}].image")


def _apply_metadata(manifest: dict[str, Any], *, field: str, change: MetadataOverrider, cluster: str) -> None:
    meta = manifest.setdefault("metadata", {})
    current = dict(meta.get(field) or {})
    for key, value in change.set.items():
        current[key] = substitute(value, cluster)
    for key in change.remove:
        current.pop(substitute(key, cluster), None)
    if current:
        meta[field] = current
    else:
        meta.pop(field, None)


def _metadata_step(
    *, field: str, change: MetadataOverrider, cluster: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def step(m: dict[str, Any]) -> dict[str, Any]:
        _apply_metadata(m, field=field, change=change, cluster=cluster)
        return m

    return step


def _steps(
    overriders: Overriders, cluster: str, sensitive: SensitiveFields
) -> list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]]:
    steps: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = []
    if overriders.json_patch is not None:
        ops = [substitute(op.to_rfc6902(), cluster) for op in overriders.json_patch]

        def json_patch(m: dict[str, Any]) -> dict[str, Any]:
            try:
                result = apply_patch(m, ops)
            except PatchError as exc:
                op = ops[exc.index]
                problem = str(exc)
                if op["op"] == "test" and _sensitive_path(m, op["path"], sensitive):
                    # The failure message quotes the value found: never for a sensitive field.
                    problem = f"test failed: {op['path']} is a sensitive field and differs (not shown)"
                raise _OverriderFailedError(
                    f"jsonPatch[{exc.index}] ({op['op']} {op['path']})", problem
                ) from None
            if not isinstance(result, dict):
                raise _OverriderFailedError(
                    "jsonPatch", "the patch replaced the whole object with a non-object"
                )
            return result

        steps.append(("jsonPatch", json_patch))
    if overriders.merge_patch is not None:
        patch = substitute(overriders.merge_patch, cluster)
        steps.append(("mergePatch", lambda m: apply_merge_patch(m, patch)))
    if overriders.image is not None:
        images = overriders.image

        def image(m: dict[str, Any]) -> dict[str, Any]:
            for i, img in enumerate(images):
                _apply_image(m, index=i, image=img, cluster=cluster)
            return m

        steps.append(("image", image))
    for field, change in (("labels", overriders.labels), ("annotations", overriders.annotations)):
        if change is not None:
            steps.append((field, _metadata_step(field=field, change=change, cluster=cluster)))
    if overriders.replicas is not None:
        replicas = overriders.replicas

        def set_replicas(m: dict[str, Any]) -> dict[str, Any]:
            spec = m.setdefault("spec", {})
            if not isinstance(spec, dict):
                raise _OverriderFailedError("replicas", "spec is not an object")
            spec["replicas"] = replicas
            return m

        steps.append(("replicas", set_replicas))
    return steps


def _sensitive_path(manifest: Mapping[str, Any], pointer: str, sensitive: SensitiveFields) -> bool:
    try:
        tokens = parse_pointer(pointer)
    except PointerError:
        return False
    return sensitive.covers(*group_kind(manifest), tokens)


def apply_override(
    manifest: Mapping[str, Any],
    override: ResolvedOverride,
    *,
    cluster: str,
    sensitive: SensitiveFields = DEFAULT_FIELDS,
) -> dict[str, Any]:
    """``manifest`` after one rule's overriders (a new dict; the input is not modified).

    Each overrider's result is checked against what it was given (`check_override`): one that
    would change what the copy is raises `IdentityError` naming the overrider and the field.
    A failure names the rule and the field, and never quotes a `sensitive` value (the message
    ends up in events and the API): a ``test`` of a sensitive field says only that it differs,
    and any sensitive string a message would quote is replaced."""
    result = json_copy(dict(manifest))

    def scrub(problem: str) -> str:
        return sensitive.scrub(sensitive.scrub(problem, manifest), result)

    def failed(where: str, problem: str) -> OverrideError:
        return OverrideError(
            f"{override.policy} rule[{override.rule_index}].overriders.{where} "
            f"failed for {ref_of(manifest)} on cluster {cluster}: {scrub(problem)}",
            policy=override.policy,
            rule_index=override.rule_index,
            cluster=cluster,
        )

    for name, step in _steps(override.overriders, cluster, sensitive):
        before = guarded_fields(result)
        try:
            result = step(result)
        except _OverriderFailedError as exc:
            raise failed(exc.where, exc.problem) from None
        except (TypeError, ValueError, AttributeError) as exc:  # a template shaped unlike Kubernetes JSON
            raise failed(name, str(exc)) from None
        violation = check_override(before, result, namespaced=override.namespaced)
        if violation is not None:
            raise IdentityError(
                f"{override.policy} rule[{override.rule_index}].overriders.{name} "
                f"{violation.describe()}; refused for {ref_of(manifest)} on cluster {cluster}",
                policy=override.policy,
                rule_index=override.rule_index,
                cluster=cluster,
                field=violation.field,
                guard=violation.guard.value,
            )
    return result
