"""federation: a multi-cluster Kubernetes federation controller.

A hub cluster holds resource templates and placement policies; the controller decides which
member clusters receive each resource, writes a translated copy into each, and aggregates the
members' status back, with its per-cluster state in Postgres. See README.md.
"""

from federation.errors import FederationError

__version__ = "0.1.0"

__all__ = ["FederationError", "__version__"]
