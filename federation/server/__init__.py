"""The controller's HTTP server (metrics, health, readiness)."""

from federation.server.app import ReadyCheck, ServerConfig, build_app, serve

__all__ = ["ReadyCheck", "ServerConfig", "build_app", "serve"]
