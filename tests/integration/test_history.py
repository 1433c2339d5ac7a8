"""An order's history read from the stream: batched direct gets against a real NATS."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import nats
from nats.js import JetStreamContext

from dexec.bus.history import BATCH, HistoryReader, read_latest_events, read_order_events
from dexec.bus.publisher import emit
from dexec.bus.subjects import event_subject
from dexec.orders.events import Execution, Retry, Submission
from dexec.orders.states import EventType, OrderStatus

SUBMISSION = Submission(signature="sig", blockhash="hash", last_valid_block_height=151)
EXECUTION = Execution(
    tx_hash="sig",
    slot=7,
    in_amount=1_000_000_000,
    out_amount=150_000_000,
    executed_price=Decimal("150"),
    fee_lamports=5000,
)


async def test_histories_come_whole_in_order_past_a_batch_and_after_a_sequence(
    js: JetStreamContext,
) -> None:
    # Two orders interleaved, the long one past one batch (retries make histories long).
    long_id, short_id = "hist-long-order", "hist-short-order"
    for attempt in range(1, BATCH + 11):
        await emit(
            js,
            long_id,
            EventType.RETRYING,
            Retry(stage="executor", code="RPC_RATE_LIMITED", reason="429", delay_seconds=0.1),
            attempt=attempt,
            status=OrderStatus.SUBMITTED,
        )
        if attempt <= 3:
            await emit(js, short_id, EventType.SUBMITTED, SUBMISSION, attempt=attempt)

    reader = HistoryReader.of(js)
    long = await read_order_events(js, long_id)
    assert [s.event.attempt for s in long] == list(range(1, BATCH + 11))
    assert [s.seq for s in long] == sorted(s.seq for s in long)
    assert {s.event.order_id for s in long} == {long_id}
    assert long == await reader.read_one_by_one(long_id)

    short = await read_order_events(js, short_id)
    assert [(s.event.event, s.event.attempt) for s in short] == [
        (EventType.SUBMITTED, 1),
        (EventType.SUBMITTED, 2),
        (EventType.SUBMITTED, 3),
    ]
    assert await read_order_events(js, short_id, after_seq=short[0].seq) == short[1:]
    assert await read_order_events(js, short_id, after_seq=short[-1].seq) == []
    assert await read_order_events(js, "hist-no-such-order") == []

    # The latest event of some kinds: the last submission (attempt 3) and the end, in stream
    # order; a kind the order does not have is left out.
    await emit(js, short_id, EventType.CONFIRMED, EXECUTION)
    kinds = [EventType.CONFIRMED, EventType.FAILED, EventType.SUBMITTED]
    latest = await read_latest_events(js, short_id, kinds)
    assert [(s.event.event, s.event.attempt) for s in latest] == [
        (EventType.SUBMITTED, 3),
        (EventType.CONFIRMED, 1),
    ]
    whole = await read_order_events(js, short_id)
    assert latest == [whole[2], whole[3]]
    assert latest == await reader.read_latest_one_by_one(short_id, kinds)
    assert await read_latest_events(js, long_id, [EventType.CONFIRMED]) == []
    assert await read_latest_events(js, "hist-no-such-order", kinds) == []


async def test_reads_that_start_together_on_a_new_connection_get_each_event_once(
    js: JetStreamContext, nats_url: str
) -> None:
    order_id = "hist-together"
    for attempt in (1, 2):
        await emit(js, order_id, EventType.SUBMITTED, SUBMISSION, attempt=attempt)
    await emit(js, order_id, EventType.CONFIRMED, EXECUTION)
    expected = await read_order_events(js, order_id)
    assert len(expected) == 3

    nc = await nats.connect(nats_url)
    try:
        fresh = nc.jetstream()
        kinds = [EventType.SUBMITTED, EventType.CONFIRMED]
        wholes, latests = await asyncio.gather(
            asyncio.gather(*(read_order_events(fresh, order_id) for _ in range(4))),
            asyncio.gather(*(read_latest_events(fresh, order_id, kinds) for _ in range(4))),
        )
    finally:
        await nc.close()
    assert wholes == [expected] * 4
    assert latests == [expected[1:]] * 4


async def test_a_message_on_an_orders_subject_that_is_not_an_event_is_passed_by(
    js: JetStreamContext,
) -> None:
    """Only a publisher outside the engine can put one there; the order stays readable, its
    events whole and once each, also when stray messages fill whole batches: the next batch
    starts after the last message read, not after the last event kept."""
    order_id = "hist-with-a-stray"
    retrying = event_subject(EventType.RETRYING, order_id)
    retry = Retry(stage="executor", code="RPC_RATE_LIMITED", reason="429", delay_seconds=0.1)

    async def retried(attempt: int) -> None:
        status = OrderStatus.SUBMITTED
        await emit(js, order_id, EventType.RETRYING, retry, attempt=attempt, status=status)

    for attempt in (1, 2, 3):
        await retried(attempt)
    for _ in range(BATCH):  # ends the first batch, and is the whole second one
        await js.publish(retrying, b"{not json")
    for attempt in (4, 5, 6):
        await retried(attempt)
    await js.publish(event_subject(EventType.SUBMITTED, order_id), b"")
    await emit(js, order_id, EventType.CONFIRMED, EXECUTION)

    async with asyncio.timeout(10):
        events = await read_order_events(js, order_id)
    attempts = [s.event.attempt for s in events if s.event.event == EventType.RETRYING]
    assert attempts == [1, 2, 3, 4, 5, 6]
    assert events[-1].event.event == EventType.CONFIRMED
    assert events == await HistoryReader.of(js).read_one_by_one(order_id)
    latest = await read_latest_events(js, order_id, [EventType.SUBMITTED, EventType.CONFIRMED])
    assert [s.event.event for s in latest] == [EventType.CONFIRMED]
