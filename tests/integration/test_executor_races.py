"""Two deliveries of one order at once (the first paused past its ack wait): one transaction.

JetStream redelivers an order whose delivery stopped answering, and the stopped one may wake
up later. Neither may sign a second transaction beside one that can still land, the order
may not end `failed` while a transaction of its own can still land, and nothing may be signed
for an order that has failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dexec.bus.errors import Superseded
from dexec.market.chain import RateLimited, SignedSwap
from dexec.orders.states import EventType
from dexec_executor.service import ExecutorService
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


class LateWaker:
    """An executor whose first delivery stops answering right after its (dropped) send, until
    `wake` is set, while the redelivery (attempt 2) is held at `hold_point` until `go_on` is
    set: so a test can wake the first at a chosen moment of the second's work."""

    def __init__(self, executor: ExecutorService, hold_point: str) -> None:
        self.first_paused, self.wake = asyncio.Event(), asyncio.Event()
        self.second_held, self.go_on = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        self.finished: dict[int, asyncio.Future[None]] = {
            attempt: loop.create_future() for attempt in (1, 2)
        }
        chain, worker = executor.chain, executor._worker
        assert chain is not None and worker is not None
        send, handle = chain.send, worker._handle

        async def paused_send(tx: SignedSwap, attempt: int, fresh: bool = False) -> Any:
            result = await send(tx, attempt, fresh=fresh)
            if attempt == 1:
                self.first_paused.set()
                await self.wake.wait()
            return result

        async def tracked_handle(event: Any, msg: Any, attempt: int) -> None:
            try:
                await handle(event, msg, attempt)
            finally:
                if attempt in self.finished and not self.finished[attempt].done():
                    self.finished[attempt].set_result(None)

        chain.send = paused_send  # type: ignore[method-assign]
        worker._handle = tracked_handle  # type: ignore[method-assign]
        # The chain's wait for a confirmation, or one of the executor's own steps.
        owner: object = chain if hasattr(chain, hold_point) else executor
        held = getattr(owner, hold_point)

        async def held_second(*args: Any, **kwargs: Any) -> Any:
            # The call made while the first delivery is paused is the redelivery's.
            if self.first_paused.is_set() and not self.wake.is_set():
                self.second_held.set()
                await self.go_on.wait()
            return await held(*args, **kwargs)

        setattr(owner, hold_point, held_second)

    def release(self) -> None:
        self.wake.set()
        self.go_on.set()


# One attempt per order, so each delivery is the last; the first delivery's send is dropped,
# and its blockhash (10 slots of 50 ms) expires before the redelivery (after a 1 s ack wait)
# reads the order, which then records that it never landed and signs a second transaction.
LAST_ATTEMPT_EACH_TIME = {
    "ack_wait_seconds": 1,
    "retry_max_attempts": 1,
    "slot_ms": 50,
    "blockhash_valid_slots": 10,
    "chain_drop_first_attempts": 1,
}


async def wake_late(
    start: Callable[..., Any], nats_url: str, database_url: str, hold_point: str
) -> tuple[list[dict[str, Any]], list[EventType], list[str]]:
    """One order whose first delivery wakes up, finds its transaction never landed and fails
    it, while its redelivery is held at `hold_point`; then the redelivery goes on. The client's
    messages, the order's events in the stream, and its transactions that landed."""
    stack: Stack = await start(without=frozenset({"executor"}), **LAST_ATTEMPT_EACH_TIME)
    executor = await start_executor(nats_url, database_url, **LAST_ATTEMPT_EACH_TIME)
    late = LateWaker(executor, hold_point)
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        await asyncio.wait_for(late.second_held.wait(), 15)
        late.wake.set()
        await asyncio.wait_for(late.finished[1], 10)
        late.go_on.set()
        await asyncio.wait_for(late.finished[2], 10)
        messages = await stack.watch(order_id)
    finally:
        late.release()
        await executor.stop()
    landed = [o.signature for o in await landed_outcomes(nats_url) if o.order_id == order_id]
    return messages, await _events(nats_url, order_id), landed


async def test_a_delivery_that_wakes_late_does_not_fail_an_order_its_redelivery_confirms(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    # The redelivery has signed and submitted its own transaction, and waits for it.
    messages, events, landed = await wake_late(start, nats_url, database_url, "wait_confirmed")

    assert messages[-1]["event"] == "confirmed"
    assert EventType.FAILED not in events
    assert events.count(EventType.CONFIRMED) == 1
    assert landed == [messages[-1]["data"]["txHash"]]


async def test_a_redelivery_does_not_sign_after_a_late_delivery_failed_the_order(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    # The redelivery has read the order (the first's submission, no end) and waits to sign.
    messages, events, landed = await wake_late(start, nats_url, database_url, "_resume_or_sign")

    assert messages[-1]["event"] == "failed"
    assert messages[-1]["data"]["code"] == "BLOCKHASH_EXPIRED"
    assert events.count(EventType.FAILED) == 1
    assert events.count(EventType.SUBMITTED) == 1  # the redelivery signed nothing
    assert EventType.CONFIRMED not in events
    assert landed == []
