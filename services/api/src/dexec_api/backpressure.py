"""Backpressure: refuse new orders while the router's backlog is over a limit.

The backlog is the router consumer's pending plus unacknowledged messages, read from
JetStream in the background a few times a second, so a submission only compares two numbers.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dexec.bus.subjects import ROUTER_CONSUMER, STREAM
from dexec.periodic import Periodic
from dexec_api.metrics import ROUTER_BACKLOG


class RouterBacklog:
    def __init__(self, js: JetStreamContext, limit: int, interval: float) -> None:
        self._js = js
        self._limit = limit
        self.size = 0
        self._timer = Periodic(self.refresh, interval, "reading the router backlog")

    @property
    def overloaded(self) -> bool:
        return self.size > self._limit

    async def refresh(self) -> None:
        try:
            info = await self._js.consumer_info(STREAM, ROUTER_CONSUMER.durable)
        except NotFoundError:
            self.size = 0  # no router has started yet: nothing to measure
            return
        self.size = (info.num_pending or 0) + (info.num_ack_pending or 0)
        ROUTER_BACKLOG.set(self.size)

    async def start(self) -> None:
        await self.refresh()
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()
