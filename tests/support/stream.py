"""Reading the ORDERS stream directly, the source of truth, to check what was committed."""

from __future__ import annotations

import nats

from dexec.bus.history import read_order_events
from dexec.bus.subjects import STREAM
from dexec.orders.events import OrderEvent


async def orders_in_stream(nats_url: str) -> int:
    """How many orders were accepted: one `pending` subject per order."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(STREAM, subjects_filter="orders.pending.*")
        return len(info.state.subjects or {})
    finally:
        await nc.close()


async def order_events(nats_url: str, order_id: str) -> list[OrderEvent]:
    """Every event of the order in the stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        return [stored.event for stored in await read_order_events(nc.jetstream(), order_id)]
    finally:
        await nc.close()


async def event_counts(nats_url: str, order_id: str) -> dict[str, int]:
    """How many times each event of the order is in the stream."""
    counts: dict[str, int] = {}
    for event in await order_events(nats_url, order_id):
        counts[str(event.event)] = counts.get(str(event.event), 0) + 1
    return counts
