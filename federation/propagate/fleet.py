"""The fleet's propagators: one per connected member, each supervised on its own.

A member's propagator that crashes on a bug must not take the others down with it (they share
the leader's task group): each runs under `federation.runtime.supervise`, so the crash is
logged with its traceback and ``cluster=``, counted (``federation_task_restarts_total
{task="propagator/NAME"}``) and the member gets a fresh propagator after a jittered backoff,
while every other member's loop goes on. A fresh one, not the same one resumed: it reloads its
index from Postgres and re-checks its member, as after a process restart.

`reconcile` is level-based: given the members connected now, it starts what is missing and
cancels the propagator of a member that left or was reconnected (a new client: its informers
and applier belong to the old one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import anyio
import anyio.abc

from federation.clusters import Member
from federation.informers import Clock
from federation.kube import Obj
from federation.kube.keys import ResourceKey
from federation.runtime import supervise


class MemberPropagator(Protocol):
    """What the fleet needs of one member's propagator (`ClusterPropagator`)."""

    async def run(self) -> None: ...

    def wake(self) -> None: ...

    def member_object(self, key: ResourceKey) -> Obj | None: ...


#: Builds the propagator of a member, afresh for every (re)start.
PropagatorFactory = Callable[[Member], MemberPropagator]


class Propagators:
    def __init__(
        self,
        factory: PropagatorFactory,
        *,
        clock: Clock | None = None,
        restart_initial: float = 1.0,
        restart_cap: float = 60.0,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.restart_initial = restart_initial
        self.restart_cap = restart_cap
        #: The running incarnation of each member's propagator (absent while it waits to restart).
        self.running: dict[str, MemberPropagator] = {}
        self._scopes: dict[str, tuple[int, anyio.CancelScope]] = {}
        self._ended: dict[str, anyio.Event] = {}

    def get(self, cluster: str) -> MemberPropagator | None:
        return self.running.get(cluster)

    def reconcile(self, members: Iterable[Member], tg: anyio.abc.TaskGroup) -> None:
        """One supervised propagator per connected member in `members`, each in `tg`."""
        connected = {m.name: m for m in members if m.connected}
        for name, (client_id, scope) in list(self._scopes.items()):
            member = connected.get(name)
            if member is None or id(member.client) != client_id:
                self._cancel(name, scope)
        for name, member in connected.items():
            if name not in self._scopes:
                scope = anyio.CancelScope()
                self._scopes[name] = (id(member.client), scope)
                self._ended[name] = ended = anyio.Event()
                tg.start_soon(self._supervised, member, scope, ended)

    def _cancel(self, name: str, scope: anyio.CancelScope) -> None:
        scope.cancel()
        del self._scopes[name]
        self.running.pop(name, None)

    async def stop(self, name: str) -> None:
        """Stop the propagator of `name` and return once it has ended: what it had in flight is
        applied and recorded (its `run` shields that). The cluster is handed to another replica
        next, which must not start while this one still writes."""
        entry = self._scopes.get(name)
        if entry is not None:
            self._cancel(name, entry[1])
        ended = self._ended.get(name)
        if ended is not None:
            await ended.wait()

    async def _supervised(self, member: Member, scope: anyio.CancelScope, ended: anyio.Event) -> None:
        try:
            with scope:
                await supervise(
                    f"propagator/{member.name}",
                    lambda: self._run_once(member),
                    fields={"cluster": member.name},
                    clock=self.clock,
                    initial=self.restart_initial,
                    cap=self.restart_cap,
                )
        finally:
            ended.set()
            if self._ended.get(member.name) is ended:
                del self._ended[member.name]

    async def _run_once(self, member: Member) -> None:
        propagator = self.factory(member)
        self.running[member.name] = propagator
        try:
            await propagator.run()
        finally:
            # Not the successor's entry: a reconnect may already have replaced it.
            if self.running.get(member.name) is propagator:
                del self.running[member.name]
