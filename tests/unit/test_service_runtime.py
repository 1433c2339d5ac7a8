"""A worker service's metrics endpoint (its readiness probe) comes up only once it started."""

from __future__ import annotations

import asyncio

from dexec.runtime import serve_until_signalled


class SlowStart:
    """A service whose start waits for `connected` (as a worker waits for NATS)."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.starting = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        self.starting.set()
        await self.connected.wait()

    async def stop(self) -> None:
        self.stopped = True


async def test_on_started_waits_for_the_service_to_have_started() -> None:
    service = SlowStart()
    ready = asyncio.Event()
    running = asyncio.create_task(serve_until_signalled(service, ready.set))
    async with asyncio.timeout(5):
        await service.starting.wait()
    assert not ready.is_set()  # still waiting for its connection: not ready

    service.connected.set()
    async with asyncio.timeout(5):
        await ready.wait()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert service.stopped
