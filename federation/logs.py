"""Structured logs: JSON for machines, a compact console format for people.

Every log call of the controller passes the object it is about as `extra` (cluster, namespace,
name, kind, resource); both formats print those fields, so one grep finds everything that
happened to one object in one cluster.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

#: The reconcile a log line belongs to (set by the work loops; printed by both formats).
RECONCILE_ID: contextvars.ContextVar[str] = contextvars.ContextVar("reconcile_id", default="")


class _ContextFilter(logging.Filter):
    """Adds the current reconcile id to every record, so one reconcile's lines can be grepped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "reconcile_id", None):
            record.reconcile_id = RECONCILE_ID.get()
        return True


#: `extra` keys → the field name printed. (`name` itself is taken by LogRecord: the logger's name.)
CONTEXT_FIELDS = {
    "cluster": "cluster",
    "namespace": "namespace",
    "object_name": "name",
    "kind": "kind",
    "resource": "resource",
    "reconcile_id": "reconcile_id",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for attr, field in CONTEXT_FIELDS.items():
            value = getattr(record, attr, None)
            if value not in (None, ""):
                out[field] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        context = " ".join(
            f"{field}={getattr(record, attr)}"
            for attr, field in CONTEXT_FIELDS.items()
            if getattr(record, attr, None) not in (None, "")
        )
        line = (
            f"{stamp} {record.levelname[0]} {record.name.removeprefix('federation.')}: {record.getMessage()}"
        )
        if context:
            line += f"  [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(*, fmt: str = "console", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries' chatter stays at warning unless asked for.
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
