"""Two deliveries of one order at once (the first paused past its ack wait): one transaction.

JetStream redelivers an order whose delivery stopped answering, and the stopped one may wake
up later. Neither may sign a second transaction beside one that can still land, and the order
may not end `failed` while a transaction of its own can still land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dexec.bus.errors import Superseded
from dexec.market.chain import RateLimited, SignedSwap
from dexec.orders.states import EventType
from tests.support.chain import FirstCreateHeld, landed_outcomes
from tests.support.stack import Stack, start_executor
from tests.support.stream import order_events
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "2", "slippageBps": 300}


async def _events(nats_url: str, order_id: str) -> list[EventType]:
    return [event.event for event in await order_events(nats_url, order_id)]


async def test_a_delivery_paused_before_signing_does_not_sign_beside_a_later_one(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    fast = {"ack_wait_seconds": 1}
    stack: Stack = await start(without=frozenset({"executor"}), **fast)
    executor = await start_executor(nats_url, database_url, **fast)
    paused, resume = asyncio.Event(), asyncio.Event()
    first: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    resume_or_sign = executor._resume_or_sign

    async def first_paused(*args: Any) -> Any:
        """The first delivery read the order's events, then stops until `resume`."""
        if paused.is_set():
            return await resume_or_sign(*args)
        paused.set()
        await resume.wait()
        try:
            result = await resume_or_sign(*args)
        except BaseException as exc:
            first.set_result(exc)
            raise
        first.set_result(result)
        return result

    executor._resume_or_sign = first_paused  # type: ignore[method-assign]
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        await paused.wait()
        messages = await stack.watch(order_id)  # the redelivery confirms it
        assert executor.chain is not None
        clock, slot = executor.chain.clock, executor.chain.clock.now()

        async def next_slot() -> bool:  # a signature made now differs from the redelivery's
            return clock.now() > slot

        await eventually(next_slot, what="the next slot")
        resume.set()
        woken = await asyncio.wait_for(first, 10)
    finally:
        resume.set()
        await executor.stop()

    assert messages[-1]["event"] == "confirmed"
    assert isinstance(woken, Superseded)  # it found the redelivery's submission and stopped
    events = await _events(nats_url, order_id)
    assert events.count(EventType.SUBMITTED) == 1
    assert events.count(EventType.CONFIRMED) == 1
    landed = [o for o in await landed_outcomes(nats_url) if o.order_id == order_id]
    assert len(landed) == 1


async def test_the_last_attempt_waits_for_a_resumed_signature_rather_than_fail(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    # Blockhashes valid for 10 s, two attempts: the redelivery is the last one.
    fast = {
        "ack_wait_seconds": 1,
        "retry_max_attempts": 2,
        "slot_ms": 50,
        "blockhash_valid_slots": 200,
    }
    stack: Stack = await start(without=frozenset({"executor"}), **fast)
    executor = await start_executor(nats_url, database_url, **fast)
    chain = executor.chain
    assert chain is not None
    late = FirstCreateHeld(chain._kv)
    chain._kv = late  # type: ignore[assignment]
    refused = asyncio.Event()
    send = chain.send

    async def watched_send(tx: SignedSwap, attempt: int, fresh: bool = False) -> Any:
        try:
            return await send(tx, attempt, fresh=fresh)
        except RateLimited:
            refused.set()
            raise

    chain.send = watched_send  # type: ignore[method-assign]
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        # The first delivery's send is on its way to the chain, held; from now on every
        # send is refused with a 429, so the redelivery, the last attempt, cannot send.
        await late.held.wait()
        chain._settings = chain._settings.model_copy(update={"chain_rate_limit_rate": 1})
        await asyncio.wait_for(refused.wait(), 10)
        late.release.set()  # the held send lands
        messages = await stack.watch(order_id)
    finally:
        late.release.set()
        await executor.stop()

    assert messages[-1]["event"] == "confirmed"
    events = await _events(nats_url, order_id)
    assert EventType.FAILED not in events
    landed = [o for o in await landed_outcomes(nats_url) if o.order_id == order_id]
    assert [o.signature for o in landed] == [messages[-1]["data"]["txHash"]]
