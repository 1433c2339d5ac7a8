"""A slow WebSocket client is cut off instead of growing the notifier's memory."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from dexec.bus.history import StoredEvent
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus
from dexec_notifier.budget import SubscribeBudget
from dexec_notifier.client_events import ClientEvent
from dexec_notifier.live import SlowConsumer, Watcher
from dexec_notifier.sockets import CLOSE_SLOW_CONSUMER, StreamSession


def stored(seq: int) -> ClientEvent:
    event = OrderEvent(
        order_id="o", event=EventType.ROUTING, status=OrderStatus.ROUTING, at=datetime.now(UTC)
    )
    return ClientEvent.of(StoredEvent(seq, event))


async def test_a_watcher_over_its_limit_reports_a_slow_consumer() -> None:
    watcher = Watcher(limit=3)
    for seq in range(1, 5):
        watcher.offer(stored(seq))
    assert watcher.queue.qsize() == 3  # the fourth was not kept
    with pytest.raises(SlowConsumer):
        await watcher.next()


class StuckSocket:
    """A client that has stopped reading: every send blocks."""

    def __init__(self) -> None:
        self.closed_with: int | None = None

    async def accept(self) -> None:
        pass

    async def send_text(self, text: str) -> None:
        await asyncio.Event().wait()

    async def receive(self) -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = code


async def test_a_send_that_blocks_past_the_timeout_closes_the_socket_with_1008() -> None:
    ws = StuckSocket()
    budget = SubscribeBudget(rate=1, burst=10)
    limits = {"queue_limit": 10, "send_timeout": 0.05, "budget": budget}
    session = StreamSession(ws, js=None, hub=None, **limits)  # type: ignore[arg-type]
    session._last_seq["o"] = 0
    session._watcher.offer(stored(1))

    await asyncio.wait_for(session._run(session._drain_client(), close_on_terminal=True), 5)

    assert ws.closed_with == CLOSE_SLOW_CONSUMER
