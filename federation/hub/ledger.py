"""What policy status reports besides Postgres' counts, kept as templates are reconciled.

For each template: the policy governing it, the policies it beat (rule 4: their condition
``Overridden``) and, when it is never propagated, the policy that selected it and why
(``Skipped``). Every `note_*` replaces the template's entry and returns the policies whose
report changed, so policy status is queued by change, not found by a scan.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.api.propagation import PolicyLike
from federation.hub.keys import PolicyKey, ResourceKey


def policy_key(policy: PolicyLike) -> PolicyKey:
    return PolicyKey(policy.kind, policy.metadata.namespace or "", policy.metadata.name)


class PolicyLedger:
    def __init__(self) -> None:
        self.governing: dict[ResourceKey, PolicyKey] = {}
        self._losers: dict[PolicyKey, dict[ResourceKey, str]] = {}
        self._lost_to: dict[ResourceKey, set[PolicyKey]] = {}
        self._skipped: dict[PolicyKey, dict[ResourceKey, str]] = {}
        self._skipped_by: dict[ResourceKey, PolicyKey] = {}
        self._rollouts: dict[PolicyKey, dict[ResourceKey, tuple[str, str]]] = {}
        self._rolled_by: dict[ResourceKey, PolicyKey] = {}

    def govern(self, key: ResourceKey, pkey: PolicyKey | None) -> set[PolicyKey]:
        """`key` is governed through `pkey` now (None: by nothing)."""
        before = self.governing.get(key)
        if pkey is None:
            self.governing.pop(key, None)
        else:
            self.governing[key] = pkey
        return {p for p in (before, pkey) if p is not None} if before != pkey else set()

    def note_losers(self, key: ResourceKey, losers: Iterable[tuple[PolicyLike, str]]) -> set[PolicyKey]:
        """The policies that selected `key` and lost it (rule 4), with the reason each lost."""
        new = {policy_key(p): why for p, why in losers}
        old = {p: self._losers[p][key] for p in self._lost_to.pop(key, set())}
        for pkey in old:
            del self._losers[pkey][key]
            if not self._losers[pkey]:
                del self._losers[pkey]
        for pkey, why in new.items():
            self._losers.setdefault(pkey, {})[key] = why
        if new:
            self._lost_to[key] = set(new)
        return {p for p in old.keys() | new.keys() if old.get(p) != new.get(p)}

    def note_skipped(self, key: ResourceKey, pkey: PolicyKey | None, why: str | None) -> set[PolicyKey]:
        """`key`, selected by `pkey`, is never propagated because `why` (None: it may be)."""
        previous = self._skipped_by.pop(key, None)
        before = self._skipped.get(previous, {}).pop(key, None) if previous is not None else None
        if previous is not None and not self._skipped.get(previous):
            self._skipped.pop(previous, None)
        if pkey is not None and why is not None:
            self._skipped.setdefault(pkey, {})[key] = why
            self._skipped_by[key] = pkey
        if (previous, before) == (pkey if why is not None else None, why):
            return set()
        return {p for p in (previous, pkey) if p is not None}

    def note_rollout(
        self, key: ResourceKey, pkey: PolicyKey | None, rollout: tuple[str, str] | None
    ) -> set[PolicyKey]:
        """`key`'s rollout under `pkey`: its phase and reason (None: none in progress)."""
        previous = self._rolled_by.pop(key, None)
        before = self._rollouts.get(previous, {}).pop(key, None) if previous is not None else None
        if previous is not None and not self._rollouts.get(previous):
            self._rollouts.pop(previous, None)
        if pkey is not None and rollout is not None:
            self._rollouts.setdefault(pkey, {})[key] = rollout
            self._rolled_by[key] = pkey
        if (previous, before) == (pkey if rollout is not None else None, rollout):
            return set()
        return {p for p in (previous, pkey) if p is not None}

    def rollouts(self, pkey: PolicyKey) -> dict[ResourceKey, tuple[str, str]]:
        """The templates of `pkey` with a rollout not complete: (phase, reason) each."""
        return {k: v for k, v in self._rollouts.get(pkey, {}).items() if v[0] != "Complete"}

    def losses(self, pkey: PolicyKey) -> list[str]:
        """Templates this policy selects but another policy governs."""
        return [f"{key}: {reason}" for key, reason in sorted(self._losers.get(pkey, {}).items())]

    def skipped(self, pkey: PolicyKey) -> list[str]:
        return [f"{key}: {why}" for key, why in sorted(self._skipped.get(pkey, {}).items())]

    def governs_any(self, pkey: PolicyKey) -> bool:
        return any(g == pkey for g in self.governing.values())
