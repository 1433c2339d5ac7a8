"""A deferred publish's future always ends: nats-py frees its publish slot only then."""

from __future__ import annotations

import asyncio

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import PubAck

from dexec.bus import publisher
from dexec.bus.publisher import PendingAck
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus


def building() -> OrderEvent:
    return OrderEvent.of("o", EventType.BUILDING, OrderStatus.BUILDING, None, 1)


@pytest.fixture(autouse=True)
def short_ack_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "ACK_TIMEOUT_SECONDS", 0.05)


async def test_an_ack_that_never_comes_ends_the_future_and_raises_a_timeout() -> None:
    future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
    pending = PendingAck(building(), future)

    with pytest.raises(NatsTimeoutError):
        await asyncio.wait_for(pending.acked(), 5)
    assert future.done()


async def test_an_ack_nobody_awaits_still_ends_the_future() -> None:
    future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
    PendingAck(building(), future)

    done, _ = await asyncio.wait({future}, timeout=5)

    assert done == {future}
    assert isinstance(future.exception(), NatsTimeoutError)


async def test_an_ack_that_comes_in_time_is_returned() -> None:
    future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
    pending = PendingAck(building(), future)
    ack = PubAck(stream="ORDERS", seq=7)

    future.set_result(ack)

    assert await pending.acked() is ack
