"""The recorder: the durable `recorder` consumer writes every event to Postgres in batches.

Per batch, in one transaction: insert the events (a repeated message id is skipped), lock the
touched orders in id order (so two recorder replicas cannot interleave on one order or
deadlock), fold the newly inserted events into them, and write them back. Only then are the
messages acked, so a crash anywhere replays the batch and the replay changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dexec.bus.connection import ensure_consumer
from dexec.bus.subjects import RECORDER_CONSUMER, STREAM
from dexec.db.models import OrderEventRow, OrderRow
from dexec.db.projection import row_values, view_from_row
from dexec.orders.events import OrderEvent
from dexec.orders.projection import OrderView
from dexec_notifier.metrics import RECORDED_EVENTS
from dexec_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

EVENTS = OrderEventRow.__table__
ORDERS = OrderRow.__table__


@dataclass(frozen=True)
class Recorded:
    seq: int
    event: OrderEvent


def decode(msgs: list[Msg]) -> list[Recorded]:
    recorded = []
    for msg in msgs:
        try:
            recorded.append(Recorded(msg.metadata.sequence.stream, OrderEvent.from_json(msg.data)))
        except ValidationError:
            log.error("skipping malformed event on %s", msg.subject)
    return recorded


async def record_batch(engine: AsyncEngine, batch: list[Recorded]) -> int:
    """Write a batch; returns how many events were new."""
    if not batch:
        return 0
    async with engine.begin() as conn:
        inserted = await conn.execute(
            insert(EVENTS)
            .values(
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
                ]
            )
            .on_conflict_do_nothing(index_elements=["msg_id"])
            .returning(EVENTS.c.msg_id)
        )
        new_ids = set(inserted.scalars())
        fresh = sorted((r for r in batch if r.event.msg_id in new_ids), key=lambda r: r.seq)
        if not fresh:
            return 0
        order_ids = sorted({r.event.order_id for r in fresh})
        views = await _lock_orders(conn, order_ids)
        created = [oid for oid in order_ids if oid not in views]
        for oid in created:
            views[oid] = OrderView(oid)
        for r in fresh:
            views[r.event.order_id].apply(r.seq, r.event)
        if created:
            await conn.execute(
                insert(ORDERS)
                .values([row_values(views[oid]) for oid in created])
                .on_conflict_do_nothing(index_elements=["id"])
            )
        existing = [oid for oid in order_ids if oid not in created]
        if existing:
            columns = [c for c in row_values(views[existing[0]]) if c != "id"]
            await conn.execute(
                update(ORDERS)
                .where(ORDERS.c.id == bindparam("b_id"))
                .values({c: bindparam(f"b_{c}") for c in columns}),
                [{f"b_{k}": v for k, v in row_values(views[oid]).items()} for oid in existing],
            )
    return len(fresh)


async def _lock_orders(conn: AsyncConnection, order_ids: list[str]) -> dict[str, OrderView]:
    rows = await conn.execute(
        select(ORDERS).where(ORDERS.c.id.in_(order_ids)).order_by(ORDERS.c.id).with_for_update()
    )
    return {row.id: view_from_row(row._mapping) for row in rows}


class Recorder:
    def __init__(self, js: JetStreamContext, engine: AsyncEngine, settings: NotifierSettings):
        self._js = js
        self._engine = engine
        self._settings = settings
        self._stopping = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        batch_size = self._settings.recorder_batch_size
        await ensure_consumer(self._js, RECORDER_CONSUMER, self._settings, batch_size * 4)
        self._sub = await self._js.pull_subscribe_bind(RECORDER_CONSUMER.durable, stream=STREAM)
        self._loop = asyncio.create_task(self._record_loop())

    async def stop(self) -> None:
        """Finish the batch in hand, then let go of the subscription."""
        self._stopping.set()
        if self._loop is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._loop, 5)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _record_loop(self) -> None:
        assert self._sub is not None
        while not self._stopping.is_set():
            try:
                msgs = await self._sub.fetch(self._settings.recorder_batch_size, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as exc:
                log.warning("recorder fetch failed: %s", exc)
                await self._pause(0.5)
                continue
            try:
                count = await record_batch(self._engine, decode(msgs))
            except Exception:
                # Postgres is down or restarting: hand the batch back and try again shortly.
                log.exception("recording a batch of %d events failed", len(msgs))
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=1.0)
                await self._pause(1.0)
                continue
            RECORDED_EVENTS.inc(count)
            for msg in msgs:
                await msg.ack()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
