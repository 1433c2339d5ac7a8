"""The notifier's own metrics; the shared ones (events consumed, backlog, HTTP, stage durations)
are in `dexec.metrics`."""

from prometheus_client import Counter, Gauge, Histogram

from dexec.metrics import DURATION_BUCKETS

WS_CONNECTIONS = Gauge("dexec_ws_connections", "Open WebSocket connections")
WS_MESSAGES = Counter("dexec_ws_messages_sent_total", "Event messages sent to WebSocket clients")
WS_FRAMES = Counter(
    "dexec_ws_frames_sent_total",
    "WebSocket frames sent (with ?batch=true one frame may carry many events; errors count too)",
)
RECORDED_EVENTS = Counter("dexec_recorder_events_total", "Events newly written to Postgres")
RECORDER_BATCH_SIZE = Histogram(
    "dexec_recorder_batch_size",
    "Events per batch the recorder wrote to Postgres in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000),
)
RECORDER_REJECTED = Counter(
    "dexec_recorder_rejected_events_total",
    "Messages the recorder gave up on (terminated, never redelivered): `malformed` (not an order"
    " event) or `refused` (a value in it cannot be stored in Postgres)",
    ["reason"],
)
RECORDER_LAG = Histogram(
    "dexec_recorder_lag_seconds",
    "From an event happening (its `at`) to its being committed to Postgres",
    buckets=DURATION_BUCKETS,
)
DB_FAILURES = Counter(
    "dexec_notifier_db_failures_total",
    "Postgres calls the notifier gave up on, failed or unanswered within DEXEC_DB_TIMEOUT_SECONDS:"
    " `record` (a recorder batch), `claim`, `check` and `update` (the webhook outbox)",
    ["call"],
)
WEBHOOK_DELIVERIES = Counter(
    "dexec_webhook_deliveries_total",
    "Webhook events delivered, given up on (dropped), or dropped as their target is refused",
    ["outcome"],
)
WEBHOOK_HOLDS = Counter(
    "dexec_webhook_holds_total",
    "Webhook events put back, not sent, because an earlier event of their order is in the"
    " stream but not recorded yet (another recorder replica's batch has yet to commit)",
)
WS_BACKFILLS = Counter(
    "dexec_ws_backfills_total",
    "WebSocket subscriptions' backfills, by where they were read (live cache or stream)",
    ["source"],
)
LIVE_CACHE_BYTES = Gauge(
    "dexec_live_cache_bytes", "Approximate bytes held by the live hub's backfill cache"
)
LIVE_CACHE_ORDERS = Gauge("dexec_live_cache_orders", "Orders in the live hub's backfill cache")
LIVE_CACHE_EVICTIONS = Counter(
    "dexec_live_cache_evictions_total",
    "Orders dropped from the backfill cache (terminal: after their end; bytes: over the cap;"
    " gap: the live consumer's delivery was not contiguous)",
    ["reason"],
)
LIVE_PENDING_BYTES = Gauge(
    "dexec_live_pending_bytes",
    "Bytes of stream messages the live consumer has received and the hub not yet handled"
    " (held in the NATS client: what grows when the notifier falls behind the stream)",
)
LIVE_CONSUMER_GAPS = Counter(
    "dexec_live_consumer_gaps_total",
    "Times the live consumer's delivery did not follow on from the last message it delivered",
)
# Every known label value exported from the start at 0, so rates exist before the first one.
for _source in ("cache", "stream"):
    WS_BACKFILLS.labels(source=_source)
for _reason in ("terminal", "bytes", "gap"):
    LIVE_CACHE_EVICTIONS.labels(reason=_reason)
for _reason in ("malformed", "refused"):
    RECORDER_REJECTED.labels(reason=_reason)
