"""A redelivered order resumes the transaction an earlier delivery sent; it never sends twice."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError

from dexec.bus.history import read_order_events
from dexec.bus.publisher import build_event, emit
from dexec.bus.subjects import (
    CHAIN_BUCKET,
    EXECUTOR_CONSUMER,
    ROUTER_CONSUMER,
    STREAM,
    event_subject,
)
from dexec.market.chain import NeverLanded, SignedSwap, SimulatedChain, decode_record
from dexec.market.market import Market
from dexec.orders.events import OrderEvent, Submission
from dexec.orders.states import EventType
from dexec_executor.settings import ExecutorSettings
from tests.support.chain import FirstCreateHeld, landed_outcomes, landed_per_order
from tests.support.stack import Stack, service_values, start_executor, start_router
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "2", "slippageBps": 300}


async def test_a_landed_transaction_is_confirmed_without_being_sent_again(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    # From here on every send is refused with a 429, on every attempt: the order can only end
    # `confirmed` if the executor sees that its transaction already landed and does not send.
    refusing = {"chain_rate_limit_rate": 1}
    stack: Stack = await start(without=frozenset({"executor"}), **refusing)
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        route = await _route_of(js, order_id)
        # What an executor killed right after its send leaves: the write-ahead `submitted`
        # in the stream and the transaction on the chain, but no `confirmed`.
        earlier = ExecutorSettings(**service_values(nats_url, database_url))
        chain = await SimulatedChain.open(js, Market.from_settings(earlier), earlier)
        try:
            tx = chain.sign(order_id, route)
            await _write_ahead(js, order_id, tx)
            assert await chain.send(tx, attempt=1, fresh=True) is not None  # it landed
        finally:
            await chain.close()

        executor = await start_executor(nats_url, database_url, **refusing)
        try:
            messages = await stack.watch(order_id)
        finally:
            await executor.stop()
    finally:
        await nc.close()

    assert [m["event"] for m in messages][-3:] == ["building", "submitted", "confirmed"]
    assert messages[-1]["data"]["txHash"] == tx.signature
    landed = [o for o in await landed_outcomes(nats_url) if o.order_id == order_id]
    assert [o.signature for o in landed] == [tx.signature]


async def test_a_send_that_reaches_the_chain_after_its_signature_was_replaced_does_not_land(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    # A blockhash valid for 250 ms and a redelivery after 1 s: the redelivery finds the first
    # signature expired by the clock while that signature's send is still on its way.
    fast = {"blockhash_valid_slots": 5, "slot_ms": 50, "ack_wait_seconds": 1}
    stack: Stack = await start(without=frozenset({"executor"}), **fast)
    executor = await start_executor(nats_url, database_url, **fast)
    assert executor.chain is not None
    late = FirstCreateHeld(executor.chain._kv)
    executor.chain._kv = late  # type: ignore[assignment]
    nc = await nats.connect(nats_url)
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        # The first send's write to the chain is held; the delivery stops answering, so
        # JetStream redelivers the order, which decides the signature expired and signs anew.
        await late.held.wait()
        messages = await stack.watch(order_id)
        late.release.set()
        refused = await late.result

        # The first delivery then ends too: its signature never landed, and before retrying
        # it finds the order confirmed, so it only acks.
        async def both_done() -> bool:
            return executor.processed >= 2

        await eventually(both_done, what="both deliveries handled")
        js = nc.jetstream()
        events = [s.event for s in await read_order_events(js, order_id)]
        submitted = [e.payload().signature for e in events if e.event == EventType.SUBMITTED]
        chain = await js.key_value(CHAIN_BUCKET)
        first_record = decode_record((await chain.get(submitted[0])).value or b"")
    finally:
        late.release.set()
        await nc.close()
        await executor.stop()

    assert len(submitted) == 2
    second = submitted[1]
    assert messages[-1]["event"] == "confirmed"
    assert messages[-1]["data"]["txHash"] == second
    confirmed = [e.payload().tx_hash for e in events if e.event == EventType.CONFIRMED]
    assert confirmed == [second]
    assert events[-1].event == EventType.CONFIRMED  # no `retrying` after the end
    landed = [o for o in await landed_outcomes(nats_url) if o.order_id == order_id]
    assert [o.signature for o in landed] == [second]
    # The late write found the chain's record that the first signature never landed.
    assert isinstance(first_record, NeverLanded)
    assert isinstance(refused, KeyWrongLastSequenceError)


async def test_an_order_whose_router_published_after_routed_is_still_executed(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    """A router delivery that ran very late leaves a `routing` after `routed`. The executor's first
    read (only the kinds an executor leaves) misses it, so its fenced `building` is refused;
    it must read every kind and go on, not give the order up."""
    stack: Stack = await start(without=frozenset({"executor"}))
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        async def routed() -> bool:
            events = [s.event.event for s in await read_order_events(js, order_id)]
            return EventType.ROUTED in events

        await eventually(routed, what="the order routed")
        # The late router's `routing`, past the duplicate window (its msg id would drop it).
        late = build_event(order_id, EventType.ROUTING, attempt=2)
        await js.publish(
            event_subject(EventType.ROUTING, order_id),
            late.to_json(),
            headers={"Nats-Msg-Id": f"{order_id}:routing:late"},
        )
        executor = await start_executor(nats_url, database_url)
        try:
            messages = await stack.watch(order_id)
        finally:
            await executor.stop()
        events = [s.event.event for s in await read_order_events(js, order_id)]
    finally:
        await nc.close()

    assert messages[-1]["event"] == "confirmed"
    assert events[-3:] == [EventType.BUILDING, EventType.SUBMITTED, EventType.CONFIRMED]
    assert await landed_per_order(nats_url) == {order_id: 1}


# What starts a stage's service alone, and the durable it reads.
STAGES = {
    "router": (start_router, ROUTER_CONSUMER),
    "executor": (start_executor, EXECUTOR_CONSUMER),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
async def test_a_recreated_durable_does_not_route_or_execute_an_order_again(
    start: Callable[..., Any], nats_url: str, database_url: str, stage: str
) -> None:
    """A recreated durable delivers every `pending` (router) or `routed` (executor) again,
    each as a first delivery, past the duplicate window, so the msg ids of the order's events
    would no longer drop a second `routing`, `building` or `submitted`. A first delivery's
    `routing` or `building` is refused instead, since the order's events follow the message
    it was handed, and the order is found past the stage."""
    start_service, consumer = STAGES[stage]
    stack: Stack = await start(without=frozenset({stage}))
    first = await start_service(nats_url, database_url)
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        assert (await stack.watch(order_id))[-1]["event"] == "confirmed"
    finally:
        await first.stop()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.delete_consumer(STREAM, consumer.durable)
        await _forget_msg_ids(js)
        again = await start_service(nats_url, database_url)  # recreates the durable
        try:

            async def replayed() -> bool:
                return again.processed == 1

            await eventually(replayed, what="the order's message delivered again and acked")
        finally:
            await again.stop()
        events = [str(s.event.event) for s in await read_order_events(js, order_id)]
    finally:
        await nc.close()

    assert events == ["pending", "routing", "routed", "building", "submitted", "confirmed"]
    assert await landed_per_order(nats_url) == {order_id: 1}


async def test_an_order_a_router_began_and_left_is_routed_by_the_next_delivery(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    """A first delivery whose `routing` is refused, of an order not routed yet (a router
    stored `routing`, then stopped, and its durable was recreated), leaves the message: its
    redelivery routes the order."""
    stack: Stack = await start(without=frozenset({"router"}))
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    nc = await nats.connect(nats_url)
    try:
        await emit(nc.jetstream(), order_id, EventType.ROUTING, attempt=1)
    finally:
        await nc.close()
    router = await start_router(nats_url, database_url, ack_wait_seconds=1)
    try:
        messages = await stack.watch(order_id)
    finally:
        await router.stop()

    events = [m["event"] for m in messages]
    assert events == ["pending", "routing", "routed", "building", "submitted", "confirmed"]
    assert messages[2]["attempt"] == 2  # routed by the redelivery (its `routing` a repeat)


async def _route_of(js: JetStreamContext, order_id: str) -> Any:
    """The order's route, once its `routed` is in the stream."""

    async def routed() -> OrderEvent | None:
        events = [s.event for s in await read_order_events(js, order_id)]
        return next((e for e in events if e.event == EventType.ROUTED), None)

    return (await eventually(routed, what="the order routed")).payload()


