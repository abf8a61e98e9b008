"""The Grafana dashboard queries only the views, and every query runs on a real fleet's data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from federation.store import Store
from federation.store.models import VIEW_NAMES
from tests.integration.store.factories import build_fleet
from tests.storehelpers import query

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "federation.json"


def panel_queries() -> dict[str, str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return {panel["title"]: target["rawSql"] for panel in dashboard["panels"] for target in panel["targets"]}


def test_every_panel_reads_only_the_views() -> None:
    queries = panel_queries()
    assert len(queries) >= 10
    for title, sql in queries.items():
        relations = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", sql, flags=re.IGNORECASE))
        assert relations, title
        assert relations <= VIEW_NAMES, f"{title}: {relations - VIEW_NAMES}"


async def test_every_panel_query_runs_and_counts_right(store: Store, database_url: str) -> None:
    await build_fleet(store)
    results = {title: await query(database_url, sql) for title, sql in panel_queries().items()}
    for title, rows in results.items():
        assert rows, f"{title}: no rows"
    assert results["Clusters ready"][0]["ready"] == 2
    assert results["Clusters not ready"][0]["not_ready"] == 1
    assert results["Resources fully applied"][0]["applied"] == 0
    assert results["Conflicts"][0]["conflicts"] == 1
    assert results["Failed applies"][0]["failed"] == 1
    assert results["Drift corrected (1 h)"][0]["drift"] == 2
    by_state = {r["state"]: r["works"] for r in results["Works by state"]}
    assert by_state["applied"] == 3 and by_state["conflict"] == 1 and by_state["deleting"] == 1
    health = {r["health"]: r["resources"] for r in results["Worst health of resources"]}
    assert health == {"Degraded": 1, "Unknown": 1, "not placed": 1}
    assert [r["name"] for r in results["Resources"]][:1] == ["config"]  # Degraded first
