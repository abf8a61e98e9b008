"""The fleet's change log, read: numbering it (the leader's sequencer), following it (a feed per
process that fans out to watchers), and filtering it the same way everywhere.

The log itself is written by Postgres triggers in the transactions that change state
(migration 0009; `federation.store.repo.changes`), so nothing here can lose or invent a change:
readers only follow positions.
"""

from federation.changes.feed import ChangeFeed, Subscription, WatcherDroppedError
from federation.changes.filters import ChangeFilter
from federation.changes.sequencer import ChangeSequencer

__all__ = ["ChangeFeed", "ChangeFilter", "ChangeSequencer", "Subscription", "WatcherDroppedError"]
