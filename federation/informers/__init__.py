"""The watch machinery the controller stands on, after client-go's `tools/cache` and
`util/workqueue`: reflector (list + watch, relist on 410, backoff, stall detection), store with
indexers, informers with handlers and resync, a shared factory (one watch per cluster and
resource), and the rate-limited work queue.
"""

from federation.informers.backoff import Backoff
from federation.informers.clock import Clock, FakeClock, RealClock
from federation.informers.factory import InformerFactory
from federation.informers.informer import EventHandler, Handlers, Informer, InformerKey
from federation.informers.queue import Priority, QueueShutDown, WorkQueue
from federation.informers.ratelimit import (
    ItemExponentialLimiter,
    MaxOfLimiter,
    RateLimiter,
    TokenBucketLimiter,
    default_rate_limiter,
)
from federation.informers.reflector import Reflector, ReflectorSink
from federation.informers.store import NAMESPACE_INDEX, Indexer, IndexFunc, by_label, by_namespace

__all__ = [
    "NAMESPACE_INDEX",
    "Backoff",
    "Clock",
    "EventHandler",
    "FakeClock",
    "Handlers",
    "IndexFunc",
    "Indexer",
    "Informer",
    "InformerFactory",
    "InformerKey",
    "ItemExponentialLimiter",
    "MaxOfLimiter",
    "Priority",
    "QueueShutDown",
    "RateLimiter",
    "RealClock",
    "Reflector",
    "ReflectorSink",
    "TokenBucketLimiter",
    "WorkQueue",
    "by_label",
    "by_namespace",
    "default_rate_limiter",
]
