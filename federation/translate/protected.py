"""What never propagates, whatever a policy selects: credentials and the clusters' own plumbing.

A broad ClusterPropagationPolicy (``{apiVersion: v1, kind: Secret}``) once copied the Secret
holding member-1's kubeconfig (``system:masters``) to member-2, and every service-account token
with it (issue 10). Policies say what a fleet admin *wants* propagated; this module says what
may never be, and why. Refused, by default:

- everything in a namespace matching ``kube-*`` (the clusters' own: kube-system, kube-public,
  kube-node-lease, ...), in the controller's own namespace, and in the namespaces member
  credentials are read from (``--credentials-namespace``), and those Namespace objects
  themselves;
- every Secret a MemberCluster references (its kubeconfig), wherever it lives;
- Secrets of the types that are credentials by construction: service-account tokens
  (``kubernetes.io/service-account-token``) and bootstrap tokens
  (``bootstrap.kubernetes.io/token``);
- what the fleet admin adds: namespaces by pattern (``--deny-namespace``, shell-style globs)
  and kinds (``--deny-kind Kind`` or ``Kind.group``).

The check runs twice in the controller: on the template (nothing is placed; the governing policy
reports the template under its ``Skipped`` condition, with this reason) and on every translated
copy (an override must not turn a Secret into a token Secret: that copy's work fails). Copies
propagated before a template became protected (a Secret a MemberCluster starts to reference)
are deleted from the members: a credential left in a member is a leak.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from federation.errors import ConfigError
from federation.translate.identity import identity_of

DEFAULT_CONTROLLER_NAMESPACE = "federation-system"
DEFAULT_CREDENTIALS_NAMESPACES = frozenset({"fleet-system"})
RESERVED_NAMESPACE_PATTERN = "kube-*"
TOKEN_SECRET_TYPES = frozenset({"kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token"})


class ProtectedReason(StrEnum):
    """Why an object is never propagated (decisions use this; words are rendered at the edge)."""

    RESERVED_NAMESPACE = "ReservedNamespace"
    CONTROLLER_NAMESPACE = "ControllerNamespace"
    CREDENTIALS_NAMESPACE = "CredentialsNamespace"
    MEMBER_CREDENTIALS = "MemberCredentials"
    TOKEN_SECRET = "TokenSecret"
    DENIED_NAMESPACE = "DeniedNamespace"
    DENIED_KIND = "DeniedKind"


@dataclass(frozen=True)
class Refusal:
    reason: ProtectedReason
    detail: str

    def describe(self) -> str:
        return f"never propagated: {self.detail}"


@dataclass(frozen=True)
class KindRef:
    """A kind, in one API group or (``group`` None) in any."""

    kind: str
    group: str | None = None

    @classmethod
    def parse(cls, text: str) -> KindRef:
        """``Kind`` (any group) or ``Kind.group`` (``Secret.`` is the core group's Secret)."""
        kind, dot, group = text.strip().partition(".")
        if not kind or not kind[0].isalpha() or not kind.isalnum():
            raise ConfigError(
                f"--deny-kind {text!r}: expected Kind or Kind.group (e.g. ClusterRoleBinding, "
                "Certificate.cert-manager.io, Secret. for the core group's Secret only)"
            )
        return cls(kind=kind, group=group if dot else None)

    def matches(self, group: str, kind: str) -> bool:
        return kind == self.kind and (self.group is None or self.group == group)

    def __str__(self) -> str:
        return self.kind if self.group is None else f"{self.kind}.{self.group}"


@dataclass(frozen=True)
class Protection:
    """The rules, configured once per controller; `member_credentials` follows the MemberClusters."""

    controller_namespace: str = DEFAULT_CONTROLLER_NAMESPACE
    credentials_namespaces: frozenset[str] = DEFAULT_CREDENTIALS_NAMESPACES
    member_credentials: frozenset[tuple[str, str]] = frozenset()
    """(namespace, name) of every Secret a MemberCluster references."""
    deny_namespaces: tuple[str, ...] = ()
    deny_kinds: tuple[KindRef, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.deny_namespaces:
            if not pattern or any(c.isspace() for c in pattern):
                raise ConfigError(f"--deny-namespace {pattern!r}: expected a namespace or a glob like team-*")

    def with_member_credentials(self, refs: Iterable[tuple[str, str]]) -> Protection:
        return replace(self, member_credentials=frozenset(refs))

    def namespace_refusal(self, namespace: str) -> Refusal | None:
        """Why nothing in ``namespace`` (nor the Namespace itself) may propagate, if so."""
        if not namespace:
            return None
        if fnmatch.fnmatchcase(namespace, RESERVED_NAMESPACE_PATTERN):
            return Refusal(
                ProtectedReason.RESERVED_NAMESPACE, f"namespace {namespace} is the cluster's own (kube-*)"
            )
        if namespace == self.controller_namespace:
            return Refusal(
                ProtectedReason.CONTROLLER_NAMESPACE, f"namespace {namespace} is the controller's own"
            )
        if namespace in self.credentials_namespaces:
            return Refusal(
                ProtectedReason.CREDENTIALS_NAMESPACE,
                f"namespace {namespace} holds member credentials (--credentials-namespace)",
            )
        for pattern in self.deny_namespaces:
            if fnmatch.fnmatchcase(namespace, pattern):
                return Refusal(
                    ProtectedReason.DENIED_NAMESPACE,
                    f"namespace {namespace} matches --deny-namespace {pattern}",
                )
        return None

    def refusal(self, manifest: Mapping[str, Any]) -> Refusal | None:
        """Why ``manifest`` (a template or a translated copy) may never propagate, if so."""
        ident = identity_of(manifest)
        where = ident.describe()
        refused = self.namespace_refusal(ident.namespace)
        if refused is None and ident.group == "" and ident.kind == "Namespace":
            refused = self.namespace_refusal(ident.name)
        if refused is not None:
            return Refusal(refused.reason, f"{where}: {refused.detail}")
        for ref in self.deny_kinds:
            if ref.matches(ident.group, ident.kind):
                return Refusal(ProtectedReason.DENIED_KIND, f"{where}: kind matches --deny-kind {ref}")
        if ident.group == "" and ident.kind == "Secret":
            if (ident.namespace, ident.name) in self.member_credentials:
                return Refusal(
                    ProtectedReason.MEMBER_CREDENTIALS,
                    f"{where} holds a member cluster's kubeconfig (a MemberCluster references it)",
                )
            secret_type = manifest.get("type")
            if isinstance(secret_type, str) and secret_type in TOKEN_SECRET_TYPES:
                return Refusal(ProtectedReason.TOKEN_SECRET, f"{where} is a credential (type {secret_type})")
        return None
