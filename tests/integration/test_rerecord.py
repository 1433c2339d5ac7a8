"""`dexec-rerecord` (its console script, run for real): events the recorder terminated because
Postgres refused them are recorded once the schema is fixed, folded into their orders' rows
and queued for their webhooks; the rest are told apart in its output and exit status."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from nats.js import JetStreamContext
from sqlalchemy import func, select, text

from dexec.db.engine import create_engine
from dexec.db.models import OrderEventRow, OrderRow, WebhookDeliveryRow
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus
from tests.support.events import SPEC, payload_data, spec_data
from tests.support.recording import publish, recording
from tests.support.waiting import eventually

RERECORD = Path(sys.executable).with_name("dexec-rerecord")  # installed by uv sync
WIDE_TOKEN = "T" * 17  # one more than `orders.token_in` holds
LIFECYCLE = [
    (EventType.PENDING, OrderStatus.PENDING),
    (EventType.ROUTING, OrderStatus.ROUTING),
    (EventType.ROUTED, OrderStatus.ROUTING),
    (EventType.CONFIRMED, OrderStatus.CONFIRMED),
]


async def run_rerecord(nats_url: str, database_url: str, *seqs: int) -> tuple[int, list[str]]:
    env = {**os.environ, "DEXEC_NATS_URL": nats_url, "DEXEC_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        str(RERECORD), *map(str, seqs), env=env, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        stdout, _ = await process.communicate()
    return process.returncode or 0, stdout.decode().splitlines()


async def test_refused_events_are_recorded_once_what_refused_them_is_fixed(
    js: JetStreamContext, nats_url: str, database_url: str
) -> None:
    spec = spec_data(tokenIn=WIDE_TOKEN, webhookUrl="http://127.0.0.1:9/hook")
    wide = [
        OrderEvent(
            order_id="wide",
            event=event,
            status=status,
            at=SPEC.created_at + timedelta(seconds=n),
            data=spec if event == EventType.PENDING else payload_data(event),
        )
        for n, (event, status) in enumerate(LIFECYCLE)
    ]
    nul = OrderEvent(
        order_id="nul",
        event=EventType.PENDING,
        status=OrderStatus.PENDING,
        data=spec_data(note="a\u0000b"),  # JSONB can never hold it
    )
    seqs = [await publish(js, e) for e in [*wide, nul]]
    pending_seq, routed_seq, nul_seq = seqs[0], seqs[2], seqs[4]
    later = {e.msg_id for e in wide[1:]}

    async with recording(js, nats_url, database_url) as (engine, terminated):

        async def recorded_and_terminated() -> bool:
            async with engine.connect() as conn:
                ids = set(await conn.scalars(select(OrderEventRow.msg_id)))
            return later <= ids and sorted(terminated) == [pending_seq, nul_seq]

        await eventually(recorded_and_terminated, timeout=15, what="3 recorded, 2 terminated")
        async with engine.connect() as conn:
            before = (await conn.execute(select(OrderRow).where(OrderRow.id == "wide"))).one()

    engine = create_engine(database_url, 1)
    try:
        async with engine.begin() as conn:  # the fix: a migration widening the column
            await conn.execute(text("alter table orders alter column token_in type varchar(32)"))

        code, lines = await run_rerecord(
            nats_url, database_url, nul_seq, pending_seq, routed_seq, 10**6
        )
        again, again_lines = await run_rerecord(nats_url, database_url, pending_seq)

        async with engine.connect() as conn:
            after = (await conn.execute(select(OrderRow).where(OrderRow.id == "wide"))).one()
            events = await conn.scalar(select(func.count()).where(OrderEventRow.order_id == "wide"))
            hooks = set(
                await conn.scalars(
                    select(WebhookDeliveryRow.msg_id).where(WebhookDeliveryRow.order_id == "wide")
                )
            )
    finally:
        await engine.dispose()

    assert lines == [
        f"{pending_seq}\trecorded",
        f"{routed_seq}\talready recorded",
        f"{nul_seq}\trefused again",
        f"{10**6}\tnot in the stream",
    ]
    assert code == 1  # not every sequence could be recorded
    assert (again, again_lines) == (0, [f"{pending_seq}\talready recorded"])

    # Without its `pending` the row had no spec; the late `pending` folds in where it belongs.
    assert (before.spec, before.token_in, before.status) == (None, None, "confirmed")
    assert after.spec == spec and after.token_in == WIDE_TOKEN
    assert after.status == "confirmed" and after.created_at == wide[0].at
    assert events == len(wide)
    # The URL came with the `pending`: every event of the order is queued for its webhook.
    assert hooks == {e.msg_id for e in wide}
