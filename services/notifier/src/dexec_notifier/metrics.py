"""The notifier's own metrics; the shared ones (events consumed, backlog, HTTP, stage durations)
are in `dexec.metrics`."""

from prometheus_client import Counter, Gauge, Histogram

from dexec.metrics import DURATION_BUCKETS

WS_CONNECTIONS = Gauge("dexec_ws_connections", "Open WebSocket connections")
WS_MESSAGES = Counter("dexec_ws_messages_sent_total", "Event messages sent to WebSocket clients")
RECORDED_EVENTS = Counter("dexec_recorder_events_total", "Events newly written to Postgres")
RECORDER_BATCH_SIZE = Histogram(
    "dexec_recorder_batch_size",
    "Events per batch the recorder wrote to Postgres in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000),
)
RECORDER_LAG = Histogram(
    "dexec_recorder_lag_seconds",
    "From an event happening (its `at`) to its being committed to Postgres",
    buckets=DURATION_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "dexec_webhook_deliveries_total", "Webhook events delivered or given up on", ["outcome"]
)
