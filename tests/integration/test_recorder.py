"""The recorder's batches against a real Postgres: each event once, whatever the batch shape;
and the messages it can never record (no order events, or events Postgres refuses) terminated
without holding up the others."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from dexec.bus.publisher import MSG_ID_HEADER, emit
from dexec.bus.subjects import STREAM, event_subject
from dexec.db.engine import create_engine
from dexec.db.models import OrderEventRow, OrderRow, WebhookDeliveryRow
from dexec.db.projection import row_values
from dexec.orders.events import OrderEvent
from dexec.orders.projection import fold
from dexec.orders.states import EventType, OrderStatus
from dexec_notifier.data_faults import describe, is_data_fault
from dexec_notifier.recorder import Recorded, Recorder, record_batch, record_isolating
from dexec_notifier.settings import NotifierSettings
from dexec_tools.servers import free_port
from tests.support.events import SPEC, payload_data, spec_data
from tests.support.recording import publish, recording
from tests.support.waiting import eventually

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LIFECYCLE = [
    (EventType.PENDING, OrderStatus.PENDING),
    (EventType.ROUTING, OrderStatus.ROUTING),
    (EventType.ROUTED, OrderStatus.ROUTING),
    (EventType.CONFIRMED, OrderStatus.CONFIRMED),
]
# Event data as it comes (amounts as strings), with what JSON encoders tend to differ on.
DATA = {
    "text": 'é ü 中 \u2028 "quoted" \\ /',
    "amountIn": "18446744073709551616",
    "negative": -(2**63),
    "float": 0.1,
    "nested": {"list": [1, "2", None, True, 1.5e-7]},
    "digits": "1234567890123456789012",
}


def events(orders: int) -> list[Recorded]:
    recorded = []
    for stage, (event, status) in enumerate(LIFECYCLE):
        for n in range(orders):
            data = {"tokenIn": "SOL", "amountIn": str(n + 1)} if event == EventType.PENDING else {}
            if event == EventType.ROUTED:
                data = {**DATA, "n": n}
            at = T0 + timedelta(seconds=stage, milliseconds=n)
            e = OrderEvent(order_id=f"o{n:03d}", event=event, status=status, at=at, data=data)
            recorded.append(Recorded(len(recorded) + 1, e))
    return recorded


async def test_batches_of_any_size_with_repeats_record_each_event_once(database_url: str) -> None:
    engine = create_engine(database_url, 2)
    try:
        all_events = events(7)
        written = []
        # Batches of several sizes, each repeating events of earlier batches and itself.
        start = 0
        for size in (1, 3, 5, 2, 8, 9):
            batch = all_events[start : start + size]
            replay = all_events[max(0, start - 2) : start]
            written.append(await record_batch(engine, replay + batch + batch[:1]))
            start += size
        assert start == len(all_events)
        fresh = [r.seq for w in written for r in w.fresh]
        # Each event new exactly once (a repeat within its own batch rides along with it).
        assert sorted(set(fresh)) == [r.seq for r in all_events]
        assert (await record_batch(engine, all_events)).fresh == []
        assert sum(len(w.finished) for w in written) == 7

        async with engine.connect() as conn:
            rows = list(await conn.execute(select(OrderEventRow).order_by(OrderEventRow.seq)))
            orders = list(await conn.execute(select(OrderRow).order_by(OrderRow.id)))
        assert [r.seq for r in rows] == [r.seq for r in all_events]
        assert [r.data for r in rows] == [r.event.data for r in all_events]
        assert [o.id for o in orders] == [f"o{n:03d}" for n in range(7)]
        for n, o in enumerate(orders):
            assert o.status == "confirmed"
            assert o.last_seq == all_events[-7 + n].seq
            assert o.spec == {"tokenIn": "SOL", "amountIn": str(n + 1)}
            assert o.route == {**DATA, "n": n}
            assert o.created_at == T0 + timedelta(milliseconds=n)
    finally:
        await engine.dispose()


# Notes which columns each UPDATE of `orders` sets (a trigger `UPDATE OF c` fires when `c` is
# in the SET list, whether or not its value changes).
NOTE_COLUMN_WRITES = [
    "CREATE TABLE column_writes (order_id text, col text)",
    """CREATE FUNCTION note_write() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO column_writes VALUES (NEW.id, TG_ARGV[0]); RETURN NEW; END $$""",
    *(
        f"CREATE TRIGGER {c}_written BEFORE UPDATE OF {c} ON orders "
        f"FOR EACH ROW EXECUTE FUNCTION note_write('{c}')"
        for c in ("route", "spec", "status")
    ),
]


async def test_a_batch_writes_back_only_the_columns_its_events_changed(database_url: str) -> None:
    engine = create_engine(database_url, 2)
    try:
        async with engine.begin() as conn:
            for statement in NOTE_COLUMN_WRITES:
                await conn.execute(text(statement))
        orders = 3
        lifecycle = events(orders)
        # One batch per stage: each order's row is created, then updated three times.
        for stage in range(len(LIFECYCLE)):
            await record_batch(engine, lifecycle[stage * orders : (stage + 1) * orders])
        async with engine.connect() as conn:
            writes = Counter((await conn.execute(text("SELECT col FROM column_writes"))).scalars())
            routes = (await conn.execute(select(OrderRow.route).order_by(OrderRow.id))).scalars()
            assert list(routes) == [{**DATA, "n": n} for n in range(orders)]
    finally:
        await engine.dispose()
    # The route once per order (at its `routed`), the spec never after the insert, the status
    # when it moved (`routing` and `confirmed`; `routed` keeps `routing`).
    assert writes == {"route": orders, "status": 2 * orders}


async def test_jsonb_reads_as_the_stdlib_reads_it(database_url: str) -> None:
    engine = create_engine(database_url, 2)
    try:
        await record_batch(engine, events(2))
        async with engine.connect() as conn:
            rows = await conn.execute(select(OrderEventRow.data).order_by(OrderEventRow.seq))
            ours = [r.data for r in rows]
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        raw = await conn.fetch("SELECT data::text AS data FROM order_events ORDER BY seq")
        texts = [r["data"] for r in raw]
    finally:
        await conn.close()
    # The same values, types and key order: the API answers with the same JSON.
    assert [repr(d) for d in ours] == [repr(json.loads(t)) for t in texts]
    assert any(d.get("negative") == -(2**63) and isinstance(d["negative"], int) for d in ours)


async def test_an_order_inserted_meanwhile_by_another_replica_gets_this_batchs_events(
    database_url: str,
) -> None:
    """Two recorders see a new order at once: the one whose insert loses still applies its events.

    The other replica is played by a transaction that has inserted the order's row and not
    committed yet, which is where a replica's batch stands when this one looks for the row.
    """
    pending, routing, routed, confirmed = events(1)
    engine = create_engine(database_url, 2)
    try:
        other = await engine.connect()
        transaction = await other.begin()
        await other.execute(
            OrderRow.__table__.insert(), row_values(fold("o000", [(1, pending.event)]))
        )

        ours = asyncio.create_task(record_batch(engine, [routing, routed, confirmed]))

        async def ours_waits_for_the_row_lock() -> bool:
            async with engine.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "select count(*) from pg_stat_activity"
                        " where datname = current_database() and wait_event_type = 'Lock'"
                    )
                )
            return waiting > 0 or ours.done()

        await eventually(ours_waits_for_the_row_lock, timeout=10, what="the insert to wait")
        await transaction.commit()
        await other.close()
        written = await ours

        assert [r.seq for r in written.fresh] == [routing.seq, routed.seq, confirmed.seq]
        async with engine.connect() as conn:
            order = (await conn.execute(select(OrderRow))).one()
        assert order.status == "confirmed"
        assert order.last_seq == confirmed.seq
        assert order.spec == pending.event.data
        assert order.route == routed.event.data
        assert order.created_at == pending.event.at
    finally:
        await engine.dispose()


async def test_below_saturation_the_next_batch_gathers_what_came_while_it_lingered(
    js: JetStreamContext, nats_url: str, database_url: str
) -> None:
    """One event is recorded on its own; ten published during the linger go in one batch."""
    settings = NotifierSettings(
        nats_url=nats_url, database_url=database_url, recorder_linger_seconds=1.0
    )
    engine = create_engine(database_url, 2)
    recorder = Recorder(js, engine, settings)
    batches = "dexec_recorder_batch_size_count"
    events = "dexec_recorder_batch_size_sum"
    before = {name: REGISTRY.get_sample_value(name) or 0.0 for name in (batches, events)}

    async def recorded(count: int) -> bool:
        async with engine.connect() as conn:
            return await conn.scalar(text("select count(*) from orders")) == count

    await recorder.start()
    try:
        await emit(js, "linger-first", EventType.PENDING, SPEC)
        await eventually(lambda: recorded(1), timeout=10, what="the first event recorded")
        for n in range(10):
            await emit(js, f"linger-{n}", EventType.PENDING, SPEC)
        await eventually(lambda: recorded(11), timeout=10, what="the ten recorded")
    finally:
        await recorder.stop()
        await engine.dispose()

    grown = {name: (REGISTRY.get_sample_value(name) or 0.0) - before[name] for name in before}
    assert grown == {batches: 2, events: 11}


# Events OrderEvent accepts and Postgres (or the driver on its way) refuses, whenever tried.
def refused_events() -> dict[str, OrderEvent]:
    def pending(order_id: str, **data: object) -> OrderEvent:
        return OrderEvent(
            order_id=order_id,
            event=EventType.PENDING,
            status=OrderStatus.PENDING,
            at=T0,
            data=spec_data(**data),
        )

    return {
        "a NUL in JSONB": pending("nul-json", note="a\u0000b"),
        "a NUL in text": pending("nul\u0000text"),
        "an id too long for its column": pending("x" * 41),
        "an attempt beyond 32 bits": pending("big-attempt").model_copy(update={"attempt": 2**40}),
        "an integer beyond 64 bits in the data": pending("big-int", n=2**64),
        "an amount beyond numeric(40)": pending("big-amount", amountIn="9" * 41),
        "an amount that is no number": pending("nan-amount", amountIn="lots"),
        "a token too long for its column": pending("long-token", tokenIn="T" * 17),
    }


@pytest.mark.parametrize("case", list(refused_events()))
async def test_a_value_postgres_refuses_is_the_datas_fault(database_url: str, case: str) -> None:
    engine = create_engine(database_url, 2)
    try:
        with pytest.raises(Exception) as refused:
            await record_batch(engine, [Recorded(1, refused_events()[case])])
    finally:
        await engine.dispose()
    assert is_data_fault(refused.value), describe(refused.value)
    assert "INSERT" not in describe(refused.value)  # the reason, not the batch


async def test_a_lost_connection_or_a_timeout_is_not_the_datas_fault(database_url: str) -> None:
    failures: list[BaseException] = []
    engine = create_engine(database_url, 2)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET statement_timeout = 1"))
            with pytest.raises(DBAPIError) as timed_out:
                await conn.execute(text("SELECT pg_sleep(1)"))
            failures.append(timed_out.value)
        conn = await engine.connect()
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        async with engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as lost:
            await conn.execute(text("SELECT 1"))
        failures.append(lost.value)
        await conn.invalidate()
    finally:
        await engine.dispose()
    unreachable = create_engine(f"postgresql+asyncpg://dexec@127.0.0.1:{free_port()}/dexec", 1)
    try:
        with pytest.raises(Exception) as refused:
            await record_batch(unreachable, events(1))
        failures.append(refused.value)
    finally:
        await unreachable.dispose()
    assert [is_data_fault(f) for f in failures] == [False, False, False], failures


async def test_isolating_records_every_event_but_those_postgres_refuses(database_url: str) -> None:
    lifecycle = events(3)
    poison = [Recorded(100 + n, e) for n, e in enumerate(list(refused_events().values())[:3])]
    # The refused events among the good ones: at the start, in the middle and at the end.
    batch = [poison[0], *lifecycle[:6], poison[1], *lifecycle[6:], poison[2]]
    engine = create_engine(database_url, 2)
    try:
        written = await record_isolating(engine, batch)
        assert (await record_isolating(engine, batch)).fresh == []  # a replay changes nothing
        async with engine.connect() as conn:
            recorded = list(await conn.scalars(select(OrderEventRow.seq).order_by("seq")))
            orders = list(await conn.execute(select(OrderRow).order_by(OrderRow.id)))
    finally:
        await engine.dispose()
    assert written.rejected == poison
    assert [r.seq for r in written.fresh] == [r.seq for r in lifecycle]
    assert len(written.finished) == 3  # each order's end to end, once
    assert recorded == [r.seq for r in lifecycle]
    assert [(o.id, o.status, o.last_seq) for o in orders] == [
        (f"o{n:03d}", "confirmed", lifecycle[-3 + n].seq) for n in range(3)
    ]


async def recorded_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.scalars(select(OrderEventRow.msg_id)))


async def recorded(engine: AsyncEngine, msg_ids: set[str]) -> bool:
    return msg_ids <= await recorded_ids(engine)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rejected(reason: str) -> float:
    return sample("dexec_recorder_rejected_events_total", reason=reason)


END_TO_END = ("dexec_stage_duration_seconds_count", "dexec_stage_duration_seconds_sum")


async def test_an_event_postgres_refuses_is_terminated_and_its_batch_recorded_without_it(
    js: JetStreamContext, nats_url: str, database_url: str
) -> None:
    """A poison event amid a batch: the others are recorded, it is terminated and counted, and
    the recorder goes on with the events after it."""
    spec = spec_data(webhookUrl="http://127.0.0.1:9/hook")
    keep = [
        OrderEvent(
            order_id="keep",
            event=event,
            status=status,
            at=T0 + timedelta(seconds=n),
            data=spec if event == EventType.PENDING else payload_data(event),
        )
        for n, (event, status) in enumerate(LIFECYCLE)
    ]
    others = [
        OrderEvent(
            order_id=f"other{n}",
            event=EventType.PENDING,
            status=OrderStatus.PENDING,
            data=spec_data(),
        )
        for n in range(4)
    ]
    poison = refused_events()["a NUL in JSONB"]
    # The order `keep`'s events on both sides of the poison: its halves split them.
    batch = [keep[0], others[0], keep[1], poison, keep[2], others[1], others[2], keep[3], others[3]]
    good = {e.msg_id for e in batch if e is not poison}
    after = OrderEvent(
        order_id="after", event=EventType.PENDING, status=OrderStatus.PENDING, data=spec_data()
    )
    seqs = {e.msg_id: await publish(js, e) for e in batch}

    labels = {"stage": "pending_to_confirmed"}
    before = {
        "refused": rejected("refused"),
        "malformed": rejected("malformed"),
        "batches": sample("dexec_recorder_batch_size_count"),
        **{name: sample(name, **labels) for name in END_TO_END},
    }
    async with recording(js, nats_url, database_url) as (engine, terminated):

        async def poison_terminated() -> bool:
            return bool(terminated)

        await eventually(
            lambda: recorded(engine, good),
            timeout=15,
            what="the batch's other events recorded",
            explain=lambda: recorded_ids(engine),
        )
        await eventually(poison_terminated, timeout=10, what="the poison terminated")
        await publish(js, after)
        await eventually(lambda: recorded(engine, {after.msg_id}), timeout=10, what="a later event")
        ids = await recorded_ids(engine)
        async with engine.connect() as conn:
            orders = set(await conn.scalars(select(OrderRow.id)))
            order = (await conn.execute(select(OrderRow).where(OrderRow.id == "keep"))).one()
            hooks = await conn.scalar(
                select(func.count()).where(WebhookDeliveryRow.order_id == "keep")
            )

    assert ids == good | {after.msg_id}
    assert poison.order_id not in orders
    assert terminated == [seqs[poison.msg_id]]
    assert rejected("refused") - before["refused"] == 1
    assert rejected("malformed") - before["malformed"] == 0
    # The nine came in one batch, the poison included, and the later event in another.
    assert sample("dexec_recorder_batch_size_count") - before["batches"] == 2
    # The order whose events were split across transactions is as one batch leaves it.
    assert (order.status, order.spec, order.last_seq) == ("confirmed", spec, seqs[keep[3].msg_id])
    assert order.created_at == T0
    assert hooks == len(keep)
    # Its end to end measured once (pending at T0, confirmed 3 s later).
    grown = {name: sample(name, **labels) - before[name] for name in END_TO_END}
    assert grown == {END_TO_END[0]: 1, END_TO_END[1]: pytest.approx(3.0)}


async def test_a_message_that_is_not_an_order_event_is_terminated_and_counted(
    js: JetStreamContext, nats_url: str, database_url: str
) -> None:
    first, last = (
        OrderEvent(
            order_id=order_id,
            event=EventType.PENDING,
            status=OrderStatus.PENDING,
            data=spec_data(),
        )
        for order_id in ("first", "last")
    )
    # A `retrying` event without its stage has no message id, the key of its row.
    stageless = b'{"orderId": "stageless", "event": "retrying", "status": "routing"}'
    await publish(js, first)
    garbled = (await js.publish("orders.pending.garbled", b"{not json", stream=STREAM)).seq
    stageless_seq = (
        await js.publish(
            "orders.retrying.stageless",
            stageless,
            stream=STREAM,
            headers={"Nats-Msg-Id": "stageless:retrying"},
        )
    ).seq
    await publish(js, last)

    malformed = rejected("malformed")
    async with recording(js, nats_url, database_url) as (engine, terminated):

        async def both_terminated() -> bool:
            return len(terminated) == 2

        await eventually(both_terminated, timeout=10, what="two terminations")
        both = {first.msg_id, last.msg_id}
        await eventually(lambda: recorded(engine, both), timeout=10, what="the two recorded")
        ids = await recorded_ids(engine)
    assert sorted(terminated) == [garbled, stageless_seq]
    assert rejected("malformed") - malformed == 2
    assert ids == {first.msg_id, last.msg_id}


async def test_events_whose_data_would_fail_the_fold_are_malformed_and_the_rest_recorded(
    js: JetStreamContext, nats_url: str, database_url: str
) -> None:
    """Events that parse, but that the fold or the order's row would fail on in Python, on
    every try: an `at` without a zone among the order's aware ones, a `pending` whose amountIn
    is null. Terminated as malformed, not retried: the events around and after them are
    recorded."""

    def event(order_id: str, kind: EventType, status: OrderStatus, **data: object) -> OrderEvent:
        return OrderEvent(order_id=order_id, event=kind, status=status, at=T0, data=data)

    before = event("before", EventType.PENDING, OrderStatus.PENDING, **spec_data())
    naive_order = event("naive", EventType.PENDING, OrderStatus.PENDING, **spec_data())
    naive = event("naive", EventType.ROUTING, OrderStatus.ROUTING)
    null_amount = event("null-amount", EventType.PENDING, OrderStatus.PENDING)
    null_amount = null_amount.model_copy(update={"data": spec_data(amountIn=None)})
    after = event("after", EventType.PENDING, OrderStatus.PENDING, **spec_data())

    await publish(js, before)
    await publish(js, naive_order)
    body = orjson.loads(naive.to_json())
    body["at"] = "2025-01-01T00:00:01"  # no zone
    naive_seq = (
        await js.publish(
            event_subject(naive.event, naive.order_id),
            orjson.dumps(body),
            stream=STREAM,
            headers={MSG_ID_HEADER: naive.msg_id},
        )
    ).seq
    null_seq = await publish(js, null_amount)

    malformed = rejected("malformed")

    good = {before.msg_id, naive_order.msg_id}
    async with recording(js, nats_url, database_url) as (engine, terminated):

        async def both_terminated() -> bool:
            return len(terminated) == 2

        await eventually(
            lambda: recorded(engine, good),
            timeout=15,
            what="the good events of the batch recorded",
            explain=lambda: recorded_ids(engine),
        )
        await eventually(both_terminated, timeout=10, what="two terminations")
        await publish(js, after)
        await eventually(lambda: recorded(engine, {after.msg_id}), timeout=10, what="a later event")
        ids = await recorded_ids(engine)
    assert sorted(terminated) == [naive_seq, null_seq]
    assert rejected("malformed") - malformed == 2
    assert ids == good | {after.msg_id}
