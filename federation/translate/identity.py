"""A copy is its template's copy: what no override may change, checked where the copy is made.

The applier writes whatever object a manifest names, so the manifest an override produces is a
trust boundary: a tenant who may write one ConfigMap and one OverridePolicy in ``team-a`` must
not be able to turn the copy into a ClusterRoleBinding, move it to ``kube-system``, or adopt an
object of another namespace (all three were possible before this module; issue 10). The rules,
each with a reason code (`Guard`), hold for every override, namespaced or cluster-scoped, except
where said:

- **identity** (`Guard.IDENTITY`): the API group, kind, namespace and name of the copy equal the
  template's. The version may change (``apps/v1`` to another served version of the same kind
  names the same object).
- **hub-owned metadata** (`Guard.HUB_METADATA`): ``generateName``, ``ownerReferences``,
  ``finalizers`` and the server-set fields (uid, resourceVersion, generation, timestamps,
  managedFields, selfLink) are pruned from every template and no override may put them back.
  An owner reference names an object of the *member* by uid: one that matches nothing makes the
  member's garbage collector delete the copy, one with ``blockOwnerDeletion`` stalls a member
  admin's foreground deletion of the owner; a finalizer would keep our own deletion of the copy
  from ever finishing. None of that is the template's author's to decide per cluster.
- **ownership stamp** (`Guard.OWNERSHIP`): labels and annotations under ``federation.io/`` are
  the controller's (they say which hub owns a member object); an override may neither set nor
  remove them.
- **RBAC grants**, namespaced overrides only (`Guard.RBAC`): the ``roleRef``, ``subjects``,
  ``rules`` and ``aggregationRule`` of ``rbac.authorization.k8s.io`` objects. The hub's RBAC
  escalation check approved the template its author wrote; an OverridePolicy in the author's own
  namespace must not grant, in every member, more than that (a Role bound to ``view`` on the hub
  and to ``cluster-admin`` in the members). A ClusterOverridePolicy is the fleet admin's and may.

`check_override` compares a manifest before and after one overrider and returns the first
`Violation`; the translator turns it into an `IdentityError` naming the policy, the rule, the
overrider and the field. The admission webhook and ``federation plan`` refuse the same overrides
up front (`federation.validation`), in the same words (`Violation.describe`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from federation.translate.ownership import OWNERSHIP
from federation.translate.pointer import json_copy

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_GRANT_FIELDS = ("roleRef", "subjects", "rules", "aggregationRule")

#: Metadata that belongs to the hub object or to the member's apiserver, never to an override.
HUB_OWNED_METADATA = (
    "generateName",
    "ownerReferences",
    "finalizers",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)


class Guard(StrEnum):
    """Which rule an override broke (decisions are made on this, never on the message)."""

    IDENTITY = "Identity"
    HUB_METADATA = "HubMetadata"
    OWNERSHIP = "OwnershipStamp"
    RBAC = "RbacGrant"


RULE_TEXT: Mapping[Guard, str] = {
    Guard.IDENTITY: "an override never changes a copy's identity (group, kind, namespace, name)",
    Guard.HUB_METADATA: "overrides may not set metadata the hub or the member's apiserver owns "
    "(generateName, ownerReferences, finalizers, uid, resourceVersion, timestamps, managedFields)",
    Guard.OWNERSHIP: "labels and annotations under federation.io/ are the controller's ownership stamp",
    Guard.RBAC: "a namespaced OverridePolicy may not change what an RBAC object grants "
    "(roleRef, subjects, rules, aggregationRule): only a ClusterOverridePolicy may",
}


@dataclass(frozen=True)
class Identity:
    """What names an object in a cluster (the version is a representation, not a name)."""

    group: str
    kind: str
    namespace: str
    name: str

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind}.{self.group or 'core'} {where}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


_VERSION = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def valid_api_version(value: Any) -> bool:
    """Whether ``value`` is ``[group/]version`` with a version Kubernetes accepts (a DNS label,
    as a CRD's version names are): the version of a copy may change, its form may not."""
    return isinstance(value, str) and bool(_VERSION.match(value.rpartition("/")[2]))


def identity_of(manifest: Mapping[str, Any]) -> Identity:
    """The identity a manifest names (empty strings where it names nothing)."""
    meta = manifest.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return Identity(
        group=_text(manifest.get("apiVersion")).rpartition("/")[0],
        kind=_text(manifest.get("kind")),
        namespace=_text(meta.get("namespace")),
        name=_text(meta.get("name")),
    )


@dataclass(frozen=True)
class Violation:
    """One broken rule: which, and the field (as a path a person reads, e.g. ``metadata.namespace``)."""

    guard: Guard
    field: str
    detail: str = ""
    """What changed, when it can be shown (identity values are names, never secrets)."""

    def describe(self) -> str:
        """The words every refusal uses: the translator's, the webhook's and ``plan``'s."""
        change = f"changes {self.field}" + (f" ({self.detail})" if self.detail else "")
        return f"{change}: {RULE_TEXT[self.guard]}"


def _meta(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = manifest.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _shown(value: str) -> str:
    return repr(value) if value else "none"


def identity_violation(before: Mapping[str, Any], after: Mapping[str, Any]) -> Violation | None:
    """Whether ``after`` names another object than ``before``."""
    a, b = identity_of(before), identity_of(after)
    if valid_api_version(before.get("apiVersion")) and not valid_api_version(after.get("apiVersion")):
        return Violation(Guard.IDENTITY, "apiVersion", "no longer a group/version")
    for field, old, new in (
        ("apiVersion", a.group, b.group),
        ("kind", a.kind, b.kind),
        ("metadata.namespace", a.namespace, b.namespace),
        ("metadata.name", a.name, b.name),
    ):
        if old != new:
            what = "API group" if field == "apiVersion" else field.rpartition(".")[2]
            return Violation(Guard.IDENTITY, field, f"{what} {_shown(old)} → {_shown(new)}")
    return None


def _stamp_keys(meta: Mapping[str, Any], field: str) -> dict[str, Any]:
    values = meta.get(field)
    if not isinstance(values, Mapping):
        return {}
    return {str(k): v for k, v in values.items() if str(k).startswith(OWNERSHIP.prefix)}


def guarded_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of just the parts of ``manifest`` that `check_override` compares: taken before an
    overrider runs (overriders change their input in place), far cheaper than a deep copy of
    the whole manifest on the translator's hot path."""
    meta = _meta(manifest)
    out_meta: dict[str, Any] = {
        k: json_copy(meta[k]) for k in ("namespace", "name", *HUB_OWNED_METADATA) if k in meta
    }
    for field in ("labels", "annotations"):
        stamp = _stamp_keys(meta, field)
        if stamp:
            out_meta[field] = stamp
    out: dict[str, Any] = {k: manifest[k] for k in ("apiVersion", "kind") if k in manifest}
    out["metadata"] = out_meta
    if identity_of(manifest).group == RBAC_GROUP:
        out.update({k: json_copy(manifest[k]) for k in RBAC_GRANT_FIELDS if k in manifest})
    return out


def check_override(
    before: Mapping[str, Any], after: Mapping[str, Any], *, namespaced: bool
) -> Violation | None:
    """The first rule ``after`` (one overrider's result) breaks relative to ``before`` (the
    manifest it was given, or its `guarded_fields`).

    ``namespaced``: the override comes from an OverridePolicy (a tenant's), not a
    ClusterOverridePolicy.
    """
    violation = identity_violation(before, after)
    if violation is not None:
        return violation
    mb, ma = _meta(before), _meta(after)
    for key in HUB_OWNED_METADATA:
        if ma.get(key) != mb.get(key):
            return Violation(Guard.HUB_METADATA, f"metadata.{key}")
    for field in ("labels", "annotations"):
        old, new = _stamp_keys(mb, field), _stamp_keys(ma, field)
        if old != new:
            key = sorted(set(old.keys()) ^ set(new.keys()) or {k for k in old if old[k] != new.get(k)})[0]
            return Violation(Guard.OWNERSHIP, f"metadata.{field}[{key}]")
    if namespaced and identity_of(before).group == RBAC_GROUP:
        for field in RBAC_GRANT_FIELDS:
            if before.get(field) != after.get(field):
                return Violation(Guard.RBAC, field)
    return None
