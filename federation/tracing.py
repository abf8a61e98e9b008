"""Optional OpenTelemetry traces of reconciles and applies (off by default, no hard dependency).

`federation run --trace` turns them on when the `opentelemetry-sdk` package is installed; the
exporter is configured the standard way (OTEL_EXPORTER_OTLP_ENDPOINT etc., with
`opentelemetry-exporter-otlp`), or spans go to stderr with OTEL_TRACES_EXPORTER=console.
Without `--trace`, `span()` is a no-op that costs one attribute lookup.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_tracer: Any = None


def enable() -> bool:
    """Install a tracer provider; returns False (and says why) when OpenTelemetry is missing."""
    global _tracer
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("--trace: opentelemetry-sdk is not installed (pip install opentelemetry-sdk); no traces")
        return False
    provider = TracerProvider()
    exporter: Any
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    except ImportError:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("federation")
    return True


@contextlib.contextmanager
def span(span_name: str, /, **attributes: str | int | bool) -> Iterator[None]:
    """A span around a reconcile or an apply, when tracing is on."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(span_name, attributes=attributes):
        yield
