from prometheus_client import Counter, Gauge

ORDERS_ACCEPTED = Counter("dexec_orders_accepted_total", "Orders accepted by the API")
ORDERS_REJECTED = Counter(
    "dexec_orders_rejected_total", "Order submissions refused by the API", ["reason"]
)
ROUTER_BACKLOG = Gauge(
    "dexec_router_backlog", "Orders waiting for or being routed, as the API last read it"
)
COMMIT_RETRIES = Counter(
    "dexec_api_commit_retries_total",
    "Publishes of an order's `pending` repeated because the stream did not ack it",
)
