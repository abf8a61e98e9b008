"""``translate``: the manifest a member cluster should hold for one hub template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.api.refs import ref_of
from federation.errors import InvalidObjectError
from federation.placement import ClusterSnapshot
from federation.translate.identity import identity_violation
from federation.translate.overrides import ResolvedOverride, apply_override
from federation.translate.ownership import OWNERSHIP, Ownership, content_hash, format_source
from federation.translate.prune import prune_template, strip_fields
from federation.translate.sensitive import DEFAULT_FIELDS, Secrecy

_RETAIN_HINT = "retain fields of the spec or the data, never apiVersion, kind or metadata.name/namespace"


@dataclass(frozen=True)
class Translated:
    """The desired member manifest (the caller owns the dict) and its content hash."""

    manifest: dict[str, Any]
    hash: str


def _string_map(meta: Mapping[str, Any], field: str, template: Mapping[str, Any]) -> dict[str, Any]:
    value = meta.get(field) or {}
    if not isinstance(value, Mapping):
        raise InvalidObjectError(
            f"{ref_of(template)}: metadata.{field}: expected an object after overrides, "
            f"got {type(value).__name__}"
        )
    return dict(value)


def _stamp(manifest: dict[str, Any], template: Mapping[str, Any], ownership: Ownership) -> None:
    meta = manifest.setdefault("metadata", {})
    tmeta = template.get("metadata") or {}
    labels = _string_map(meta, "labels", template)
    labels[OWNERSHIP.hub_label] = ownership.hub
    labels[OWNERSHIP.managed_by_label] = OWNERSHIP.managed_by_value
    meta["labels"] = labels
    annotations = _string_map(meta, "annotations", template)
    annotations[OWNERSHIP.source_annotation] = format_source(
        api_version=str(template.get("apiVersion", "")),
        kind=str(template.get("kind", "")),
        namespace=tmeta.get("namespace"),
        name=str(tmeta.get("name", "")),
    )
    uid = tmeta.get("uid")
    if uid:
        annotations[OWNERSHIP.source_uid_annotation] = str(uid)
    else:
        annotations.pop(OWNERSHIP.source_uid_annotation, None)
    annotations[OWNERSHIP.policy_annotation] = ownership.policy
    annotations.pop(OWNERSHIP.hash_annotation, None)
    meta["annotations"] = annotations


def translate(
    template: Mapping[str, Any],
    *,
    cluster: ClusterSnapshot,
    replicas: int | None,
    overrides: Sequence[ResolvedOverride],
    ownership: Ownership,
    retain_fields: Sequence[str] = (),
    secrecy: Secrecy | None = None,
) -> Translated:
    """The manifest for ``cluster``: hub-only metadata dropped, ``spec.replicas`` set from the
    decision (when not None), override rules applied in order, member-owned ``retain_fields``
    left out, ownership stamped, and the content hash computed last and stamped too.

    With ``secrecy``, a manifest that holds a sensitive value gets a keyed content hash (see
    `federation.translate.ownership`), and failing overrides never quote a sensitive value."""
    meta = template.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name") or not template.get("kind"):
        raise InvalidObjectError(f"{ref_of(template)}: a template needs kind and metadata.name")
    manifest = prune_template(template)
    if replicas is not None:
        spec = manifest.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise InvalidObjectError(f"{ref_of(template)}: spec: expected an object to set replicas in")
        spec["replicas"] = replicas
    for override in overrides:
        manifest = apply_override(
            manifest,
            override,
            cluster=cluster.name,
            sensitive=secrecy.fields if secrecy is not None else DEFAULT_FIELDS,
        )
    if retain_fields:
        kept = manifest
        manifest = strip_fields(manifest, retain_fields)
        violation = identity_violation(kept, manifest)
        if violation is not None:
            raise InvalidObjectError(
                f"{ref_of(template)}: spec.retainFields {violation.describe()}", hint=_RETAIN_HINT
            )
    violation = identity_violation(template, manifest)
    if violation is not None:  # every step above is checked; this is the last line of defence
        raise InvalidObjectError(f"{ref_of(template)}: the copy {violation.describe()}")
    _stamp(manifest, template, ownership)
    try:
        digest = content_hash(manifest, key=secrecy.key_for(manifest) if secrecy is not None else None)
    except TypeError as exc:
        raise InvalidObjectError(f"{ref_of(template)}: not representable as JSON: {exc}") from None
    manifest["metadata"]["annotations"][OWNERSHIP.hash_annotation] = digest
    return Translated(manifest=manifest, hash=digest)