async def _write_ahead(js: JetStreamContext, order_id: str, tx: SignedSwap) -> None:
    """What an executor's attempt 1 writes before it sends `tx`: `building`, `submitted`."""
    await emit(js, order_id, EventType.BUILDING, attempt=1)
    submission = Submission(
        signature=tx.signature,
        blockhash=tx.blockhash,
        last_valid_block_height=tx.last_valid_block_height,
    )
    await emit(js, order_id, EventType.SUBMITTED, submission, attempt=1)


async def _forget_msg_ids(js: JetStreamContext) -> None:
    """Shorten the stream's duplicate window to about a second until the server has forgotten
    the msg ids stored so far (a probe's id stops being a duplicate), as if that long had
    passed. The next service to start sets the window back.

    The server forgets ids on a timer, which a change of the window re-arms; once in a CI run
    the ids outlived a 1 s window by 20 s, so a window that has not worked within a few
    seconds is changed again (1.0, 1.5, 2.0 s, ...)."""
    probe = {"Nats-Msg-Id": "dedupe-probe"}

    async def forgotten() -> bool:
        return not (await js.publish("orders.probe.window", b"", headers=probe)).duplicate

    async def window() -> str:
        config = (await js.stream_info(STREAM)).config
        return f"the stream's duplicate window is {config.duplicate_window} s"

    for change in range(4):
        config = (await js.stream_info(STREAM)).config
        config.duplicate_window = 1.0 + change / 2
        await js.update_stream(config)
        if change == 0:
            await js.publish("orders.probe.window", b"", headers=probe)
        with contextlib.suppress(AssertionError):
            await eventually(forgotten, timeout=config.duplicate_window + 4, what="forgotten")
            return
    await eventually(forgotten, timeout=1, what="the duplicate window passed", explain=window)


