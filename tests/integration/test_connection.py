"""Closing a service's NATS connection: a stop during a NATS outage still stops cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dexec.bus.connection import connect, disconnect
from dexec.settings import CommonSettings
from dexec_tools.servers import NatsServer
from tests.support.waiting import eventually


async def test_a_connection_still_reconnecting_is_closed_when_it_cannot_drain(
    tmp_path: Path,
) -> None:
    with NatsServer(tmp_path / "nats") as server:
        nc = await connect(CommonSettings(nats_url=server.url), "dexec-test")
        try:
            await asyncio.to_thread(server.stop)

            async def reconnecting() -> bool:
                return nc.is_reconnecting

            await eventually(reconnecting, what="the client reconnecting")
            await disconnect(nc)  # nats-py refuses to drain now
            assert nc.is_closed
        finally:
            if not nc.is_closed:
                await nc.close()
