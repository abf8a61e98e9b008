"""Spec down: apply works to member clusters, detect conflicts and drift, delete or orphan."""

from federation.propagate.drift import ABSENT, differences, project, project_object, projection_hash

__all__ = ["ABSENT", "differences", "project", "project_object", "projection_hash"]