async def test_a_new_signature_whose_submitted_is_dropped_as_a_repeat_is_never_sent(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    """Attempts are counted per durable: recreated, it counts from 1 again, and within the
    duplicate window a new signature's `submitted:1` repeats the msg id of the first
    executor's. The stream drops it, so it was not written ahead, and must not be sent."""
    fast = {"blockhash_valid_slots": 5, "slot_ms": 50, "ack_wait_seconds": 1}
    stack: Stack = await start(without=frozenset({"executor"}), **fast)
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        route = await _route_of(js, order_id)
        # What the first executor left: its attempt 1 signed and wrote `submitted`, and its
        # send never reached the chain. Then its durable was deleted.
        earlier = ExecutorSettings(**service_values(nats_url, database_url, **fast))
        chain = await SimulatedChain.open(js, Market.from_settings(earlier), earlier)
        try:
            first = chain.sign(order_id, route)
            await _write_ahead(js, order_id, first)

            async def expired() -> bool:
                return chain.clock.now() > first.last_valid_block_height

            await eventually(expired, what="the first signature's blockhash expired")
        finally:
            await chain.close()

        executor = await start_executor(nats_url, database_url, **fast)
        try:
            messages = await stack.watch(order_id)
        finally:
            await executor.stop()
        events = [s.event for s in await read_order_events(js, order_id)]
    finally:
        await nc.close()

    assert messages[-1]["event"] == "confirmed"
    submitted = {e.payload().signature for e in events if e.event == EventType.SUBMITTED}
    landed = [o.signature for o in await landed_outcomes(nats_url) if o.order_id == order_id]
    assert len(landed) == 1
    assert set(landed) <= submitted  # written ahead
    assert messages[-1]["data"]["txHash"] == landed[0]
