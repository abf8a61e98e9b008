"""`unit_of_work`: a repository function bound to the store as a method, without a database.

The runner here stands in for `Store._run` (the retried attempt on a pooled connection, whose
retries `test_store_retry` covers): it hands the function a marker connection and renders the
operation's name only when the attempt fails, as `retrying` does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest

from federation.errors import StoreError
from federation.store.db import Connection
from federation.store.unit import What, unit_of_work

CONN = cast(Connection, object())


@dataclass(frozen=True)
class Row:
    kind: str
    name: str


async def lease(conn: Connection, cluster: str, *, holder: str, ttl_seconds: float = 30.0) -> str:
    """Take the lease of `cluster`."""
    assert conn is CONN
    if holder == "bad":
        raise ValueError("refused")
    return f"{cluster}:{holder}:{ttl_seconds}"


async def upsert(conn: Connection, rows: Sequence[Row]) -> int:
    if not rows:
        raise ValueError("empty")
    return len(rows)


async def one(conn: Connection, row: Row) -> str:
    raise ValueError("refused")


class Runner:
    """Runs the function once on `CONN`; on failure, raises a `StoreError` named by `what`."""

    def __init__(self) -> None:
        self.named: list[str] = []

    async def _run(self, what: What, fn: Callable[[Connection], Awaitable[Any]]) -> Any:
        try:
            return await fn(CONN)
        except ValueError as exc:
            name = what if isinstance(what, str) else what()
            self.named.append(name)
            raise StoreError(f"{name}: {exc}") from exc


class Facade(Runner):
    lease = unit_of_work(lease, "leases cluster={cluster} holder={holder} ttl={ttl_seconds}")
    upsert = unit_of_work(upsert, lambda rows: f"rows ({len(rows)})")
    one = unit_of_work(one, "rows {row.kind} {row.name}")


async def test_a_call_passes_its_arguments_after_the_connection() -> None:
    facade = Facade()
    assert await facade.lease("m1", holder="me") == "m1:me:30.0"
    assert await facade.lease(cluster="m2", holder="you", ttl_seconds=5) == "m2:you:5"
    assert await facade.upsert([Row("a", "b")] * 3) == 3
    assert facade.named == [], "nothing is named when nothing fails"


async def test_the_name_in_an_error_is_the_template_over_the_arguments_defaults_included() -> None:
    facade = Facade()
    with pytest.raises(StoreError, match=r"^leases cluster=m1 holder=bad ttl=30.0: refused$"):
        await facade.lease("m1", holder="bad")
    with pytest.raises(StoreError, match=r"^rows ConfigMap web: refused$"):
        await facade.one(Row("ConfigMap", "web"))
    with pytest.raises(StoreError, match=r"^rows \(0\): empty$"):
        await facade.upsert([])


def test_the_method_has_the_functions_signature_without_the_connection_and_its_docstring() -> None:
    bound = Facade().lease
    assert (
        str(inspect.signature(bound))
        == "(cluster: 'str', *, holder: 'str', ttl_seconds: 'float' = 30.0) -> 'str'"
    )
    assert bound.__doc__ == "Take the lease of `cluster`."
    assert bound.__name__ == "lease"


def test_bound_once_per_instance_and_each_instance_its_own() -> None:
    a, b = Facade(), Facade()
    assert a.lease is a.lease
    assert a.lease is not b.lease


async def test_each_instance_runs_on_its_own_runner() -> None:
    a, b = Facade(), Facade()
    b_lease = b.lease
    with pytest.raises(StoreError):
        await a.lease("m1", holder="bad")
    assert await b_lease("m1", holder="ok") == "m1:ok:30.0"
    assert len(a.named) == 1 and b.named == []


def test_a_template_naming_no_argument_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match=r"names 'clustr', not an argument"):
        unit_of_work(lease, "leases cluster={clustr}")
    with pytest.raises(TypeError, match=r"names 'conn', not an argument"):
        unit_of_work(lease, "leases on {conn}")
