"""Live fan-out: this replica's own ordered consumer on every event, dispatched to watchers.

A shared durable consumer would load-balance events away from the replica holding a socket,
so each replica reads the whole stream (from "now": the stream's next seq when it starts,
also if nats-py recreates the consumer before the first message) and keeps only what its
sockets watch.
A watcher registers before it reads the backfill, and drops live events at or below the last
sequence it sent, so the merge is gap-free and sends each event once, in stream order.
For a sampled order with watchers here, the hand-over is a span in the order's trace.

The hub also keeps recent orders' events (raw bytes, parsed only when a socket asks), so a
backfill is usually served from memory instead of one stream read per event. An entry starts
only at an order's `pending` event (its first) and then receives every event of the order the
hub sees, so it always holds the order's whole history up to the hub's position. `watch`
registers the watcher and hands out that history in one synchronous step, so nothing can slip
between them. If the consumer's delivery is not contiguous (the ordered consumer was reset and
did not resume right after the last message seen, or the client dropped messages), the cache
is cleared: entries never have holes, and later backfills fall back to the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry.trace import SpanKind

from dexec import tracing
from dexec.bus.ordered_resume import resume_after
from dexec.bus.subjects import ALL_EVENTS, STREAM, parse_event_subject
from dexec.orders.states import TERMINAL_EVENTS, EventType
from dexec_notifier.client_events import ClientEvent
from dexec_notifier.metrics import (
    LIVE_CACHE_BYTES,
    LIVE_CACHE_EVICTIONS,
    LIVE_CACHE_ORDERS,
    LIVE_CONSUMER_GAPS,
    LIVE_PENDING_BYTES,
)
from dexec_notifier.settings import DEFAULT_BACKFILL_CACHE_BYTES

log = logging.getLogger(__name__)

# What a cached event and an entry cost beyond their bytes (objects, list and dict slots).
EVENT_OVERHEAD = 120
ENTRY_OVERHEAD = 400


class SlowConsumer(Exception):
    pass


@dataclass(eq=False)  # watchers are told apart by identity
class Watcher:
    """One socket's inbox of live events; bounded so a slow client cannot grow memory."""

    limit: int
    queue: asyncio.Queue[ClientEvent] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def offer(self, event: ClientEvent) -> None:
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            return
        self.queue.put_nowait(event)

    async def next(self, limit: int = 1) -> list[ClientEvent]:
        """The next event, and up to `limit` in all of those queued behind it, in order."""
        if self.overflowed:
            raise SlowConsumer
        events = [await self.queue.get()]
        if self.overflowed:
            raise SlowConsumer
        while len(events) < limit and not self.queue.empty():
            events.append(self.queue.get_nowait())
        return events


class _Entry:
    """One order's events from its first, as (stream seq, raw message data)."""

    __slots__ = ("events", "size")

    def __init__(self) -> None:
        self.events: list[tuple[int, bytes]] = []
        self.size = ENTRY_OVERHEAD


