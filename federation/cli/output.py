"""How the listing commands print their rows: tables like kubectl's, and formats for scripts.

A table never cuts a value when stdout is not a terminal: `federation status | grep my-app`
must find every row, so columns are as wide as their widest cell whatever the width (kubectl
does the same). On a terminal too narrow for the table, only the columns a listing names as
*elastic* (free text: messages, errors, labels) are shortened, with an ellipsis; names and
counts never are, and when that is not enough the terminal wraps the lines rather than a name
losing its end.

For scripts: ``-o name`` (``kind.group/name``, what ``federation status KIND/NAME`` and kubectl
take), ``--no-headers``, ``-o json|yaml`` (every field), and ``-o jmespath=EXPR``: a JMESPath
query over the rows as ``-o json`` prints them (JMESPath rather than kubectl's Go-flavoured
JSONPath: it is a specification with a maintained Python implementation, and it filters as
well as selects, e.g. ``[?health!='Healthy'].name``). A query answering a string or a list of
scalars prints one plain value per line, anything else prints JSON.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import jmespath
import orjson
import yaml
from click.shell_completion import CompletionItem
from jmespath.exceptions import JMESPathError

from federation.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
Row = Mapping[str, Any]

FORMATS = ("table", "wide", "json", "yaml", "name")
#: Three spaces between columns, as kubectl's tabwriter pads them.
GAP = "   "
#: An elastic column is not shortened below this many characters.
MIN_ELASTIC = 16


@dataclass(frozen=True)
class Output:
    """What ``-o`` and ``--no-headers`` asked for."""

    format: str = "table"
    query: str | None = None
    headers: bool = True

    @property
    def tabular(self) -> bool:
        return self.format in ("table", "wide")


class OutputType(click.ParamType[Output, Any]):
    """``-o``: one of FORMATS, or ``jmespath=EXPR`` (the expression checked when parsed)."""

    name = "format"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Output:
        if isinstance(value, Output):
            return value
        text = str(value)
        kind, sep, expr = text.partition("=")
        if sep and kind == "jmespath":
            if not expr.strip():
                self.fail("jmespath= needs an expression, e.g. -o jmespath='[].name'", param, ctx)
            try:
                jmespath.compile(expr)
            except JMESPathError as err:
                self.fail(f"jmespath={expr!r} is not a JMESPath expression: {_first_line(err)}", param, ctx)
            return Output("jmespath", expr)
        if sep and kind in ("jsonpath", "go-template", "custom-columns"):
            self.fail(
                f"{kind} is kubectl's; here use -o jmespath=EXPR (JMESPath, e.g. '[].name')", param, ctx
            )
        if text not in FORMATS:
            self.fail(f"{text!r} is not one of {', '.join(FORMATS)}, jmespath=EXPR", param, ctx)
        return Output(text)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return [CompletionItem(f) for f in (*FORMATS, "jmespath=") if f.startswith(incomplete)]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(FORMATS) + "|jmespath=EXPR]"


def output_option(f: F) -> F:
    """``-o/--output`` and ``--no-headers``, handed to the command as one `Output` named ``output``."""

    @click.option(
        "-o",
        "--output",
        type=OutputType(),
        default="table",
        show_default=True,
        help="Output format: a table (wide: more columns), json or yaml (every field), name "
        "(kind.group/name per line), or jmespath=EXPR (a JMESPath query over the JSON rows).",
    )
    @click.option("--no-headers", is_flag=True, help="Tables without their header line (for scripts).")
    @functools.wraps(f)
    def wrapper(*args: Any, output: Output, no_headers: bool, **kwargs: Any) -> Any:
        return f(*args, output=replace(output, headers=not no_headers), **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Listing:
    """A command's rows and how to show them.

    `columns` are the table's, `wide` what ``-o wide`` adds, `elastic` the columns a narrow
    terminal may shorten (never a name); `name` gives a row's ``-o name`` line."""

    columns: Sequence[str]
    name: Callable[[Row], str]
    wide: Sequence[str] = ()
    elastic: Sequence[str] = ()


def emit(rows: Sequence[Row], listing: Listing, output: Output) -> None:
    """Print `rows` as `output` asks."""
    if output.format == "json":
        click.echo(_json(rows, indent=True))
    elif output.format == "yaml":
        click.echo(yaml.safe_dump(_plain(rows), sort_keys=False), nl=False)
    elif output.format == "name":
        for row in rows:
            click.echo(listing.name(row))
    elif output.format == "jmespath":
        assert output.query is not None
        _query(rows, output.query)
    else:
        shown = [*listing.columns, *(listing.wide if output.format == "wide" else ())]
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        for line in table_lines(
            [[cell(row.get(c)) for c in shown] for row in rows],
            headers=[c.upper().replace("_", " ") for c in shown] if output.headers else None,
            elastic=[shown.index(c) for c in listing.elastic if c in shown],
            width=width,
        ):
            click.echo(line)


def table_lines(
    cells: Sequence[Sequence[str]],
    *,
    headers: Sequence[str] | None,
    elastic: Sequence[int] = (),
    width: int | None = None,
) -> list[str]:
    """The table's lines, left-aligned, columns as wide as their content; with `width` (a
    terminal's), the `elastic` columns shortened, rightmost first, until the lines fit."""
    grid = [list(headers)] if headers is not None else []
    grid += [list(r) for r in cells]
    if not grid:
        return []
    widths = [max(len(r[i]) for r in grid) for i in range(len(grid[0]))]
    if width is not None:
        over = sum(widths) + len(GAP) * (len(widths) - 1) - width
        for i in sorted(elastic, reverse=True):
            if over <= 0:
                break
            cut = min(over, widths[i] - MIN_ELASTIC)
            if cut > 0:
                widths[i] -= cut
                over -= cut
    last = len(widths) - 1
    return [
        GAP.join(_fit(v, widths[i]) if i < last else _fit(v, widths[i]).rstrip() for i, v in enumerate(r))
        for r in grid
    ]


def cell(value: Any) -> str:
    """A value as a table shows it: `-` for none, an age for a time, one line for text."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return ago(value)
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def ago(when: datetime) -> str:
    """`5s`, `3m`, `2h`, `4d` ago, as kubectl prints ages."""
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def object_name(kind: str, group: str | None, name: str) -> str:
    """kubectl's ``-o name`` of an object: ``deployment.apps/web``, ``configmap/settings``."""
    return f"{kind.lower()}{'.' + group if group else ''}/{name}"


def _fit(value: str, width: int) -> str:
    if len(value) > width:
        return value[: max(0, width - 1)] + "…"
    return value.ljust(width)


def _plain(rows: Sequence[Row]) -> Any:
    """The rows as JSON types (times as ISO strings)."""
    return orjson.loads(_json(rows))


def _json(value: Any, *, indent: bool = False) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(
        list(value) if isinstance(value, Sequence) else value, option=option, default=str
    ).decode()


def _query(rows: Sequence[Row], expr: str) -> None:
    try:
        found = jmespath.search(expr, _plain(rows))
    except JMESPathError as err:
        raise ConfigError(f"-o jmespath={expr!r}: {_first_line(err)}") from None
    if found is None:
        return
    if isinstance(found, str):
        click.echo(found)
    elif isinstance(found, list) and all(isinstance(v, str | int | float | bool) or v is None for v in found):
        for v in found:
            click.echo("" if v is None else orjson.dumps(v).decode() if isinstance(v, bool) else str(v))
    else:
        click.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
