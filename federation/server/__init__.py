"""The controller's HTTP server: metrics, health, readiness, the read-only dashboard API, the
status page and the admission webhook (see `federation.server.app`)."""

from federation.server.access import AccessPolicy, ApiError
from federation.server.api import add_api_routes
from federation.server.app import ReadyCheck, ServerConfig, build_app, serve, server_ssl_context
from federation.server.certs import CertPaths, generate_certs
from federation.server.connections import Timeouts
from federation.server.hubreads import HubReader, KubeHubReader
from federation.server.matrix import build_matrix, phase_of, reason_of
from federation.server.models import Phase, resource_path
from federation.server.openapi import build_document
from federation.server.query import parse_query
from federation.server.review import Verdict
from federation.server.webhook import ValidatingWebhook, WebhookSettings
from federation.server.webhookconfig import WEBHOOK_NAME, webhook_configuration

__all__ = [
    "WEBHOOK_NAME",
    "AccessPolicy",
    "ApiError",
    "CertPaths",
    "HubReader",
    "KubeHubReader",
    "Phase",
    "ReadyCheck",
    "ServerConfig",
    "Timeouts",
    "ValidatingWebhook",
    "Verdict",
    "WebhookSettings",
    "add_api_routes",
    "build_app",
    "build_document",
    "build_matrix",
    "generate_certs",
    "parse_query",
    "phase_of",
    "reason_of",
    "resource_path",
    "serve",
    "server_ssl_context",
    "webhook_configuration",
]
