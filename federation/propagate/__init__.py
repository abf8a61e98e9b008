"""Spec down: apply works to member clusters, detect conflicts and drift, delete or orphan."""

from federation.propagate.drift import (
    ABSENT,
    bound,
    differences,
    project,
    project_object,
    projection_hash,
    redact_diff,
)

__all__ = ["ABSENT", "bound", "differences", "project", "project_object", "projection_hash", "redact_diff"]
