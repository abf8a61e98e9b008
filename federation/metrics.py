"""Every Prometheus metric of the controller, defined once.

Metric objects are process-global by prometheus-client's design (one registry per process);
they carry `cluster` (and `resource`) labels, so one process serving many clusters stays
readable. Names follow the controller literature (client-go's workqueue metrics,
controller-runtime's reconcile metrics) so existing dashboards and alerts apply.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# -- apiserver requests (federation.kube) -----------------------------------------------
KUBE_REQUESTS = Counter(
    "federation_kube_requests_total",
    "Requests to apiservers, by cluster, verb and HTTP code ('error' for no answer).",
    ["cluster", "verb", "code"],
)
KUBE_REQUEST_DURATION = Histogram(
    "federation_kube_request_duration_seconds",
    "Latency of apiserver requests (not watches), by cluster and verb.",
    ["cluster", "verb"],
    buckets=_LATENCY_BUCKETS,
)

KUBE_THROTTLED = Counter(
    "federation_kube_client_throttled_total",
    "Requests that waited for a token of their cluster's client-side rate limit (QPS/burst).",
    ["cluster"],
)
KUBE_THROTTLE_SECONDS = Counter(
    "federation_kube_client_throttle_seconds_total",
    "Seconds requests waited for their cluster's client-side rate limit or its Retry-After.",
    ["cluster", "reason"],
)

# -- the event loop (federation.runtime.looplag) ---------------------------------------------
EVENT_LOOP_LAG = Histogram(
    "federation_event_loop_lag_seconds",
    "How late the event loop woke a task whose sleep had ended: the process's own saturation.",
    buckets=_LATENCY_BUCKETS,
)

# -- informers (federation.informers) -----------------------------------------------------
WATCH_RESTARTS = Counter(
    "federation_informer_watch_restarts_total",
    "Watch connections re-opened, by reason (timeout, stall, error, gone).",
    ["cluster", "resource", "reason"],
)
RELISTS = Counter(
    "federation_informer_relists_total",
    "Full lists of a resource (the first one included), by cluster and resource.",
    ["cluster", "resource"],
)
WATCH_EVENTS = Counter(
    "resource_change_events_total",
    "Watch events received, by cluster, resource and type (ADDED, MODIFIED, DELETED, BOOKMARK).",
    ["cluster", "resource", "type"],
)
STORE_OBJECTS = Gauge(
    "federation_informer_store_objects",
    "Objects held in an informer's cache.",
    ["cluster", "resource"],
)
STORE_BYTES = Gauge(
    "federation_informer_store_bytes",
    "Estimated bytes of the Python objects an informer caches (sampled when scraped).",
    ["cluster", "resource"],
)
INFORMER_SYNCED = Gauge(
    "federation_informer_synced",
    "1 once an informer has completed its first list.",
    ["cluster", "resource"],
)
WATCHES_OPEN = Gauge(
    "federation_informer_watches_open",
    "Watch connections currently open, by cluster and resource.",
    ["cluster", "resource"],
)

# -- work queues (federation.informers.queue); names as client-go's workqueue metrics ------
QUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of a work queue.", ["name"])
QUEUE_ADDS = Counter("workqueue_adds_total", "Adds handled by a work queue.", ["name"])
QUEUE_LATENCY = Histogram(
    "workqueue_queue_duration_seconds",
    "How long an item stays in a queue before a worker takes it.",
    ["name"],
    buckets=_LATENCY_BUCKETS,
)
QUEUE_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long processing an item takes (get to done).",
    ["name"],
    buckets=_LATENCY_BUCKETS,
)
QUEUE_RETRIES = Counter("workqueue_retries_total", "Rate-limited re-adds (retries) of a queue.", ["name"])
QUEUE_UNFINISHED = Gauge(
    "workqueue_unfinished_work_seconds",
    "Seconds of work in progress not yet done (large values mean stuck workers).",
    ["name"],
)
QUEUE_LONGEST_RUNNING = Gauge(
    "workqueue_longest_running_processor_seconds",
    "Seconds the longest-running item of a queue has been processed.",
    ["name"],
)

# -- clusters (federation.clusters) -------------------------------------------------------
CLUSTER_READY = Gauge(
    "federation_cluster_ready", "1 when the member cluster's last /readyz probe succeeded.", ["cluster"]
)

# -- status up and spec down -------------------------------------------------------------
STATUS_WRITES = Counter("federation_hub_status_writes_total", "Aggregated status writes to hub templates.")
STATUS_WRITE_ERRORS = Counter(
    "federation_hub_status_write_errors_total",
    "Aggregated status writes the hub refused (rejected: 400/422), by reason.",
    ["reason"],
)
TLS_RELOADS = Counter(
    "federation_tls_reloads_total",
    "Serving certificate reloads after its files changed (result: ok, or error: the old pair stays).",
    ["result"],
)
MEMBER_WRITES = Counter(
    "federation_member_writes_total",
    "Writes sent to member apiservers (applies, deletes, patches).",
    ["cluster"],
)
APPLY_RESULTS = Counter(
    "federation_apply_results_total",
    "Works processed, by cluster and result (applied, conflict, failed, retry, deleted, orphaned).",
    ["cluster", "result"],
)
APPLY_DURATION = Histogram(
    "federation_apply_duration_seconds",
    "Time to process one work against a member.",
    ["cluster"],
    buckets=_LATENCY_BUCKETS,
)
PROPAGATION_LATENCY = Histogram(
    "federation_propagation_latency_seconds",
    "From a work becoming due (claimed) to the member write being acknowledged.",
    ["cluster"],
    buckets=_LATENCY_BUCKETS,
)
DRIFT_EVENTS = Counter(
    "federation_drift_corrected_total", "Member-side edits of managed fields restored.", ["cluster"]
)
CONFLICTS = Counter("federation_conflicts_total", "Works that met an object they may not touch.", ["cluster"])
CLAIM_ROUNDS = Counter(
    "federation_claim_rounds_total", "Times a propagator asked Postgres for due works.", ["cluster"]
)
CLAIMS_RENEWED = Counter(
    "federation_claims_renewed_total",
    "Leases of claimed works extended while they waited for a slow member (not re-claimed).",
    ["cluster"],
)
WORKS_BACKLOG = Gauge("federation_works_in_flight", "Works being applied right now.", ["cluster"])

# -- reconciles (controller-runtime's names) ----------------------------------------------
CHANGES_NUMBERED = Counter(
    "federation_changes_numbered_total", "Change-log rows given their position by this process's sequencer."
)
CHANGE_WATCHERS = Gauge(
    "federation_change_watchers", "Watchers following the change log through this process."
)
CHANGE_WATCHERS_DROPPED = Counter(
    "federation_change_watchers_dropped_total",
    "Watchers dropped because they read slower than the fleet changed.",
)
SINK_DELIVERED = Counter("federation_sink_events_total", "Events an event sink delivered.", ["sink"])
SINK_FAILURES = Counter("federation_sink_failures_total", "Failed deliveries of an event sink.", ["sink"])
SINK_LAG_CHANGES = Gauge(
    "federation_sink_lag_changes", "Changes in the log after an event sink's position.", ["sink"]
)
SINK_LAG_SECONDS = Gauge(
    "federation_sink_lag_seconds", "Age of the oldest change an event sink has yet to deliver.", ["sink"]
)
ROLLOUTS = Gauge(
    "federation_rollouts",
    "Templates by the phase of their staged rollout (this leader's view; Complete: nothing in progress).",
    ["phase"],
)
ROLLOUT_EVENTS = Counter(
    "federation_rollout_events_total",
    "Staged rollout transitions: RolloutStarted, RolloutStagePassed, RolloutComplete, RolloutHalted, "
    "RolloutRolledBack.",
    ["type"],
)
RECONCILES = Counter("reconciliation_total", "Reconciles by controller and result.", ["controller", "result"])
RECONCILE_ERRORS = Counter("reconciliation_errors_total", "Reconciles that failed.", ["controller"])
RECONCILE_DURATION = Histogram(
    "reconciliation_duration_seconds", "Reconcile duration.", ["controller"], buckets=_LATENCY_BUCKETS
)
TASK_RESTARTS = Counter(
    "federation_task_restarts_total",
    "Long-running tasks (a member's propagator, ...) restarted after a crash.",
    ["task"],
)

# -- the level-based sweep (federation.hub.sweep) ---------------------------------------------
SWEEP_RUNS = Counter(
    "federation_sweep_runs_total", "Sweeps of works and member copies, by result.", ["result"]
)
SWEEP_FINDINGS = Counter(
    "federation_sweep_findings_total",
    "What sweeps found: works whose template is gone (template_gone) or whose cluster is no longer "
    "chosen (not_placed), member copies with our label and no work (unrecorded_copy), and those "
    "removed (copy_removed).",
    ["finding"],
)

# -- the process ---------------------------------------------------------------------------
GC_PAUSES = Histogram(
    "federation_gc_pause_seconds",
    "Python garbage-collector pauses by generation (a long gen-2 pause stalls every loop).",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def observe_gc() -> None:
    """Time every collection (installed once by `federation run`)."""
    import gc
    import time

    started: dict[int, float] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        gen = info.get("generation", 0)
        if phase == "start":
            started[gen] = time.perf_counter()
        elif gen in started:
            GC_PAUSES.labels(str(gen)).observe(time.perf_counter() - started.pop(gen))

    gc.callbacks.append(callback)


# -- the admission webhook (federation.server.webhook) ----------------------------------------
WEBHOOK_REQUESTS = Counter(
    "federation_webhook_requests_total",
    "AdmissionReviews answered, by kind of object ('other' for kinds not ours) and verdict.",
    ["kind", "allowed"],
)
WEBHOOK_REQUEST_DURATION = Histogram(
    "federation_webhook_request_duration_seconds",
    "Time to answer an AdmissionReview (hub reads included), by kind.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
WEBHOOK_CHECKS_SKIPPED = Counter(
    "federation_webhook_checks_skipped_total",
    "Objects admitted without a check because it would cost too much: reason 'too_large' (the "
    "patch check's work cap) or 'timed_out' (the review's budget), by kind.",
    ["kind", "reason"],
)
WEBHOOK_HUB_READS = Counter(
    "federation_webhook_hub_reads_total",
    "Reads of the hub by the admission webhook, past its cache and limits, by resource read.",
    ["resource"],
)
HTTP_REJECTED = Counter(
    "federation_http_rejected_total",
    "Requests refused and connections closed by the server, by reason: the status answered "
    "('400', '401', '403', '413', '429', '503', ...), 'malformed' (refused by the HTTP parser: "
    "a request line or header too long or not HTTP) or 'header_timeout' (closed).",
    ["reason"],
)
WEBHOOK_CHECK_ERRORS = Counter(
    "federation_webhook_check_errors_total",
    "Admission checks skipped because reading the hub failed (the object was admitted), by kind.",
    ["kind"],
)

# -- members sharded over replicas (federation.propagate.shard) ------------------------------
LEASES_HELD = Gauge(
    "federation_cluster_leases_held",
    "Member clusters whose lease this replica holds (it runs their propagators).",
    ["replica"],
)
LEASE_CHANGES = Counter(
    "federation_cluster_lease_changes_total",
    "Leases taken, released (handed over) or lost (not renewed in time), by cluster.",
    ["cluster", "change"],
)
LEASE_HANDOVER = Histogram(
    "federation_cluster_lease_handover_seconds",
    "From deciding to hand a member over to its lease released: its propagator stopped (the "
    "applies in flight finished and recorded) and its claims given back.",
    buckets=_LATENCY_BUCKETS,
)
LIVE_REPLICAS = Gauge("federation_controller_replicas", "Live controller replicas, as this one sees them.")
