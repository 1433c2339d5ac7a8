"""Reading one order's events straight from the stream (the source of truth)."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dexec.bus.subjects import STREAM, order_subjects
from dexec.orders.events import OrderEvent


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: OrderEvent


async def read_order_events(
    js: JetStreamContext, order_id: str, after_seq: int = 0
) -> list[StoredEvent]:
    """Every event of `order_id` with a stream sequence above `after_seq`, in stream order.

    Direct gets walk the per-subject index, so this costs one round trip per event (an order
    has about eight), not a scan of the stream.
    """
    events: list[StoredEvent] = []
    seq = after_seq + 1
    while True:
        try:
            raw = await js.get_msg(
                STREAM, seq=seq, subject=order_subjects(order_id), next=True, direct=True
            )
        except NotFoundError:
            return events
        events.append(StoredEvent(raw.seq, OrderEvent.from_json(raw.data or b"")))
        seq = raw.seq + 1
