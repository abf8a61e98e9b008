"""Policy status as a keyed queue in fake time: written on change, looked at again while its
works are in flight, quiet once settled, finalizers added and released."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from federation.hub.keys import PolicyKey, ResourceKey
from federation.hub.ledger import PolicyLedger
from federation.hub.policies import PolicyCache
from federation.hub.policy_status import PolicyStatus, PolicyStatusSettings, rollout_condition
from federation.hub.templates import FINALIZER
from federation.informers.clock import FakeClock
from federation.kube import Obj
from federation.runtime.workers import process
from federation.store import PolicyId, PolicySummary
from tests.unit.hub_fakes import cm_key, propagation_policy

PP = PolicyKey("PropagationPolicy", "shop", "pp")


class Writes:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.ensured: list[PolicyKey] = []
        self.released: list[PolicyKey] = []

    async def ensure_policy(self, pkey: PolicyKey, raw: Obj) -> None:
        if FINALIZER not in ((raw.get("metadata") or {}).get("finalizers") or []):
            self.ensured.append(pkey)

    async def release_policy(self, pkey: PolicyKey, raw: Obj) -> None:
        self.released.append(pkey)

    async def write_status(self, pkey: PolicyKey, status: dict[str, Any]) -> None:
        self.statuses.append(status)


def summary(**counts: int) -> PolicySummary:
    base = {"matched": 1, "placed": 2, "applied": 0, "healthy": 0, "conflicted": 0, "failed": 0, "pending": 2}
    return PolicySummary(**{**base, **counts})  # type: ignore[arg-type]


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.policies = PolicyCache()
        self.ledger = PolicyLedger()
        self.writes = Writes()
        self.summaries: dict[PolicyId, PolicySummary] = {}
        self.queries = 0
        self.status = PolicyStatus(
            policies=self.policies,
            ledger=self.ledger,
            policy_ids={PP: PolicyId(7)},
            summary=self.summary,
            members=lambda: {"m1", "m2"},
            writes=self.writes,
            settings=PolicyStatusSettings(interval=3.0, resync=60.0, coalesce=0.5),
            clock=self.clock,
            now=lambda: datetime(2026, 11, 27, tzinfo=UTC),
        )

    async def summary(self, pid: PolicyId) -> PolicySummary:
        self.queries += 1
        return self.summaries[pid]

    async def run_ready(self) -> list[PolicyKey]:
        """Reconcile every key ready once the changes are coalesced (as a worker would)."""
        await self.clock.advance(0.5)
        done = []
        while (key := self.status.queue.get_nowait()) is not None:
            try:
                await process(self.status.queue, self.status.reconcile, key, name="policies")
            finally:
                self.status.queue.done(key)
            done.append(key)
        return done

    def conditions(self) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in self.writes.statuses[-1]["conditions"]}


async def test_a_policy_is_reconciled_on_change_and_again_while_in_flight() -> None:
    h = Harness()
    h.policies.upsert(propagation_policy("pp"))
    h.summaries[PolicyId(7)] = summary()
    h.status.mark(PP)
    assert await h.run_ready() == [PP]
    assert h.conditions()["federation.io/Propagated"]["reason"] == "Progressing"
    assert h.writes.ensured == [PP], "the finalizer is added on sight"
    assert await h.run_ready() == [], "nothing until the interval passes"
    h.summaries[PolicyId(7)] = summary(applied=2, pending=0)
    await h.clock.advance(3.0)
    assert await h.run_ready() == [PP]
    assert h.conditions()["federation.io/Propagated"]["reason"] == "Applied"
    queries = h.queries
    await h.clock.advance(30.0)
    assert await h.run_ready() == [], "settled: no query until something changes"
    assert h.queries == queries


async def test_the_ledger_reports_losses_and_skips() -> None:
    from federation.api import PropagationPolicy

    h = Harness()
    h.policies.upsert(propagation_policy("pp"))
    h.summaries[PolicyId(7)] = summary(applied=2, pending=0)
    winner = PropagationPolicy.model_validate(propagation_policy("pp"))
    h.status.mark(*h.ledger.note_losers(cm_key("c"), [(winner, "overridden by X")]))
    h.status.mark(*h.ledger.note_skipped(cm_key("s"), PP, "never propagated: a token"))
    await h.run_ready()
    conds = h.conditions()
    assert conds["Overridden"]["status"] == "True"
    assert conds["Overridden"]["message"] == "ConfigMap shop/c: overridden by X"
    assert conds["Skipped"]["message"].endswith("ConfigMap shop/s: never propagated: a token")
    assert conds["ClustersResolved"]["status"] == "True"
    writes = len(h.writes.statuses)
    h.policies.upsert({**propagation_policy("pp"), "status": h.writes.statuses[-1]})
    h.status.mark(PP)
    await h.run_ready()
    assert len(h.writes.statuses) == writes, "an unchanged status is not written again"


async def test_a_deleted_policy_lets_go_once_it_governs_nothing() -> None:
    h = Harness()
    deleting = propagation_policy("pp")
    deleting["metadata"] = {**deleting["metadata"], "deletionTimestamp": "2026-11-27T00:00:00Z"}
    h.policies.upsert(deleting)
    h.summaries[PolicyId(7)] = summary(matched=0, placed=0, pending=0)
    h.ledger.govern(cm_key("c"), PP)
    h.status.mark(PP)
    await h.run_ready()
    assert h.writes.released == []
    h.status.mark(*h.ledger.govern(cm_key("c"), None))
    await h.clock.advance(3.0)
    await h.run_ready()
    assert h.writes.released == [PP]


async def test_changes_are_coalesced() -> None:
    h = Harness()
    h.policies.upsert(propagation_policy("pp"))
    h.summaries[PolicyId(7)] = summary(applied=2, pending=0)
    for _ in range(100):
        h.status.mark(PP)
    assert h.status.queue.get_nowait() is None, "not before the changes are coalesced"
    assert await h.run_ready() == [PP]
    assert h.queries == 1


async def test_the_resync_is_the_only_periodic_work() -> None:
    import anyio

    h = Harness()
    h.policies.upsert(propagation_policy("pp"))
    h.summaries[PolicyId(7)] = summary(applied=2, pending=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.status._resync)
        await anyio.wait_all_tasks_blocked()
        assert await h.run_ready() == [PP]
        await h.clock.advance(58.5)
        assert await h.run_ready() == []
        await h.clock.advance(0.5)
        assert await h.run_ready() == [PP]
        tg.cancel_scope.cancel()


def test_the_rolled_out_condition_names_halted_rollouts_first() -> None:
    ledger = PolicyLedger()
    pkey = PolicyKey("PropagationPolicy", "shop", "web")
    a, b = ResourceKey("apps", "Deployment", "shop", "a"), ResourceKey("apps", "Deployment", "shop", "b")
    assert ledger.note_rollout(a, pkey, ("Progressing", "stage canary: soaking")) == {pkey}
    assert ledger.note_rollout(a, pkey, ("Progressing", "stage canary: soaking")) == set()
    assert ledger.note_rollout(b, pkey, ("Halted", "stage canary failed")) == {pkey}
    cond = rollout_condition(ledger.rollouts(pkey), 3)
    assert (cond["status"], cond["reason"]) == ("False", "Halted")
    assert cond["message"].index("shop/b: Halted") < cond["message"].index("shop/a: Progressing")
    ledger.note_rollout(a, pkey, ("Complete", "every stage passed"))
    ledger.note_rollout(b, None, None)
    done = rollout_condition(ledger.rollouts(pkey), 3)
    assert (done["status"], done["reason"]) == ("True", "Complete")
