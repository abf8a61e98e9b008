"""The controller runtime: the reconcile contract, written once, that every keyed loop uses.

After controller-runtime's `reconcile.Reconciler` and `internal/controller`: a loop is a
`WorkQueue` of keys plus a `Reconciler`; `run_workers` pulls keys and applies one error policy
everywhere (metrics, a log line with the key, per-key backoff, the terminal path). `supervise`
keeps one long-running task (a member's propagator) alive without letting its crash end its
siblings.
"""

from federation.runtime.reconciler import Reconciler, Result, TerminalError
from federation.runtime.supervise import supervise
from federation.runtime.workers import ErrorHook, KeyDescriber, run_workers

__all__ = [
    "ErrorHook",
    "KeyDescriber",
    "Reconciler",
    "Result",
    "TerminalError",
    "run_workers",
    "supervise",
]
