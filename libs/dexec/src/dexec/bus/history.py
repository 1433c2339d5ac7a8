"""Reading one order's events straight from the stream (the source of truth).

A batched direct get (NATS 2.11 and later, which `dexec.bus.connection.connect` requires)
returns many events in one round trip: a request to `$JS.API.DIRECT.GET.<stream>` is answered
with one message per event and then an end-of-batch status (204), or 404 when there is none.
The replies come to one wildcard inbox per connection, told apart by their last token.

Two reads; both find an order's events in the server's subject index, asking for literal subjects
(`orders.<event>.<orderId>`): ~0.25 ms of server CPU per request whatever the stream's size. A
wildcard filter (`orders.*.<orderId>`) in a direct get makes the server scan the messages of
each block instead once a block holds more than a few hundred subjects, and here every order
has its own: 2-3 ms for a recent order and 12-35 ms for an old one in a stream of 100,000+
events (measured, BENCHMARKS.md).
- `read_order_events`, the whole history: the subjects' event counts from the stream's info,
  then the subjects with one event each in one `multi_last` batch, and any subject with more
  (an event published once per attempt) in a batch of its own.
- `read_latest_events`, the last event of each of a few kinds: one `multi_last` batch. What the
  executor reads for every order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dexec.bus.subjects import STREAM, event_subject, is_order_id, order_subjects
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType

log = logging.getLogger(__name__)

# An order has about eight events (a few more per retry): one batch almost always holds it all.
BATCH = 64
REPLY_TIMEOUT_SECONDS = 5.0
END_OF_BATCH = "204"
NOT_FOUND = "404"


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: OrderEvent


async def read_order_events(
    js: JetStreamContext, order_id: str, after_seq: int = 0
) -> list[StoredEvent]:
    """Every event of `order_id` with a stream sequence above `after_seq`, in stream order."""
    if not is_order_id(order_id):
        return []  # no order has that id (and as a subject token it could match them all)
    return await HistoryReader.of(js).read(order_id, after_seq)


async def read_latest_events(
    js: JetStreamContext, order_id: str, kinds: Iterable[EventType]
) -> list[StoredEvent]:
    """The last event of each of `kinds` that `order_id` has, in stream order.

    A kind published once per attempt (`submitted`) gives its latest attempt's event.
    """
    if not is_order_id(order_id):
        return []
    return await HistoryReader.of(js).read_latest(order_id, kinds)


class HistoryReader:
    """Batched direct gets over one connection (one reader per connection, made on first use)."""

    _readers: weakref.WeakKeyDictionary[Client, HistoryReader] = weakref.WeakKeyDictionary()

    def __init__(self, js: JetStreamContext, nc: Client) -> None:
        self._js = js
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._tokens = itertools.count()
        self._replies: dict[str, asyncio.Queue[Msg]] = {}
        self._sub: Subscription | None = None
        self._subscribing = asyncio.Lock()

    @classmethod
    def of(cls, js: JetStreamContext) -> HistoryReader:
        nc: Client = js._nc  # the context keeps its connection only privately
        reader = cls._readers.get(nc)
        if reader is None:
            reader = cls._readers[nc] = cls(js, nc)
        return reader

    async def read(self, order_id: str, after_seq: int = 0) -> list[StoredEvent]:
        # How many events each of the order's subjects holds, as of one stream sequence: the
        # server counts them from its subject index, and the reads below stop at that sequence
        # so that an event published meanwhile cannot hide an earlier one of its kind.
        info = await self._js.stream_info(STREAM, subjects_filter=order_subjects(order_id))
        counts, up_to = info.state.subjects or {}, info.state.last_seq
        events: list[StoredEvent] = []
        once = [subject for subject, count in counts.items() if count == 1]
        if once:
            request = {"multi_last": once, "batch": len(once), "up_to_seq": up_to}
            await self._read_batch(request, events)
        for subject in (subject for subject, count in counts.items() if count > 1):
            seq, more = after_seq + 1, True
            while more:
                request = {"seq": seq, "next_by_subj": subject, "batch": BATCH}
                more, last_seq = await self._read_batch(request, events)
                seq = last_seq + 1
        return sorted(
            (stored for stored in events if after_seq < stored.seq <= up_to),
            key=lambda stored: stored.seq,
        )

    async def read_latest(self, order_id: str, kinds: Iterable[EventType]) -> list[StoredEvent]:
        subjects = [event_subject(kind, order_id) for kind in kinds]
        events: list[StoredEvent] = []
        # One subject gives at most one message, so one batch holds them all.
        await self._read_batch({"multi_last": subjects, "batch": len(subjects)}, events)
        return sorted(events, key=lambda stored: stored.seq)

    async def _read_batch(
        self, request: dict[str, object], into: list[StoredEvent]
    ) -> tuple[bool, int]:
        """Append one batch's events to `into`; whether more match past the batch, and the
        stream seq of the batch's last message (0 if none)."""
        if self._sub is None:
            await self._subscribe()
        token = str(next(self._tokens))
        replies: asyncio.Queue[Msg] = asyncio.Queue()
        self._replies[token] = replies
        last_seq = 0
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{STREAM}",
                orjson.dumps(request),
                reply=f"{self._inbox}.{token}",
            )
            async with asyncio.timeout(REPLY_TIMEOUT_SECONDS):
                while True:
                    msg = await replies.get()
                    headers = msg.headers or {}
                    status = headers.get("Status")
                    if status == NOT_FOUND:
                        return False, last_seq
                    if status == END_OF_BATCH:
                        return int(headers.get("Nats-Num-Pending", "0")) > 0, last_seq
                    if status:
                        raise NatsError(f"direct get failed: {status} {headers}")
                    last_seq = int(headers["Nats-Sequence"])
                    _append_event(into, last_seq, msg.data)
        except TimeoutError as exc:
            raise NatsTimeoutError from exc
        finally:
            del self._replies[token]

    async def _subscribe(self) -> None:
        # Once: reads that start together would each subscribe, and every reply would come twice.
        async with self._subscribing:
            if self._sub is None:
                self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        replies = self._replies.get(msg.subject.rpartition(".")[2])
        if replies is not None:  # else a late reply to a request that timed out
            replies.put_nowait(msg)

    async def read_one_by_one(self, order_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """One direct get per event: the reference the batched read is tested against."""
        events: list[StoredEvent] = []
        seq = after_seq + 1
        while True:
            try:
                raw = await self._js.get_msg(
                    STREAM, seq=seq, subject=order_subjects(order_id), next=True, direct=True
                )
            except NotFoundError:
                return events
            _append_event(events, raw.seq, raw.data or b"")
            seq = raw.seq + 1

    async def read_latest_one_by_one(
        self, order_id: str, kinds: Iterable[EventType]
    ) -> list[StoredEvent]:
        """One direct get per kind: the reference the batched read is tested against."""
        events: list[StoredEvent] = []
        for kind in kinds:
            with contextlib.suppress(NotFoundError):
                raw = await self._js.get_last_msg(
                    STREAM, event_subject(kind, order_id), direct=True
                )
                _append_event(events, raw.seq, raw.data or b"")
        return sorted(events, key=lambda stored: stored.seq)


def _append_event(events: list[StoredEvent], seq: int, data: bytes) -> None:
    """`data` as the event at `seq`, unless it is not an order event: only a publisher
    outside the engine puts one on an order's subjects, and every reader passes it by (the
    recorder terminates it), so one bad message cannot make the order unreadable."""
    try:
        events.append(StoredEvent(seq, OrderEvent.from_json(data)))
    except ValueError:
        log.error("skipping stream seq %d: not an order event", seq)
