"""Reading one order's events straight from the stream (the source of truth).

On NATS 2.11 and later one batched direct get returns an order's whole history in one round
trip: a request to `$JS.API.DIRECT.GET.<stream>` with `next_by_subj` and `batch` is answered
with one message per event and then an end-of-batch status (204), or 404 when there is none.
The replies come to one wildcard inbox per connection, told apart by their last token. Older
servers get one direct get per event.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dexec.bus.subjects import STREAM, order_subjects, parse_event_subject
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType

# An order has about eight events (a few more per retry): one batch almost always holds it all.
BATCH = 64
REPLY_TIMEOUT_SECONDS = 5.0
END_OF_BATCH = "204"
NOT_FOUND = "404"
# Batched direct gets arrived in NATS 2.11.
BATCH_GET_SINCE = (2, 11)


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: OrderEvent


async def read_order_events(
    js: JetStreamContext,
    order_id: str,
    after_seq: int = 0,
    only: frozenset[EventType] | None = None,
) -> list[StoredEvent]:
    """Every event of `order_id` with a stream sequence above `after_seq`, in stream order.

    `only`: just these kinds of event; the others are not parsed (a `routed` event, with all
    its quotes, costs more to parse than anything else a reader does per order).
    """
    return await HistoryReader.of(js).read(order_id, after_seq, only)


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

    @classmethod
    def of(cls, js: JetStreamContext) -> HistoryReader:
        nc: Client = js._nc  # the context keeps its connection only privately
        reader = cls._readers.get(nc)
        if reader is None:
            reader = cls._readers[nc] = cls(js, nc)
        return reader

    async def read(
        self, order_id: str, after_seq: int = 0, only: frozenset[EventType] | None = None
    ) -> list[StoredEvent]:
        version = self._nc.connected_server_version
        if (version.major, version.minor) < BATCH_GET_SINCE:
            return await self.read_one_by_one(order_id, after_seq, only)
        events: list[StoredEvent] = []
        while True:
            after_seq = await self._read_batch(order_id, after_seq, only, events)
            if not after_seq:
                return events

    async def _read_batch(
        self,
        order_id: str,
        after_seq: int,
        only: frozenset[EventType] | None,
        into: list[StoredEvent],
    ) -> int:
        """Append one batch to `into`; the last sequence read when the order has more events
        past it, else 0."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
        token = str(next(self._tokens))
        replies: asyncio.Queue[Msg] = asyncio.Queue()
        self._replies[token] = replies
        request = {"seq": after_seq + 1, "next_by_subj": order_subjects(order_id), "batch": BATCH}
        last_seq = after_seq
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
                        return 0
                    if status == END_OF_BATCH:
                        more = int(headers.get("Nats-Num-Pending", "0")) > 0
                        return last_seq if more else 0
                    if status:
                        raise NatsError(f"direct get failed: {status} {headers}")
                    last_seq = int(headers["Nats-Sequence"])
                    if _wanted(headers.get("Nats-Subject", ""), only):
                        into.append(StoredEvent(last_seq, OrderEvent.from_json(msg.data)))
        except TimeoutError as exc:
            raise NatsTimeoutError from exc
        finally:
            del self._replies[token]

    async def _on_reply(self, msg: Msg) -> None:
        replies = self._replies.get(msg.subject.rpartition(".")[2])
        if replies is not None:  # else a late reply to a request that timed out
            replies.put_nowait(msg)

    async def read_one_by_one(
        self, order_id: str, after_seq: int = 0, only: frozenset[EventType] | None = None
    ) -> list[StoredEvent]:
        """One direct get per event: servers before 2.11 (and the reference in tests)."""
        events: list[StoredEvent] = []
        seq = after_seq + 1
        while True:
            try:
                raw = await self._js.get_msg(
                    STREAM, seq=seq, subject=order_subjects(order_id), next=True, direct=True
                )
            except NotFoundError:
                return events
            if _wanted(raw.subject, only):
                events.append(StoredEvent(raw.seq, OrderEvent.from_json(raw.data or b"")))
            seq = raw.seq + 1


def _wanted(subject: str, only: frozenset[EventType] | None) -> bool:
    if only is None:
        return True
    parsed = parse_event_subject(subject)
    return parsed is not None and parsed[0] in only
