"""The recorder: the durable `recorder` consumer writes every event to Postgres in batches.

Per batch, in one transaction: insert the events (a repeated message id is skipped), lock the
touched orders in id order (so two recorder replicas cannot interleave on one order or
deadlock), fold the newly inserted events into them, and write back the columns that
changed. A new order's row is inserted; if another replica's insert of the same row won
meanwhile, this batch locks that row and folds onto it instead. Events of orders with a
`webhookUrl` are queued for their webhook in the same transaction (`webhook_deliveries`, the
outbox `dexec_notifier.webhooks` delivers from). Only then are the messages acked, so a crash
anywhere replays the batch and the replay changes nothing.

Because each event is inserted once, the recorder is where an order's end-to-end time is
measured exactly once, for every outcome (the router's failures too): when its terminal event
is newly written, as that event's `at` less the order's `pending` `at` (at most once, if a
batch split around a refused event fails partway: see `record_isolating`).

A message that will never be recorded is terminated (`term`, not redelivered), logged and
counted in `dexec_recorder_rejected_events_total`, so that it cannot stall the audit trail of
every order behind it: one that is not an order event, or whose data is not its kind's payload
(`malformed`, see `decode`), and one that Postgres refuses for a value in it (`refused`, see
`dexec_notifier.data_faults`). Such a refusal fails the whole batch's transaction, so the
batch is split in halves, each its own transaction, recursively, until the events at fault
are alone; the others are recorded as above, in stream order. Any other failure hands the
whole batch back to be retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import Text, Update, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dexec import tracing
from dexec.bus.connection import ensure_consumer
from dexec.bus.subjects import RECORDER_CONSUMER, STREAM, event_subject
from dexec.consumer_metrics import ConsumerSampler
from dexec.db.bounded import within
from dexec.db.models import OrderEventRow, OrderRow, WebhookDeliveryRow, WebhookState
from dexec.db.projection import row_values, view_from_row
from dexec.metrics import EVENTS_CONSUMED, STAGE_DURATION, Children, StageName
from dexec.orders.events import OrderEvent
from dexec.orders.projection import OrderView
from dexec.orders.states import EventType
from dexec.webhook_targets import webhook_host
from dexec_notifier.data_faults import describe, is_data_fault
from dexec_notifier.metrics import (
    DB_FAILURES,
    RECORDED_EVENTS,
    RECORDER_BATCH_SIZE,
    RECORDER_LAG,
    RECORDER_REJECTED,
)
from dexec_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

EVENTS = OrderEventRow.__table__
ORDERS = OrderRow.__table__

CONSUMED = Children(EVENTS_CONSUMED, RECORDER_CONSUMER.durable).bind(EventType)
MALFORMED = RECORDER_REJECTED.labels(reason="malformed")
REFUSED = RECORDER_REJECTED.labels(reason="refused")
RECORD_GIVEN_UP = DB_FAILURES.labels(call="record")
# Fixed statements run with a list of parameter sets ("executemany"): compiled once and cached,
# whatever the batch size. The events INSERT goes out as one multi-row INSERT .. RETURNING
# (SQLAlchemy's "insertmanyvalues") and returns the msg_id of every row actually inserted.
INSERT_EVENTS = (
    insert(EVENTS).on_conflict_do_nothing(index_elements=["msg_id"]).returning(EVENTS.c.msg_id)
)
INSERT_ORDERS = insert(ORDERS).on_conflict_do_nothing(index_elements=["id"]).returning(ORDERS.c.id)
_ORDER_COLUMNS = [c for c in row_values(OrderView("")) if c != "id"]
# An order's row is written back in several batches (one per event, at saturation), and most
# events change three small columns; writing every column each time re-sent, re-parsed and
# re-stored the route (a 4.6 KB JSONB) and spec. The route is set once and never changes, so
# the lock does not read it back either: a row that has one gets this stand-in, which `apply`
# keeps (`route or event.data`) and which is therefore never written.
ROUTE_IN_ROW: dict[str, Any] = {"inRow": True}
LOCK_COLUMNS = [c for c in ORDERS.c if c.name != "route"] + [
    # An order without a route holds JSON `null` there (how SQLAlchemy writes None to JSONB).
    (func.jsonb_typeof(ORDERS.c.route) == "object").label("has_route")
]

WEBHOOKS = WebhookDeliveryRow.__table__
QUEUE_WEBHOOKS = insert(WEBHOOKS).on_conflict_do_nothing(index_elements=["msg_id"])
QUEUE_EARLIER_WEBHOOKS = (
    insert(WEBHOOKS)
    .from_select(
        ["msg_id", "order_id", "seq", "url", "host", "state", "attempts"],
        select(
            EVENTS.c.msg_id,
            EVENTS.c.order_id,
            EVENTS.c.seq,
            bindparam("b_url", type_=Text),
            bindparam("b_host", type_=Text),
            literal(WebhookState.PENDING),
            literal(0),
        ).where(EVENTS.c.order_id == bindparam("b_order_id")),
    )
    .on_conflict_do_nothing(index_elements=["msg_id"])
)

END_TO_END = {
    EventType.CONFIRMED: STAGE_DURATION.labels(StageName.PENDING_TO_CONFIRMED),
    EventType.FAILED: STAGE_DURATION.labels(StageName.PENDING_TO_FAILED),
}


@dataclass(frozen=True)
class Recorded:
    seq: int
    event: OrderEvent
    # The order's trace context, only when the message says its trace is sampled.
    trace: Context | None = None
    # Its `traceparent` header, kept with a webhook delivery (sampled traces only).
    traceparent: str | None = None


@dataclass
class Written:
    """What a batch added: the events new to Postgres, and the orders it finished."""

    fresh: list[Recorded] = field(default_factory=list)
    # (terminal event, seconds from the order's `pending` to it) per order finished here.
    finished: list[tuple[EventType, float]] = field(default_factory=list)
    # Whether it queued webhook deliveries.
    webhooks: bool = False
    # Events Postgres refused for their data, each on its own (`record_isolating`).
    rejected: list[Recorded] = field(default_factory=list)

    def then(self, later: Written) -> Written:
        """This and a later part of the same batch, written after it."""
        return Written(
            self.fresh + later.fresh,
            self.finished + later.finished,
            self.webhooks or later.webhooks,
            self.rejected + later.rejected,
        )


def decode(msgs: list[Msg]) -> tuple[list[Recorded], set[int]]:
    """The batch's events, and the stream sequences of the messages that are not events.

    An event is one only if its data is its kind's payload (`OrderEvent.payload`: a `pending`'s
    `OrderSpec`, a `routed`'s `Route` ...): the fold and the order's columns rely on that (a
    `pending` whose `amountIn` is null would fail in Python on every try, and stall every
    batch that holds it). Only a `ValidationError` says a message is malformed; any other
    exception here is a bug, and stalls the recorder rather than dropping events.
    """
    recorded: list[Recorded] = []
    malformed: set[int] = set()
    for msg in msgs:
        seq = msg.metadata.sequence.stream
        try:
            r = to_recorded(seq, msg.data, msg.headers)
        except ValidationError as exc:
            log.error(
                "recorder: %s (stream seq %d) is not an order event: %s",
                msg.subject,
                seq,
                exc.errors(include_url=False, include_input=False),
            )
            malformed.add(seq)
            continue
        CONSUMED[r.event.event].inc()
        recorded.append(r)
    return recorded, malformed


def to_recorded(seq: int, data: bytes, headers: dict[str, str] | None) -> Recorded:
    """The event in a stream message, checked as `decode` says; `ValidationError` if it is not
    one."""
    event = OrderEvent.from_json(data)
    event.payload()  # 70 µs per order, 50 of them for the `routed` (4.6 KB)
    trace = tracing.extract_sampled(headers)
    traceparent = headers.get(tracing.TRACEPARENT) if trace and headers else None
    return Recorded(seq, event, trace, traceparent)


async def record_isolating(engine: AsyncEngine, batch: list[Recorded]) -> Written:
    """`record_batch`, except that events Postgres refuses for their data are left out.

    Such an event fails its batch's one transaction on every try, so a refused batch is split
    in halves, each written (and split) the same way, the earlier half first so each order's
    events are still folded in stream order; an event refused on its own is `rejected`. A
    failure that is not the data's fault is raised, for the whole batch to be retried (its
    halves already committed are then replays, which change nothing and count for nothing in
    the metrics).
    """
    try:
        return await record_batch(engine, batch)
    except Exception as exc:
        if not is_data_fault(exc):
            raise
        if len(batch) == 1:
            event = batch[0].event
            log.error(
                "recorder: Postgres refuses %s %r (stream seq %d): %s; it is left out "
                "(record it with `dexec-rerecord %d` once that is fixed)",
                event_subject(event.event, event.order_id),
                event.msg_id,
                batch[0].seq,
                describe(exc),
                batch[0].seq,
            )
            return Written(rejected=batch)
        log.warning("recorder: a batch of %d events cannot be stored; splitting it", len(batch))
    half = len(batch) // 2
    first = await record_isolating(engine, batch[:half])
    return first.then(await record_isolating(engine, batch[half:]))


async def record_batch(engine: AsyncEngine, batch: list[Recorded]) -> Written:
    """Write a batch; returns what was new."""
    if not batch:
        return Written()
    async with engine.begin() as conn:
        inserted = await conn.execute(
            INSERT_EVENTS,
            [
                {
                    "msg_id": r.event.msg_id,
                    "order_id": r.event.order_id,
                    "seq": r.seq,
                    "event": str(r.event.event),
                    "status": str(r.event.status),
                    "attempt": r.event.attempt,
                    "at": r.event.at,
                    "data": r.event.data,
                }
                for r in batch
            ],
        )
        new_ids = set(inserted.scalars())
        fresh = sorted((r for r in batch if r.event.msg_id in new_ids), key=lambda r: r.seq)
        if not fresh:
            return Written()
        order_ids = sorted({r.event.order_id for r in fresh})
        views = await _lock_orders(conn, order_ids)
        stored = {oid: row_values(view) for oid, view in views.items()}
        created = [oid for oid in order_ids if oid not in views]
        views.update({oid: OrderView(oid) for oid in created})
        _fold(fresh, views, order_ids)
        if created:
            lost = await _insert_orders(conn, [views[oid] for oid in created])
            if lost:
                # Another replica inserted these orders after our lock found none (its insert
                # made ours wait, then skip): lock the rows it committed and fold onto them.
                relocked = await _lock_orders(conn, lost)
                views.update(relocked)
                stored.update({oid: row_values(view) for oid, view in relocked.items()})
                _fold(fresh, views, lost)
                created = [oid for oid in created if oid not in lost]
        existing = [oid for oid in order_ids if oid not in created]
        await _update_orders(conn, {oid: (stored[oid], row_values(views[oid])) for oid in existing})
        webhooks = await _queue_webhooks(conn, fresh, views)
    return Written(fresh, _finished(fresh, views), webhooks)


async def _queue_webhooks(
    conn: AsyncConnection, fresh: list[Recorded], views: dict[str, OrderView]
) -> bool:
    """Queue the batch's new events of orders with a webhook; whether there were any.

    An order's URL is in its `pending` event. Another replica may have recorded later events
    of the order before this batch brought the `pending` (without a URL to queue them for), so
    a batch that brings a `pending` with a URL also queues the order's events already recorded.
    Both batches hold the order's row lock, so whichever commits second sees the other's rows.
    """
    urls = {oid: url for oid, view in views.items() if (url := _webhook_url(view))}
    if not urls:
        return False
    rows = [
        {
            "msg_id": r.event.msg_id,
            "order_id": r.event.order_id,
            "seq": r.seq,
            "url": urls[r.event.order_id],
            "host": webhook_host(urls[r.event.order_id]),
            "state": WebhookState.PENDING,
            "attempts": 0,
            "traceparent": r.traceparent,
        }
        for r in fresh
        if r.event.order_id in urls
    ]
    if rows:
        await conn.execute(QUEUE_WEBHOOKS, rows)
    first_seen = [
        {
            "b_order_id": r.event.order_id,
            "b_url": urls[r.event.order_id],
            "b_host": webhook_host(urls[r.event.order_id]),
        }
        for r in fresh
        if r.event.event == EventType.PENDING and r.event.order_id in urls
    ]
    if first_seen:
        await conn.execute(QUEUE_EARLIER_WEBHOOKS, first_seen)
    return bool(rows)


def _webhook_url(view: OrderView) -> str | None:
    url = (view.spec or {}).get("webhookUrl")
    return url if isinstance(url, str) and url else None


def _finished(fresh: list[Recorded], views: dict[str, OrderView]) -> list[tuple[EventType, float]]:
    """End-to-end times of the orders whose terminal event this batch wrote.

    A view with its spec has seen `pending`, the order's first event, so its `created_at` is
    the pending's `at`; an order whose `pending` is not recorded yet (a rare out-of-order
    redelivery) is not measured rather than measured wrong.
    """
    finished = []
    for r in fresh:
        if r.event.event in END_TO_END:
            view = views[r.event.order_id]
            if view.spec is not None and view.created_at is not None:
                seconds = (r.event.at - view.created_at).total_seconds()
                finished.append((r.event.event, seconds))
    return finished


def _fold(fresh: list[Recorded], views: dict[str, OrderView], order_ids: list[str]) -> None:
    """Apply the batch's new events of `order_ids` to their views."""
    wanted = set(order_ids)
    for r in fresh:
        if r.event.order_id in wanted:
            views[r.event.order_id].apply(r.seq, r.event)


