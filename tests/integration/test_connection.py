"""A service's NATS connection: refused to a server too old for dexec's conditional
publishes, and closed cleanly by a stop during a NATS outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from dexec.bus.connection import UnsupportedServer, connect, disconnect
from dexec.settings import CommonSettings
from dexec_tools.servers import NatsServer, free_port
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


async def test_a_server_older_than_2_11_is_refused_with_the_version_it_runs() -> None:
    """A stand-in server that speaks the NATS handshake and says it is 2.10.22."""
    closed = asyncio.Event()

    async def old_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "old", "version": "2.10.22", "proto": 1, "max_payload": 1 << 20}
        writer.write(b"INFO " + orjson.dumps(info) + b"\r\n")
        try:
            while line := await reader.readline():
                if line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
                    await writer.drain()
        finally:
            closed.set()
            writer.close()

    port = free_port()
    server = await asyncio.start_server(old_server, "127.0.0.1", port)
    try:
        settings = CommonSettings(nats_url=f"nats://127.0.0.1:{port}")
        with pytest.raises(UnsupportedServer, match=r"needs NATS 2\.11 or later.*2\.10\.22"):
            await connect(settings, "dexec-test")
        await asyncio.wait_for(closed.wait(), 5)  # and the connection was closed
    finally:
        server.close()
