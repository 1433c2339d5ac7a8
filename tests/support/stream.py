"""Reading the ORDERS stream directly, the source of truth, to check what was committed."""

from __future__ import annotations

import nats

from dexec.bus.history import read_order_events
from dexec.bus.subjects import STREAM


async def orders_in_stream(nats_url: str) -> int:
    """How many orders were accepted: one `pending` subject per order."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(STREAM, subjects_filter="orders.pending.*")
        return len(info.state.subjects or {})
    finally:
        await nc.close()


async def event_counts(nats_url: str, order_id: str) -> dict[str, int]:
    """How many times each event of the order is in the stream."""
    nc = await nats.connect(nats_url)
    try:
        counts: dict[str, int] = {}
        for stored in await read_order_events(nc.jetstream(), order_id):
            counts[str(stored.event.event)] = counts.get(str(stored.event.event), 0) + 1
        return counts
    finally:
        await nc.close()
