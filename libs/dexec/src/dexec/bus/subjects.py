"""Names on the bus, defined once: the stream, its subjects, the consumers and KV buckets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dexec.orders.states import EventType

STREAM = "ORDERS"
SUBJECT_PREFIX = "orders"
ALL_EVENTS = f"{SUBJECT_PREFIX}.>"

QUOTE_SUBJECT = "router.quote"
QUOTE_QUEUE = "router"
# What the router's market trades, and where: answered by any router replica (QUOTE_QUEUE).
MARKET_SUBJECT = "router.market"

IDEMPOTENCY_BUCKET = "dexec_idempotency"
CHAIN_BUCKET = "dexec_chain"


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket (the NATS KV convention)."""
    return f"KV_{bucket}"


def kv_key_prefix(bucket: str) -> str:
    """What a KV bucket's subjects start with; the key follows it."""
    return f"$KV.{bucket}."


# What an order id may look like (the API issues UUIDs): one subject token, so never a
# wildcard (`*`, `>`), a separator (`.`), whitespace or a control character. Anything else
# names no order, and must not reach a subject filter, where `*` would match every order.
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_order_id(text: str) -> bool:
    return _ORDER_ID.fullmatch(text) is not None


def event_subject(event: EventType, order_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{event}.{order_id}"


def order_subjects(order_id: str) -> str:
    """Every event of one order."""
    return f"{SUBJECT_PREFIX}.*.{order_id}"


def order_id_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


_EVENT_TYPES = {str(event): event for event in EventType}


def parse_event_subject(subject: str) -> tuple[EventType, str] | None:
    """The event and order id an event's subject names, without reading the message (None:
    not an order event's subject)."""
    prefix, _, rest = subject.partition(".")
    event, _, order_id = rest.partition(".")
    if prefix != SUBJECT_PREFIX or not order_id or "." in order_id or event not in _EVENT_TYPES:
        return None
    return _EVENT_TYPES[event], order_id


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    filter_subject: str


ROUTER_CONSUMER = ConsumerSpec("router", f"{SUBJECT_PREFIX}.{EventType.PENDING}.*")
EXECUTOR_CONSUMER = ConsumerSpec("executor", f"{SUBJECT_PREFIX}.{EventType.ROUTED}.*")
RECORDER_CONSUMER = ConsumerSpec("recorder", ALL_EVENTS)
# Before webhooks were sent from the recorder's outbox, a durable of their own read every
# event, and a KV bucket held each order's last delivered sequence: the notifier removes both.
RETIRED_WEBHOOK_DURABLE = "webhooks"
RETIRED_WEBHOOK_BUCKET = "dexec_webhooks"