class BackfillCache:
    """Recent orders' complete histories, bounded in bytes and evicted soon after their end.

    Only the hub writes to it, in stream order; an entry exists only if it holds every event
    of its order from the `pending` one on.
    """

    def __init__(
        self,
        max_bytes: int,
        ttl_after_terminal: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._ttl = ttl_after_terminal
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest first
        self._expiring: deque[tuple[float, str, _Entry]] = deque()  # deadlines in order
        self.bytes = 0
        # Read when scraped, not kept up to date on every message.
        LIVE_CACHE_BYTES.set_function(lambda: self.bytes)
        LIVE_CACHE_ORDERS.set_function(lambda: len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, order_id: str) -> bool:
        return order_id in self._entries

    def record(self, order_id: str, event: EventType, seq: int, raw: bytes) -> None:
        """One message of the stream, in stream order; starts an entry only at `pending`."""
        if self._max_bytes <= 0:
            return  # the cache is off
        entry = self._entries.get(order_id)
        if entry is None:
            if event != EventType.PENDING:
                return  # its first event came before this hub (or its entry was evicted)
            entry = self._entries[order_id] = _Entry()
            self.bytes += entry.size
        entry.events.append((seq, raw))
        size = len(raw) + EVENT_OVERHEAD
        entry.size += size
        self.bytes += size
        now = self._clock()
        if event in TERMINAL_EVENTS:
            self._expiring.append((now + self._ttl, order_id, entry))
        self._expire(now)
        while self.bytes > self._max_bytes and self._entries:
            self._drop(next(iter(self._entries)), "bytes")

    def history(self, order_id: str) -> list[tuple[int, bytes]] | None:
        """The order's events so far, or None when they are not (all) here."""
        self._expire(self._clock())
        entry = self._entries.get(order_id)
        return None if entry is None else list(entry.events)

    def clear(self) -> None:
        if self._entries:
            LIVE_CACHE_EVICTIONS.labels(reason="gap").inc(len(self._entries))
        self._entries.clear()
        self._expiring.clear()
        self.bytes = 0

    def _expire(self, now: float) -> None:
        while self._expiring and self._expiring[0][0] <= now:
            _, order_id, entry = self._expiring.popleft()
            if self._entries.get(order_id) is entry:  # not already gone, nor started anew
                self._drop(order_id, "terminal")

    def _drop(self, order_id: str, reason: str) -> None:
        entry = self._entries.pop(order_id)
        entry.events = []  # free it now, though `_expiring` may still refer to the entry
        self.bytes -= entry.size
        LIVE_CACHE_EVICTIONS.labels(reason=reason).inc()


class LiveHub:
    def __init__(
        self,
        cache_max_bytes: int = DEFAULT_BACKFILL_CACHE_BYTES,
        cache_ttl_after_terminal: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._watchers: dict[str, set[Watcher]] = {}
        self._sub = None
        self.cache = BackfillCache(cache_max_bytes, cache_ttl_after_terminal, clock)
        # Where the consumer's delivery stands: (consumer name, consumer seq, stream seq).
        self._position: tuple[str, int, int] | None = None

    async def start(self, js: JetStreamContext, heartbeat_seconds: float = 5.0) -> None:
        """Follow the stream from its next message on (`heartbeat_seconds`: the consumer's idle
        heartbeat; nats-py recreates the consumer after two missed ones)."""
        # nats-py recreates an ordered consumer (after a NATS restart, missed heartbeats or a
        # gap) at the stream seq after the last message it delivered, and before any at 1: a
        # hub that had seen nothing yet would be sent the whole stream. So the hub starts at an
        # explicit seq (the stream's last + 1, read now), and nats-py's state is told that
        # everything before it was seen, which is where a reset then resumes.
        start = (await js.stream_info(STREAM)).state.last_seq + 1
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        self._sub = await js.subscribe(
            ALL_EVENTS,
            stream=STREAM,
            config=config,
            ordered_consumer=True,
            idle_heartbeat=heartbeat_seconds,
            cb=self._on_msg,
        )
        resume_after(self._sub, start - 1, "live consumer")
        sub = self._sub
        LIVE_PENDING_BYTES.set_function(lambda: sub.pending_bytes)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def watch(self, order_id: str, watcher: Watcher) -> list[ClientEvent] | None:
        """Register for the order's live events; return its history so far if cached.

        Synchronous on purpose: every event after the returned history reaches the watcher.
        None means the history must be read from the stream (the watcher is registered all
        the same, and de-duplicates by sequence).
        """
        self._watchers.setdefault(order_id, set()).add(watcher)
        cached = self.cache.history(order_id)
        if cached is None:
            return None
        history = []
        for seq, raw in cached:
            try:
                history.append(ClientEvent.from_json(seq, raw))
            except ValueError:
                log.error("skipping malformed cached event %d of order %s", seq, order_id)
        return history

    def unwatch(self, order_id: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(order_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[order_id]

    async def _on_msg(self, msg: Msg) -> None:
        metadata = msg.metadata  # parsed from the reply subject on each access
        sequence = metadata.sequence
        self._follow(metadata.consumer, sequence.consumer, sequence.stream)
        named = parse_event_subject(msg.subject)
        if named is None:
            return  # not an order event: nothing here reads it
        event_type, order_id = named
        self.cache.record(order_id, event_type, sequence.stream, msg.data)
        watchers = self._watchers.get(order_id)
        if not watchers:
            return  # nobody here watches this order: skip the parse
        try:
            event = ClientEvent.from_json(sequence.stream, msg.data)
        except ValueError:
            log.error("skipping malformed live event on %s", msg.subject)
            return
        trace = tracing.extract_sampled(msg.headers)
        if trace is None:
            _fan_out(event, watchers)
            return
        scope = tracing.tracer("dexec.notifier")
        name = f"fan out {event_type}"
        with scope.start_as_current_span(name, context=trace, kind=SpanKind.CONSUMER) as span:
            span.set_attributes({"dexec.order_id": order_id, "dexec.watchers": len(watchers)})
            _fan_out(event, watchers)

    def _follow(self, consumer: str, consumer_seq: int, stream_seq: int) -> None:
        """Clear the cache unless this message directly follows the last one the hub saw.

        Directly follows: the next delivery of the same consumer (an ordered consumer never
        redelivers), or, after nats-py recreated the consumer (a sequence gap, missed
        heartbeats, a NATS restart), the next message of the stream (the hub reads every
        subject of the stream, so nothing can lie between the two).
        """
        last = self._position
        self._position = (consumer, consumer_seq, stream_seq)
        if last is None:
            return
        last_consumer, last_consumer_seq, last_stream_seq = last
        if consumer == last_consumer and consumer_seq == last_consumer_seq + 1:
            return
        if stream_seq == last_stream_seq + 1:
            return
        LIVE_CONSUMER_GAPS.inc()
        log.warning(
            "live consumer skipped from stream seq %d to %d: backfill cache cleared",
            last_stream_seq,
            stream_seq,
        )
        self.cache.clear()


def _fan_out(event: ClientEvent, watchers: set[Watcher]) -> None:
    for watcher in list(watchers):
        watcher.offer(event)
