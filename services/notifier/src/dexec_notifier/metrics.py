from prometheus_client import Counter, Gauge

WS_CONNECTIONS = Gauge("dexec_ws_connections", "Open WebSocket connections")
WS_MESSAGES = Counter("dexec_ws_messages_sent_total", "Event messages sent to WebSocket clients")
RECORDED_EVENTS = Counter("dexec_recorder_events_total", "Events newly written to Postgres")
WEBHOOK_DELIVERIES = Counter(
    "dexec_webhook_deliveries_total", "Webhook events delivered or given up on", ["outcome"]
)
