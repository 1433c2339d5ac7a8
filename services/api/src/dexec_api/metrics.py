from prometheus_client import Counter

ORDERS_ACCEPTED = Counter("dexec_orders_accepted_total", "Orders accepted by the API")
ORDERS_REJECTED = Counter(
    "dexec_orders_rejected_total", "Order submissions refused by the API", ["reason"]
)
