"""Structured logs carry the object and the reconcile id; tracing is a no-op unless enabled."""

from __future__ import annotations

import logging

import orjson

from federation import tracing
from federation.logs import RECONCILE_ID, ConsoleFormatter, JsonFormatter, _ContextFilter


def record(**extra: str) -> logging.LogRecord:
    rec = logging.LogRecord(
        "federation.hub.controller", logging.WARNING, __file__, 1, "reconcile %s failed", ("x",), None
    )
    for k, v in extra.items():
        setattr(rec, k, v)
    _ContextFilter().filter(rec)
    return rec


def test_json_logs_name_cluster_namespace_object_and_reconcile() -> None:
    token = RECONCILE_ID.set("abc123")
    try:
        line = JsonFormatter().format(
            record(cluster="member-1", namespace="shop", object_name="web", kind="Deployment")
        )
    finally:
        RECONCILE_ID.reset(token)
    out = orjson.loads(line)
    assert out["msg"] == "reconcile x failed" and out["level"] == "warning"
    assert (out["cluster"], out["namespace"], out["name"], out["kind"], out["reconcile_id"]) == (
        "member-1", "shop", "web", "Deployment", "abc123",
    )  # fmt: skip


def test_console_logs_print_the_context_fields() -> None:
    line = ConsoleFormatter().format(record(cluster="member-2", object_name="api"))
    assert "hub.controller: reconcile x failed" in line
    assert "[cluster=member-2 name=api]" in line


def test_span_is_a_no_op_without_tracing() -> None:
    ran = []
    with tracing.span("reconcile", kind="Deployment"):
        ran.append(True)
    assert ran == [True]
