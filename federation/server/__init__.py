"""The controller's HTTP server: metrics, health, readiness, the read-only dashboard API and the
status page (see `federation.server.app`)."""

from federation.server.access import AccessPolicy, ApiError
from federation.server.api import add_api_routes, parse_query
from federation.server.app import ReadyCheck, ServerConfig, build_app, serve
from federation.server.matrix import build_matrix, phase_of, reason_of
from federation.server.models import Phase, resource_path
from federation.server.openapi import build_document

__all__ = [
    "AccessPolicy",
    "ApiError",
    "Phase",
    "ReadyCheck",
    "ServerConfig",
    "add_api_routes",
    "build_app",
    "build_document",
    "build_matrix",
    "parse_query",
    "phase_of",
    "reason_of",
    "resource_path",
    "serve",
]
