"""Live fan-out: this replica's own ordered consumer on every event, dispatched to watchers.

A shared durable consumer would load-balance events away from the replica holding a socket,
so each replica reads the whole stream (from "now") and keeps only what its sockets watch.
A watcher registers before it reads the backfill, and drops live events at or below the last
sequence it sent, so the merge is gap-free and sends each event once, in stream order.
For a sampled order with watchers here, the hand-over is a span in the order's trace.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from opentelemetry.trace import SpanKind

from dexec import tracing
from dexec.bus.history import StoredEvent
from dexec.bus.subjects import ALL_EVENTS, order_id_of
from dexec.orders.events import OrderEvent

log = logging.getLogger(__name__)


def client_message(seq: int, event: OrderEvent) -> dict[str, object]:
    """What a WebSocket client receives for one event."""
    return {
        "orderId": event.order_id,
        "event": str(event.event),
        "status": str(event.status),
        "seq": seq,
        "at": event.at.isoformat(),
        "attempt": event.attempt,
        "data": event.data,
    }


class SlowConsumer(Exception):
    pass


@dataclass(eq=False)  # watchers are told apart by identity
class Watcher:
    """One socket's inbox of live events; bounded so a slow client cannot grow memory."""

    limit: int
    queue: asyncio.Queue[StoredEvent] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def offer(self, stored: StoredEvent) -> None:
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            return
        self.queue.put_nowait(stored)

    async def next(self) -> StoredEvent:
        if self.overflowed:
            raise SlowConsumer
        item = await self.queue.get()
        if self.overflowed:
            raise SlowConsumer
        return item


class LiveHub:
    def __init__(self) -> None:
        self._watchers: dict[str, set[Watcher]] = {}
        self._sub = None

    async def start(self, js: JetStreamContext) -> None:
        self._sub = await js.subscribe(
            ALL_EVENTS, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW, cb=self._on_msg
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def watch(self, order_id: str, watcher: Watcher) -> None:
        self._watchers.setdefault(order_id, set()).add(watcher)

    def unwatch(self, order_id: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(order_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[order_id]

    @property
    def watched_orders(self) -> int:
        return len(self._watchers)

    async def _on_msg(self, msg: Msg) -> None:
        watchers = self._watchers.get(order_id_of(msg.subject))
        if not watchers:
            return  # nobody here watches this order: skip the parse
        try:
            event = OrderEvent.model_validate(orjson.loads(msg.data))
        except ValueError:
            log.error("skipping malformed live event on %s", msg.subject)
            return
        stored = StoredEvent(msg.metadata.sequence.stream, event)
        trace = tracing.extract_sampled(msg.headers)
        if trace is None:
            _fan_out(stored, watchers)
            return
        scope = tracing.tracer("dexec.notifier")
        name = f"fan out {event.event}"
        with scope.start_as_current_span(name, context=trace, kind=SpanKind.CONSUMER) as span:
            span.set_attributes({"dexec.order_id": event.order_id, "dexec.watchers": len(watchers)})
            _fan_out(stored, watchers)


def _fan_out(stored: StoredEvent, watchers: set[Watcher]) -> None:
    for watcher in list(watchers):
        watcher.offer(stored)
