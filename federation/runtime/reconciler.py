"""What a reconcile is: a key in, the current state read, one step toward it, a `Result` out.

Reconciles are level-based: they are never told what happened, only which key may have changed.
So a reconcile can be retried, repeated or merged with others at will, and the error policy can
be the same for every loop (`federation.runtime.workers`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from federation.errors import FederationError

K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


@dataclass(frozen=True)
class Result:
    """`requeue_after`: look again after this many seconds even if nothing changes (a deletion
    waiting for its members, a coalesced write). None: only when something changes."""

    requeue_after: float | None = None


#: The common answer: done, until the next change.
DONE = Result()


class TerminalError(FederationError):
    """Retrying cannot help (the object itself is wrong, not the world around it): the key is
    reported once and forgotten until it changes again, instead of backing off forever."""


class Reconciler(Protocol[K_contra]):
    async def __call__(self, key: K_contra, /) -> Result | None:
        """Move `key` one step toward its desired state; None means `DONE`."""
        ...
