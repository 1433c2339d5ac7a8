"""The continuous pull (`dexec.bus.pump`) against a real NATS: credits, expiry, order."""

from __future__ import annotations

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_consumer
from dexec.bus.pump import PullPump
from dexec.bus.subjects import STREAM, ConsumerSpec
from dexec.settings import CommonSettings
from tests.support.waiting import eventually

SPEC = ConsumerSpec("pump-test", "orders.pending.*")


async def _publish(js: JetStreamContext, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        await js.publish(f"orders.pending.pump{n:03d}", b"{}", stream=STREAM)


async def test_holds_at_most_its_capacity_and_delivers_everything_in_order(
    js: JetStreamContext, nats_url: str
) -> None:
    await ensure_consumer(js, SPEC, CommonSettings(nats_url=nats_url), max_ack_pending=1000)
    await _publish(js, 20)
    received: list[Msg] = []
    nc = await nats.connect(nats_url)
    pump = PullPump(nc, STREAM, SPEC.durable, received.append, capacity=4)
    await pump.start()
    try:
        await eventually(lambda: _at_least(received, 4), 10, "the first four messages")
        # Nothing released yet: the server has handed out exactly the pump's capacity.
        info = await js.consumer_info(STREAM, SPEC.durable)
        assert (info.num_ack_pending, info.num_pending) == (4, 16)
        for released in range(20):
            wanted = released + 1
            await eventually(lambda n=wanted: _at_least(received, n), 10, "the next message")
            assert len(received) - released <= 4
            await received[released].ack()
            pump.done()
    finally:
        await pump.stop()
        await nc.close()
    assert [m.subject for m in received] == [f"orders.pending.pump{n:03d}" for n in range(20)]


async def test_asks_again_when_its_request_expires(js: JetStreamContext, nats_url: str) -> None:
    await ensure_consumer(js, SPEC, CommonSettings(nats_url=nats_url), max_ack_pending=1000)
    received: list[Msg] = []
    nc = await nats.connect(nats_url)
    pump = PullPump(
        nc, STREAM, SPEC.durable, received.append, capacity=8, expires=1.0, heartbeat=0.3
    )
    await pump.start()
    try:
        # The first request expires unused (the server says so with a 408): a second follows.
        await eventually(lambda: _true(pump.requests >= 2), 10, "a second pull request")
        await _publish(js, 3)
        await eventually(lambda: _at_least(received, 3), 10, "messages after the expiry")
    finally:
        await pump.stop()
        await nc.close()


async def _at_least(received: list[Msg], count: int) -> bool:
    return len(received) >= count


async def _true(condition: bool) -> bool:
    return condition
