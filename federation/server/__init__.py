"""The controller's HTTP server (metrics, health, readiness) and its admission webhook."""

from federation.server.app import ReadyCheck, ServerConfig, build_app, serve, server_ssl_context
from federation.server.certs import CertPaths, generate_certs
from federation.server.webhook import (
    WEBHOOK_NAME,
    HubReader,
    KubeHubReader,
    ValidatingWebhook,
    Verdict,
    webhook_configuration,
)

__all__ = [
    "WEBHOOK_NAME",
    "CertPaths",
    "HubReader",
    "KubeHubReader",
    "ReadyCheck",
    "ServerConfig",
    "ValidatingWebhook",
    "Verdict",
    "build_app",
    "generate_certs",
    "serve",
    "server_ssl_context",
    "webhook_configuration",
]
