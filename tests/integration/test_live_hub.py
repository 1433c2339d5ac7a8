"""The notifier's live hub against a NATS server of its own, which the test restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dexec.bus.connection import connect, ensure_stream
from dexec.bus.publisher import publish_event
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus
from dexec.settings import CommonSettings
from dexec_notifier.live import LiveHub, Watcher
from dexec_tools.servers import NatsServer
from tests.support.events import spec_data
from tests.support.waiting import eventually


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


def pending(order_id: str) -> OrderEvent:
    return OrderEvent(
        order_id=order_id, event=EventType.PENDING, status=OrderStatus.PENDING, data=spec_data()
    )


async def test_an_idle_hub_resumes_where_it_started_after_a_nats_restart(
    nats_server: NatsServer,
) -> None:
    """nats-py recreates the hub's consumer after the restart; the hub had seen nothing yet,
    and must not be sent the stream's older events then, only the new one."""
    settings = CommonSettings(nats_url=nats_server.url)
    nc = await connect(settings, "test-live-hub")
    js = nc.jetstream()
    await ensure_stream(js, settings)
    old = [pending(f"old-{n}") for n in range(3)]
    for event in old:
        await publish_event(js, event)

    hub = LiveHub()
    watchers = {event.order_id: Watcher(limit=10) for event in [*old, pending("new")]}
    for order_id, watcher in watchers.items():
        assert hub.watch(order_id, watcher) is None
    await hub.start(js, heartbeat_seconds=0.5)  # recreated after a second without heartbeats
    try:
        await asyncio.to_thread(nats_server.stop)
        await asyncio.to_thread(nats_server.start)

        async def reconnected() -> bool:
            return nc.is_connected

        await eventually(reconnected, what="the connection back")
        new = await publish_event(js, pending("new"))

        async def new_seen() -> bool:
            return not watchers["new"].queue.empty()

        await eventually(new_seen, what="the hub to get the new event")
    finally:
        await hub.stop()
        await nc.close()
    assert [event.seq for event in await watchers["new"].next(10)] == [new.seq]
    assert {event.order_id: watchers[event.order_id].queue.qsize() for event in old} == {
        event.order_id: 0 for event in old
    }
    assert "new" in hub.cache
    assert not any(event.order_id in hub.cache for event in old)
