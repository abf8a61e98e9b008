"""`unit_of_work`: a repository function made a method of the store, run as a retried unit of work.

A repository function (`federation.store.repo`) takes an open connection first and knows SQL
and nothing else. What the store does around it is the same for every one of them: take a
connection from the pool, run the function, run the whole attempt again on a connection fault
(`federation.store.retry`), translate errors and keep the store's health. Written out per
method, that wrapper repeated each function's signature a second time; declared here once:

    class Store:
        delete_cluster = unit_of_work(clusters.delete_cluster, "clusters name={name}")

`store.delete_cluster(name)` then has the function's own signature without the connection, for
callers and for mypy (`ParamSpec` with `Concatenate`), and its docstring.

`what` names the table and key in the errors the call may raise (``clusters name=member-1``):
a ``str.format`` template over the function's arguments (``{row.kind}`` reads an attribute), or
a function of the same arguments where a template cannot say it (a count of rows). It is only
rendered when an error is raised, so naming the key costs a call that succeeds nothing.

The function runs without a transaction: a repository function is one statement wherever it
can be (atomic by itself, and two round trips cheaper); several calls that must be atomic
together go through `Store.run_in_transaction`. Methods that do more than pass a call through
(sealing at the boundary, chunking, loops) are written out in the store, each saying why.
"""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from federation.store.db import Connection

P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")

#: What an operation is called in its errors: the words, or how to make them when needed.
What = str | Callable[[], str]


class Runner(Protocol):
    """The store's side: run one function on a pooled connection as a retried attempt."""

    async def _run(self, what: What, fn: Callable[[Connection], Awaitable[U]]) -> U: ...


class UnitOfWork(Generic[P, T]):
    """A descriptor: on a `Runner` instance, the repository function bound to it (see the module)."""

    def __init__(
        self, fn: Callable[Concatenate[Connection, P], Awaitable[T]], what: str | Callable[P, str]
    ) -> None:
        self._fn = fn
        self._what = what
        signature = inspect.signature(fn)
        self._signature = signature
        self._public = signature.replace(parameters=list(signature.parameters.values())[1:])
        self._name = fn.__name__
        if isinstance(what, str):
            _check_template(what, fn.__name__, signature)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, runner: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(
        self, runner: Runner, owner: type[Any] | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, runner: Runner | None, owner: type[Any] | None = None) -> Any:
        if runner is None:
            return self
        fn, describe = self._fn, self._describe

        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await runner._run(lambda: describe(args, kwargs), lambda conn: fn(conn, *args, **kwargs))

        functools.update_wrapper(call, fn)
        call.__signature__ = self._public  # type: ignore[attr-defined]
        # Bound once per instance, as a method would be: later reads are a dict lookup.
        vars(runner)[self._name] = call
        return call

    def _describe(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not isinstance(self._what, str):
            return self._what(*args, **kwargs)
        bound = self._signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        return self._what.format_map(bound.arguments)


def unit_of_work(
    fn: Callable[Concatenate[Connection, P], Awaitable[T]], what: str | Callable[P, str]
) -> UnitOfWork[P, T]:
    """`fn` (a repository function) as a store method: see the module docstring."""
    return UnitOfWork(fn, what)


def _check_template(what: str, fn_name: str, signature: inspect.Signature) -> None:
    """Refuse at import a template naming no argument of the function: an error message must
    never fail to render (it would hide the error it was to describe)."""
    for _, field, _, _ in string.Formatter().parse(what):
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if root not in signature.parameters or root == next(iter(signature.parameters)):
            raise TypeError(f"unit_of_work({fn_name}): {what!r} names {root!r}, not an argument")
