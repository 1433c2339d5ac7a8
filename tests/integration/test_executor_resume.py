"""A redelivered order resumes the transaction an earlier delivery sent; it never sends twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError

from dexec.bus.history import read_order_events
from dexec.bus.publisher import build_event, emit
from dexec.bus.subjects import CHAIN_BUCKET, EXECUTOR_CONSUMER, STREAM, event_subject
from dexec.market.chain import NeverLanded, SimulatedChain, decode_record
from dexec.market.market import Market
from dexec.orders.events import OrderEvent, Submission
from dexec.orders.states import EventType
from dexec_executor.settings import ExecutorSettings
from tests.support.chain import FirstCreateHeld, landed_outcomes, landed_per_order
from tests.support.stack import Stack, service_values, start_executor
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

        async def routed() -> OrderEvent | None:
            events = [s.event for s in await read_order_events(js, order_id)]
            return next((e for e in events if e.event == EventType.ROUTED), None)

        route = (await eventually(routed, what="the order routed")).payload()
        # What an executor killed right after its send leaves: the write-ahead `submitted`
        # in the stream and the transaction on the chain, but no `confirmed`.
        earlier = ExecutorSettings(**service_values(nats_url, database_url))
        chain = await SimulatedChain.open(js, Market.from_settings(earlier), earlier)
        try:
            tx = chain.sign(order_id, route)
            await emit(js, order_id, EventType.BUILDING, attempt=1)
            submission = Submission(
                signature=tx.signature,
                blockhash=tx.blockhash,
                last_valid_block_height=tx.last_valid_block_height,
            )
            await emit(js, order_id, EventType.SUBMITTED, submission, attempt=1)
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


async def test_a_recreated_executor_durable_does_not_execute_an_order_again(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    """A recreated durable delivers every `routed` again, each as a first delivery, which
    reads nothing before its fenced `building`: that is refused, since the order's events
    follow `routed`, and the order is found ended. Past the duplicate window, so the msg ids
    of the order's events would no longer drop a second `building` or `submitted`."""
    stack: Stack = await start(without=frozenset({"executor"}))
    first = await start_executor(nats_url, database_url)
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        assert (await stack.watch(order_id))[-1]["event"] == "confirmed"
    finally:
        await first.stop()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.delete_consumer(STREAM, EXECUTOR_CONSUMER.durable)
        await _forget_msg_ids(js)
        again = await start_executor(nats_url, database_url)  # recreates the durable
        try:

            async def replayed() -> bool:
                return again.processed == 1

            await eventually(replayed, what="the order's routed delivered again and acked")
        finally:
            await again.stop()
        events = [s.event.event for s in await read_order_events(js, order_id)]
    finally:
        await nc.close()

    assert events.count(EventType.BUILDING) == 1
    assert events.count(EventType.SUBMITTED) == 1
    assert events.count(EventType.CONFIRMED) == 1
    assert await landed_per_order(nats_url) == {order_id: 1}


async def _forget_msg_ids(js: JetStreamContext) -> None:
    """Shorten the stream's duplicate window to 1 s until the server has forgotten the msg
    ids stored so far (a probe's id stops being a duplicate), as if that long had passed.
    The next service to start sets the window back."""
    config = (await js.stream_info(STREAM)).config
    config.duplicate_window = 1.0
    await js.update_stream(config)
    probe = {"Nats-Msg-Id": "dedupe-probe"}
    await js.publish("orders.probe.window", b"", headers=probe)

    async def forgotten() -> bool:
        return not (await js.publish("orders.probe.window", b"", headers=probe)).duplicate

    await eventually(forgotten, what="the duplicate window passed")
