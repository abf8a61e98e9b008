"""The leader's sequencer: gives the change log's new rows their positions, in commit order.

Postgres does the numbering (`federation_sequence_changes`, migration 0009: under an advisory
lock, only rows of transactions older than every running one); this loop only calls it — at
once again while it finds a full batch (a bulk rollout), every `interval` seconds otherwise. Any
number of callers is safe (the lock serialises them), so a CLI following the log with no
controller running numbers rows itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from federation.errors import StoreError
from federation.metrics import CHANGES_NUMBERED
from federation.store import Store

log = logging.getLogger(__name__)


@dataclass
class SequencerSettings:
    interval: float = 0.2
    """Seconds between rounds when the last one found less than a batch: the log's added latency."""
    batch: int = 5000
    retry: float = 2.0
    """Seconds to wait after the store failed a round."""


class ChangeSequencer:
    def __init__(
        self,
        store: Store,
        settings: SequencerSettings | None = None,
        *,
        on_numbered: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.settings = settings or SequencerSettings()
        self.on_numbered = on_numbered

    async def round(self) -> int:
        numbered = await self.store.sequence_changes(self.settings.batch)
        CHANGES_NUMBERED.inc(numbered)
        if numbered:
            self.on_numbered()
        return numbered

    async def run(self) -> None:
        while True:
            try:
                numbered = await self.round()
            except StoreError as exc:
                log.warning("numbering the change log failed (retrying in %gs): %s", self.settings.retry, exc)
                await anyio.sleep(self.settings.retry)
                continue
            if numbered < self.settings.batch:
                await anyio.sleep(self.settings.interval)
