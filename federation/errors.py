"""The exception tree of `federation`.

Errors of our dependencies (kubernetes-asyncio, asyncpg, subprocess, the Go toolchain) are
translated into these at the boundary (``raise X(...) from exc``) so that callers handle one
small, stable tree and every message names the object and field involved::

    FederationError                    everything we raise on purpose
    ├── ConfigError                    bad input from a person: a flag, a file, a policy
    │   └── InvalidObjectError         a manifest or policy that fails validation (names the field)
    │       └── OverrideError          an override rule that cannot be applied to a resource on a cluster
    │           └── IdentityError      an override that would change what the copy is (its identity, ...)
    ├── DevFleetError                  the local fleet (control planes, embedded Postgres)
    │   ├── ToolchainMissingError      Go (or another build tool) is not installed
    │   ├── BuildError                 the control-plane binary failed to build
    │   ├── PortInUseError             a port the fleet needs is taken
    │   ├── StateDirBusyError          another fleet already runs on that state directory
    │   └── StartupError               a process did not become ready in time (carries its log tail)
    ├── KubeError                      talking to a cluster's apiserver
    │   ├── ClusterUnreachableError    connection refused, TLS failure, timeout
    │   │   └── WatchStalledError      a watch delivered nothing (not even a bookmark) in time
    │   └── ApiError                   the apiserver answered with an error status
    │       ├── NotFoundError          404
    │       │   └── KindNotServedError no resource of the cluster serves the kind (CRD missing)
    │       ├── ConflictError          409 (resourceVersion or field-manager conflict)
    │       ├── GoneError              410: the resourceVersion is too old; relist
    │       └── InvalidError           422: the object was rejected (message names the field)
    ├── StoreError                     the Postgres state store
    │   ├── StoreUnavailableError      the database cannot be reached (retryable)
    │   ├── VersionConflictError       a row changed since it was read (optimistic concurrency)
    │   └── SealingError               a sensitive value cannot be sealed or opened (names the row)
    │       ├── SealingUnavailableError  no encryption key: the value would be stored in plaintext
    │       └── UnsealError            a sealed value does not open: key missing or wrong, row altered
    └── CheckBudgetError               a check would cost more than it may (the webhook admits unchecked)
        ├── CheckTooLargeError         more work units than its cap
        └── CheckTimedOutError         past its deadline

Every class is importable from ``federation.errors``; the CLI prints ``str(err)`` as one line
plus the ``hint`` when one is set.
"""

from __future__ import annotations


class FederationError(Exception):
    """Base of every error we raise on purpose.

    ``hint`` is an optional next step for a person (shown by the CLI under the message).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(FederationError):
    """Bad input from a person: a flag, a file, a policy."""


class InvalidObjectError(ConfigError):
    """A manifest or policy that fails validation; the message names the object and field."""


class OverrideError(InvalidObjectError):
    """An override rule cannot be applied (a JSON patch path is missing, a test op fails, an image
    reference is bad); the message names the policy, rule, operation, resource and cluster."""

    def __init__(self, message: str, *, policy: str, rule_index: int, cluster: str) -> None:
        super().__init__(message)
        self.policy = policy
        self.rule_index = rule_index
        self.cluster = cluster


class IdentityError(OverrideError):
    """An override would change what a copy *is* — its group, kind, namespace or name, metadata
    the hub owns, the ownership stamp, or (from a namespaced policy) what an RBAC object grants.
    Refused where the copy is made; the work of that cluster fails with this message.
    ``field`` is the field at fault (``kind``, ``metadata.namespace``, ...) and ``guard`` the
    rule's reason code (`federation.translate.identity.Guard`)."""

    def __init__(
        self, message: str, *, policy: str, rule_index: int, cluster: str, field: str, guard: str
    ) -> None:
        super().__init__(message, policy=policy, rule_index=rule_index, cluster=cluster)
        self.field = field
        self.guard = guard


class DevFleetError(FederationError):
    """Something went wrong with the local fleet (control planes, embedded Postgres)."""


class ToolchainMissingError(DevFleetError):
    """A build tool the local fleet needs (Go) is not installed."""


class BuildError(DevFleetError):
    """The control-plane binary failed to build; the message carries the compiler output."""


class PortInUseError(DevFleetError):
    """A port the fleet was asked to use is taken by another process."""


class StateDirBusyError(DevFleetError):
    """Another fleet is already running on the same state directory."""


class StartupError(DevFleetError):
    """A process of the fleet did not become ready; the message carries the tail of its log."""


class KubeError(FederationError):
    """Talking to a cluster's apiserver failed."""

    def __init__(self, message: str, *, cluster: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cluster = cluster


class ClusterUnreachableError(KubeError):
    """The apiserver could not be reached (refused, TLS failure, timeout): retry later."""


class WatchStalledError(ClusterUnreachableError):
    """A watch stream went silent past its deadline (no event, no bookmark): re-open it."""


class ApiError(KubeError):
    """The apiserver answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str = "",
        cluster: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, cluster=cluster, hint=hint)
        self.status = status
        self.reason = reason


class NotFoundError(ApiError):
    """404: the object or resource does not exist."""


class KindNotServedError(NotFoundError):
    """No resource of the cluster serves the kind (its CRD is not installed, or not that API
    version): unlike a missing object, it may appear later, so an apply is retried, and a copy
    to delete is already gone with its kind. ``gvk`` is ``(api_version, kind)``."""

    def __init__(self, message: str, *, api_version: str, kind: str, cluster: str | None = None) -> None:
        super().__init__(message, status=404, reason="NotFound", cluster=cluster)
        self.api_version = api_version
        self.kind = kind


class ConflictError(ApiError):
    """409: a resourceVersion precondition failed or another field manager owns the field."""


class GoneError(ApiError):
    """410: the requested resourceVersion is too old (compacted); the caller must relist."""


class InvalidError(ApiError):
    """422: the apiserver rejected the object; the message names the field."""


class StoreError(FederationError):
    """The Postgres state store failed."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached right now; the operation can be retried."""


class VersionConflictError(StoreError):
    """A version-checked write found the row changed (or gone) since it was read: re-read it.

    ``table`` and ``key`` name the row; ``expected`` is the version the writer held and
    ``actual`` the version found (None when the row no longer exists).
    """

    def __init__(self, message: str, *, table: str, key: str, expected: int, actual: int | None) -> None:
        super().__init__(message)
        self.table = table
        self.key = key
        self.expected = expected
        self.actual = actual


class SealingError(StoreError):
    """A sensitive value of a store row (a Secret's data, a field marked sensitive) cannot be
    sealed or opened; the message names the table and row, never the value."""


class SealingUnavailableError(SealingError):
    """The row holds a sensitive value and the controller has no encryption key, so storing it
    would put the value in Postgres in plaintext: refused (see --encryption-key-file)."""


class UnsealError(SealingError):
    """A sealed value does not open: it was sealed with a key the key file does not hold, the
    key is wrong, or the row was altered (every sealed value is bound to its row and field).

    ``key_id`` is the id of the key the value was sealed with."""

    def __init__(self, message: str, *, key_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key_id = key_id


class CheckBudgetError(FederationError):
    """A check stopped before its verdict because it would cost more than it may: the caller
    (the admission webhook) admits the object unchecked, with a warning saying so."""


class CheckTooLargeError(CheckBudgetError):
    """The check needs more work units than its cap (the input is too large to judge here)."""


class CheckTimedOutError(CheckBudgetError):
    """The check ran past its deadline."""
