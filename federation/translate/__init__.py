"""Translation: the manifest each member cluster should hold for a hub template.

Pure functions (no I/O): drop hub-only metadata, set the decided replicas, apply override
rules, leave out member-owned fields, stamp ownership and the content hash; find the
objects a workload depends on (``dependencies_of``, for ``propagateDependencies``); and say
which values of a manifest are sensitive (``sensitive``: Secrets' data, the fields a fleet
admin marks), which the store seals and diffs, events and hashes never show.
``OWNERSHIP`` and ``content_hash`` are what propagation reads to recognise and compare our
objects.
"""

from federation.translate.dependencies import DependencyRef, dependencies_of
from federation.translate.diff import Change, ChangeKind, diff
from federation.translate.images import ImageRef, ImageRefError, override_image, parse_image
from federation.translate.jsonpatch import PatchError, apply_patch
from federation.translate.mergepatch import apply_merge_patch
from federation.translate.overrides import (
    CLUSTER_NAME_VARIABLE,
    ResolvedOverride,
    apply_override,
    resolve_overrides,
)
from federation.translate.ownership import (
    OWNERSHIP,
    HubId,
    Ownership,
    OwnershipKeys,
    SourceRef,
    canonical_json,
    content_hash,
    format_policy,
    format_source,
    hub_id,
    parse_source,
)
from federation.translate.prune import HUB_ONLY_ANNOTATIONS, HUB_ONLY_METADATA, prune_template, strip_fields
from federation.translate.sensitive import (
    DEFAULT_FIELDS,
    Secrecy,
    SensitiveField,
    SensitiveFields,
    keyed_digest,
)
from federation.translate.translator import Translated, translate

__all__ = [
    "CLUSTER_NAME_VARIABLE",
    "DEFAULT_FIELDS",
    "HUB_ONLY_ANNOTATIONS",
    "HUB_ONLY_METADATA",
    "OWNERSHIP",
    "Change",
    "ChangeKind",
    "DependencyRef",
    "HubId",
    "ImageRef",
    "ImageRefError",
    "Ownership",
    "OwnershipKeys",
    "PatchError",
    "ResolvedOverride",
    "Secrecy",
    "SensitiveField",
    "SensitiveFields",
    "SourceRef",
    "Translated",
    "apply_merge_patch",
    "apply_override",
    "apply_patch",
    "canonical_json",
    "content_hash",
    "dependencies_of",
    "diff",
    "format_policy",
    "format_source",
    "hub_id",
    "keyed_digest",
    "override_image",
    "parse_image",
    "parse_source",
    "prune_template",
    "resolve_overrides",
    "strip_fields",
    "translate",
]
