"""The webhook outbox against a real Postgres: what the recorder queues, and what is due when;
and the retired webhooks durable removed from a real NATS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dexec.bus.connection import ensure_consumer
from dexec.bus.subjects import RETIRED_WEBHOOK_BUCKET, RETIRED_WEBHOOK_DURABLE, STREAM, ConsumerSpec
from dexec.db.engine import create_engine
from dexec.db.models import WebhookDeliveryRow, WebhookState
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus
from dexec.settings import CommonSettings
from dexec_notifier.recorder import Recorded, record_batch
from dexec_notifier.settings import NotifierSettings
from dexec_notifier.webhooks import CLAIM, WebhookDispatcher, retire_webhook_consumer

URL = "http://127.0.0.1:9/hook"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
LIFECYCLE = [
    (EventType.PENDING, OrderStatus.PENDING),
    (EventType.ROUTING, OrderStatus.ROUTING),
    (EventType.BUILDING, OrderStatus.BUILDING),
]
LEASE = timedelta(seconds=30)


def lifecycle(order_id: str, first_seq: int, url: str | None) -> list[Recorded]:
    recorded = []
    for n, (event, status) in enumerate(LIFECYCLE):
        data = {"tokenIn": "SOL", "webhookUrl": url} if event == EventType.PENDING else {}
        e = OrderEvent(
            order_id=order_id, event=event, status=status, at=T0 + timedelta(seconds=n), data=data
        )
        recorded.append(Recorded(first_seq + n, e))
    return recorded


async def queued(engine: AsyncEngine) -> list[tuple[str, int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                WebhookDeliveryRow.order_id, WebhookDeliveryRow.seq, WebhookDeliveryRow.url
            ).order_by(WebhookDeliveryRow.seq)
        )
        return [tuple(row) for row in rows]


async def claim(engine: AsyncEngine, limit: int = 10) -> list[int]:
    async with engine.begin() as conn:
        parameters = {"limit": limit, "lease": LEASE, "host_cap": 8}
        rows = await conn.execute(CLAIM, {**parameters, "posting_hosts": [], "posting_counts": []})
        return sorted(row.seq for row in rows)


async def test_only_orders_with_a_webhook_are_queued_once_even_before_their_pending(
    database_url: str,
) -> None:
    engine = create_engine(database_url, 2)
    try:
        hooked = lifecycle("hooked", 1, URL)
        plain = lifecycle("plain", 10, None)
        late = lifecycle("late", 20, URL)
        await record_batch(engine, hooked + plain)
        # Another replica recorded `late`'s later events before this one brought its pending.
        await record_batch(engine, late[1:])
        assert [row[0] for row in await queued(engine)] == ["hooked"] * 3
        await record_batch(engine, late[:1])
        # Replays queue nothing again.
        await record_batch(engine, hooked + late)
        assert await queued(engine) == [("hooked", s, URL) for s in (1, 2, 3)] + [
            ("late", s, URL) for s in (20, 21, 22)
        ]
    finally:
        await engine.dispose()


async def test_an_orders_events_fall_due_one_at_a_time_and_a_claim_holds_them(
    database_url: str,
) -> None:
    engine = create_engine(database_url, 4)
    try:
        await record_batch(engine, lifecycle("a", 1, URL) + lifecycle("b", 10, URL))
        # Two dispatchers claim at once: each due event goes to one of them.
        first, second = await asyncio.gather(claim(engine), claim(engine))
        assert sorted(first + second) == [1, 10]  # each order's earliest event only
        assert await claim(engine) == []  # leased, and the next events wait for them
        async with engine.begin() as conn:
            await conn.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.seq == 1)
                .values(state=WebhookState.DELIVERED, lease_until=None)
            )
        assert await claim(engine) == [2]
        # A lease that ran out (its dispatcher died mid-POST) gives the event to another.
        async with engine.begin() as conn:
            await conn.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.seq == 10)
                .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert await claim(engine) == [10]
    finally:
        await engine.dispose()


async def test_the_retired_webhooks_durable_and_bucket_are_removed(
    js: JetStreamContext, nats_url: str
) -> None:
    spec = ConsumerSpec(RETIRED_WEBHOOK_DURABLE, "orders.>")
    await ensure_consumer(js, spec, CommonSettings(nats_url=nats_url), max_ack_pending=10)
    await js.create_key_value(bucket=RETIRED_WEBHOOK_BUCKET)
    await retire_webhook_consumer(js)
    with pytest.raises(NotFoundError):
        await js.consumer_info(STREAM, RETIRED_WEBHOOK_DURABLE)
    with pytest.raises(BucketNotFoundError):
        await js.key_value(RETIRED_WEBHOOK_BUCKET)
    await retire_webhook_consumer(js)  # nothing left to remove: no error


async def test_a_dispatcher_whose_lease_ran_out_changes_nothing_of_a_row_claimed_since(
    database_url: str, js: JetStreamContext
) -> None:
    """Its checks outlasted its lease, another replica claimed the row and is POSTing: the late
    replica's hold, retry or settle must not free the row under it (a third POST would start
    beside the second) nor end it."""
    engine = create_engine(database_url, 4)
    settings = NotifierSettings(database_url=database_url, nats_url="nats://127.0.0.1:1")
    late, holder = WebhookDispatcher(engine, settings, js), WebhookDispatcher(engine, settings, js)
    try:
        await record_batch(engine, lifecycle("a", 1, URL))
        (stale,) = await late._claim(1)
        async with engine.begin() as conn:  # its lease runs out
            await conn.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.msg_id == stale.msg_id)
                .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
            )
        (fresh,) = await holder._claim(1)
        assert fresh.msg_id == stale.msg_id
        claimed = await row(engine, stale.msg_id)

        await late._hold(stale)
        await late._retry_later(stale)
        await late._settle(stale, state=WebhookState.DELIVERED)
        kept = await row(engine, stale.msg_id)
        await holder._settle(fresh, state=WebhookState.DELIVERED)
        settled = await row(engine, stale.msg_id)
    finally:
        await late.stop()
        await holder.stop()
        await engine.dispose()

    assert (kept.state, kept.lease_until, kept.attempts) == (
        WebhookState.PENDING,
        claimed.lease_until,
        2,
    )
    assert kept.delivered_at is None
    assert (settled.state, settled.lease_until) == (WebhookState.DELIVERED, None)


async def row(engine: AsyncEngine, msg_id: str) -> WebhookDeliveryRow:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(WebhookDeliveryRow).where(WebhookDeliveryRow.msg_id == msg_id)
        )
        return found.one()
