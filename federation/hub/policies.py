"""The policies on the hub, parsed, with what each one selects.

Policies are parsed with the API models when they arrive; an invalid one is kept aside with
its error (the controller reports it on the policy's status) instead of being half-applied.
Subscribers hear about every change with the old and new version, so they can re-evaluate the
templates either selected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from federation.api import (
    ClusterOverridePolicy,
    ClusterPropagationPolicy,
    OverridePolicy,
    PropagationPolicy,
)
from federation.api.propagation import PolicyLike
from federation.errors import FederationError
from federation.hub.keys import PolicyKey
from federation.kube import GVK, Obj

log = logging.getLogger(__name__)

GROUP_VERSION = "federation.io/v1alpha1"
PROPAGATION_KINDS = ("PropagationPolicy", "ClusterPropagationPolicy")
OVERRIDE_KINDS = ("OverridePolicy", "ClusterOverridePolicy")
POLICY_GVKS = tuple(GVK("federation.io", "v1alpha1", k) for k in (*PROPAGATION_KINDS, *OVERRIDE_KINDS))

OverrideLike = OverridePolicy | ClusterOverridePolicy
AnyPolicy = PolicyLike | OverrideLike

_MODELS: dict[str, type[AnyPolicy]] = {
    "PropagationPolicy": PropagationPolicy,
    "ClusterPropagationPolicy": ClusterPropagationPolicy,
    "OverridePolicy": OverridePolicy,
    "ClusterOverridePolicy": ClusterOverridePolicy,
}

#: (old, new): either may be None (added / removed).
PolicyListener = Callable[[AnyPolicy | None, AnyPolicy | None], None]


@dataclass
class InvalidPolicy:
    key: PolicyKey
    error: str
    generation: int | None


class PolicyCache:
    def __init__(self) -> None:
        self._policies: dict[PolicyKey, AnyPolicy] = {}
        self._raw: dict[PolicyKey, Obj] = {}
        self.invalid: dict[PolicyKey, InvalidPolicy] = {}
        self._listeners: list[PolicyListener] = []

    def subscribe(self, listener: PolicyListener) -> None:
        self._listeners.append(listener)

    def upsert(self, obj: Obj) -> None:
        key = PolicyKey.of(obj)
        model = _MODELS.get(key.kind)
        if model is None:
            return
        previous = self._raw.get(key)
        self._raw[key] = obj
        old = self._policies.get(key)
        if old is not None and previous is not None and _same_intent(previous, obj):
            return  # a status write (ours, usually): nothing any template depends on changed
        try:
            new = model.model_validate(obj)
        except FederationError as exc:
            self.invalid[key] = InvalidPolicy(key, str(exc), (obj.get("metadata") or {}).get("generation"))
            log.error("%s is invalid and is ignored: %s", key, exc)
            if old is not None:
                del self._policies[key]
                self._notify(old, None)
            return
        self.invalid.pop(key, None)
        self._policies[key] = new
        self._notify(old, new)

    def remove(self, obj: Obj) -> None:
        key = PolicyKey.of(obj)
        self._raw.pop(key, None)
        self.invalid.pop(key, None)
        old = self._policies.pop(key, None)
        if old is not None:
            self._notify(old, None)

    def _notify(self, old: AnyPolicy | None, new: AnyPolicy | None) -> None:
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                log.exception("policy listener failed")

    # -- reads -------------------------------------------------------------------------

    def get(self, key: PolicyKey) -> AnyPolicy | None:
        return self._policies.get(key)

    def raw(self, key: PolicyKey) -> Obj | None:
        return self._raw.get(key)

    def propagation(self, *, include_deleting: bool = False) -> list[PolicyLike]:
        """Propagation policies that govern resources (a policy being deleted governs nothing)."""
        out: list[PolicyLike] = []
        for p in self._policies.values():
            if isinstance(p, PropagationPolicy | ClusterPropagationPolicy) and (
                include_deleting or not deleting(p)
            ):
                out.append(p)
        return out

    def overrides(self) -> list[OverrideLike]:
        return [
            p
            for p in self._policies.values()
            if isinstance(p, OverridePolicy | ClusterOverridePolicy) and not deleting(p)
        ]

    def all(self) -> Iterable[tuple[PolicyKey, AnyPolicy]]:
        return list(self._policies.items())

    def selected_gvks(self) -> set[GVK]:
        """Every apiVersion+kind some propagation policy selects: the hub kinds to watch."""
        gvks: set[GVK] = set()
        for p in self.propagation(include_deleting=True):
            for sel in p.spec.resource_selectors:
                gvks.add(GVK.parse(sel.api_version, sel.kind))
        return gvks


def deleting(policy: AnyPolicy) -> bool:
    """Whether the policy has a deletionTimestamp (metadata keeps untyped fields as extras)."""
    return bool((policy.metadata.model_extra or {}).get("deletionTimestamp"))


def selector_gvks(policy: AnyPolicy) -> set[GVK]:
    return {GVK.parse(s.api_version, s.kind) for s in policy.spec.resource_selectors}


def _same_intent(a: Obj, b: Obj) -> bool:
    """Whether two versions of a policy ask for the same thing (spec, labels, deletion)."""
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    return (
        a.get("spec") == b.get("spec")
        and ma.get("labels") == mb.get("labels")
        and ma.get("deletionTimestamp") == mb.get("deletionTimestamp")
    )
