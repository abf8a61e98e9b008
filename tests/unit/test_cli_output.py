"""The listings' output: tables that never cut a value off a terminal, and the script formats."""

from __future__ import annotations

import json

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.cli.demo import Cell, Lines, Row
from federation.cli.output import MIN_ELASTIC, Listing, Output, OutputType, emit, object_name, table_lines
from federation.errors import ConfigError

LISTING = Listing(
    columns=("kind", "name", "message"),
    wide=("extra",),
    elastic=("message",),
    name=lambda r: object_name(r["kind"], r.get("group"), r["name"]),
)
ROWS = [
    {"kind": "Deployment", "group": "apps", "name": "web-" + "x" * 70, "message": "m" * 50, "extra": 1},
    {"kind": "ConfigMap", "group": None, "name": "settings", "message": None, "extra": None},
]


def test_a_table_is_as_wide_as_its_content_when_not_on_a_terminal() -> None:
    lines = table_lines([["a", "b" * 100], ["ccc", "d"]], headers=["X", "Y"])
    assert lines == ["X     Y", "a     " + "b" * 100, "ccc   d"]


def test_on_a_narrow_terminal_only_elastic_columns_shorten() -> None:
    name, message = "n" * 40, "m" * 60
    lines = table_lines([[name, message]], headers=["NAME", "MESSAGE"], elastic=[1], width=80)
    assert lines[1].startswith(name + "   ")
    assert len(lines[1]) == 80 and lines[1].endswith("…")
    # Not below MIN_ELASTIC: a name too long for the terminal is left for it to wrap.
    lines = table_lines([["n" * 100, message]], headers=None, elastic=[1], width=80)
    assert lines[0] == "n" * 100 + "   " + "m" * (MIN_ELASTIC - 1) + "…"


@given(
    st.lists(st.lists(st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=30),
                      min_size=3, max_size=3), max_size=8),
    st.integers(20, 200),
)  # fmt: skip
def test_names_are_never_cut_whatever_the_width(cells: list[list[str]], width: int) -> None:
    lines = table_lines(cells, headers=["NAME", "KIND", "MESSAGE"], elastic=[2], width=width)
    grid = [["NAME", "KIND", "MESSAGE"], *cells]
    natural = sum(max(len(r[i]) for r in grid) for i in range(3)) + 6
    for row, line in zip(cells, lines[1:], strict=True):
        assert line.startswith(row[0]), (row, line)
        assert row[1] in line
        if natural <= width or len(row[2]) <= MIN_ELASTIC:
            assert line.endswith(row[2].rstrip()), (row, line)


def test_output_type_parses_formats_and_jmespath() -> None:
    t = OutputType()
    assert t.convert("wide", None, None) == Output("wide")
    assert t.convert("jmespath=[].name", None, None) == Output("jmespath", "[].name")
    with pytest.raises(click.BadParameter, match="not a JMESPath expression"):
        t.convert("jmespath=[?", None, None)
    with pytest.raises(click.BadParameter, match="use -o jmespath=EXPR"):
        t.convert("jsonpath={.items[*].name}", None, None)
    with pytest.raises(click.BadParameter, match="not one of"):
        t.convert("tabel", None, None)


def test_emit_formats(capsys: pytest.CaptureFixture[str]) -> None:
    emit(ROWS, LISTING, Output("name"))
    assert capsys.readouterr().out.splitlines() == ["deployment.apps/web-" + "x" * 70, "configmap/settings"]
    emit(ROWS, LISTING, Output("table", headers=False))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("Deployment   web-" + "x" * 70) and out[1].endswith("-")
    emit(ROWS, LISTING, Output("wide"))
    assert capsys.readouterr().out.splitlines()[0].split() == ["KIND", "NAME", "MESSAGE", "EXTRA"]
    emit(ROWS, LISTING, Output("jmespath", "[?message==null].name"))
    assert capsys.readouterr().out == "settings\n"
    emit(ROWS, LISTING, Output("jmespath", "[0].{k: kind, e: extra}"))
    assert json.loads(capsys.readouterr().out) == {"k": "Deployment", "e": 1}
    emit(ROWS, LISTING, Output("json"))
    assert json.loads(capsys.readouterr().out)[1]["name"] == "settings"


def test_a_query_that_fails_on_the_data_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="jmespath"):
        emit(ROWS, LISTING, Output("jmespath", "[].name | sum(@)"))


def test_the_demo_log_prints_each_change_and_each_convergence_once() -> None:
    lines = Lines()
    pending = [Row("Deployment shop/web", {"eu-west": Cell("pending Unknown", False, "yellow")})]
    first = lines.changes(pending, "hub: 0/2", [])
    assert first[1:] == ["Deployment shop/web in eu-west: pending Unknown", "hub: 0/2"]
    assert lines.changes(pending, "hub: 0/2", []) == []
    done = [Row("Deployment shop/web", {"eu-west": Cell("applied 2/2 Healthy", True, "green")})]
    note = ("converged", "converged in 3.0s", "bold green")
    assert lines.changes(done, "hub: 2/2", [note]) == [
        "Deployment shop/web in eu-west: applied 2/2 Healthy",
        "converged: Deployment shop/web in eu-west",
        "hub: 2/2",
        "converged in 3.0s",
    ]
    assert lines.changes(done, "hub: 2/2", [("converged", "converged in 4.0s", "")]) == []


def test_completion_scripts_set_the_variable_the_program_completes_under() -> None:
    from click.testing import CliRunner

    from federation.cli import main
    from federation.cli.completion import complete_var

    for prog, var in (
        ("federation", "_FEDERATION_COMPLETE"),
        ("kubectl federation", "_KUBECTL_FEDERATION_COMPLETE"),
    ):
        assert complete_var(prog) == var
        script = CliRunner().invoke(main, ["completion", "bash"], prog_name=prog)
        assert script.exit_code == 0 and f"{var}=bash_complete" in script.output, script.output