async def _insert_orders(conn: AsyncConnection, views: list[OrderView]) -> list[str]:
    """Insert the rows of new orders; the ids of those another transaction inserted first."""
    inserted = set((await conn.execute(INSERT_ORDERS, [row_values(v) for v in views])).scalars())
    return [view.order_id for view in views if view.order_id not in inserted]


async def _lock_orders(conn: AsyncConnection, order_ids: list[str]) -> dict[str, OrderView]:
    """Lock the orders' rows and read them, the route as `ROUTE_IN_ROW` if there is one."""
    rows = await conn.execute(
        select(*LOCK_COLUMNS)
        .where(ORDERS.c.id.in_(order_ids))
        .order_by(ORDERS.c.id)
        .with_for_update()
    )
    views = {}
    for row in rows:
        values = dict(row._mapping)
        values["route"] = ROUTE_IN_ROW if values.pop("has_route") else None
        views[row.id] = view_from_row(values)
    return views


async def _update_orders(
    conn: AsyncConnection, rows: dict[str, tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    """Write each order's changed columns (`rows`: id -> values as read, values now); orders
    that changed the same columns go in one executemany."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for oid, (before, after) in rows.items():
        changed = tuple(c for c in _ORDER_COLUMNS if after[c] != before[c])
        if changed:
            by_columns[changed].append({"b_id": oid, **{f"b_{c}": after[c] for c in changed}})
    for columns, params in by_columns.items():
        await conn.execute(_update_statement(columns), params)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Update:
    # One statement object per column set (a handful occur), so each is compiled once.
    return (
        update(ORDERS)
        .where(ORDERS.c.id == bindparam("b_id"))
        .values({c: bindparam(f"b_{c}") for c in columns})
    )


class Recorder:
    def __init__(
        self,
        js: JetStreamContext,
        engine: AsyncEngine,
        settings: NotifierSettings,
        on_webhooks_queued: Callable[[], None] | None = None,
    ):
        self._js = js
        self._engine = engine
        self._settings = settings
        # Wakes this replica's webhook dispatcher at once (others find the rows on their poll).
        self._on_webhooks_queued = on_webhooks_queued
        self._stopping = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._sampler = ConsumerSampler(js, RECORDER_CONSUMER.durable)

    async def start(self) -> None:
        batch_size = self._settings.recorder_batch_size
        await ensure_consumer(self._js, RECORDER_CONSUMER, self._settings, batch_size * 4)
        self._sub = await self._js.pull_subscribe_bind(RECORDER_CONSUMER.durable, stream=STREAM)
        self._loop = asyncio.create_task(self._record_loop())
        await self._sampler.start()

    async def stop(self) -> None:
        """Finish the batch in hand, then let go of the subscription."""
        self._stopping.set()
        await self._sampler.stop()
        if self._loop is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._loop, 5)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _record_loop(self) -> None:
        assert self._sub is not None
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            fetched = loop.time()
            try:
                msgs = await self._sub.fetch(self._settings.recorder_batch_size, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as exc:
                log.warning("recorder fetch failed: %s", exc)
                await self._pause(0.5)
                continue
            started = time.time_ns()
            batch, malformed = decode(msgs)
            try:
                written = await within(
                    record_isolating(self._engine, batch), self._settings.db_timeout_seconds
                )
            except Exception:
                # Postgres is down, restarting or stalled: hand the batch back and try again
                # shortly (what a given-up batch committed is found there and kept).
                RECORD_GIVEN_UP.inc()
                log.exception("recording a batch of %d events failed", len(msgs))
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=1.0)
                await self._pause(1.0)
                continue
            observe(written, len(msgs), started)
            MALFORMED.inc(len(malformed))
            if written.webhooks and self._on_webhooks_queued is not None:
                self._on_webhooks_queued()
            never = malformed | {r.seq for r in written.rejected}
            for msg in msgs:
                # `term`: a message that can never be recorded must not come back.
                await (msg.term() if msg.metadata.sequence.stream in never else msg.ack())
            if len(msgs) < self._settings.recorder_batch_size:
                # Let the next batch gather (see `recorder_linger_seconds`).
                await self._pause(self._settings.recorder_linger_seconds - (loop.time() - fetched))

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def observe(written: Written, batch_size: int, started_ns: int) -> None:
    """Metrics and (sampled) spans of one committed batch."""
    RECORDER_BATCH_SIZE.observe(batch_size)
    RECORDED_EVENTS.inc(len(written.fresh))
    REFUSED.inc(len(written.rejected))
    now = time.time()
    for r in written.fresh:
        RECORDER_LAG.observe(now - r.event.at.timestamp())
        if r.trace is not None:
            _span(r, started_ns)
    for event, seconds in written.finished:
        END_TO_END[event].observe(seconds)


def _span(r: Recorded, started_ns: int) -> None:
    """The batch's write as a span of each sampled order in it (a batch spans many traces)."""
    span = tracing.tracer("dexec.notifier").start_span(
        f"record {r.event.event}", context=r.trace, kind=SpanKind.CONSUMER, start_time=started_ns
    )
    span.set_attributes(
        {
            "messaging.system": "nats",
            "messaging.consumer.group.name": RECORDER_CONSUMER.durable,
            "dexec.order_id": r.event.order_id,
            "dexec.seq": r.seq,
        }
    )
    span.end()
