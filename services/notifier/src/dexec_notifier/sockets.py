"""Streaming one order's events to a WebSocket: the backfill, then live events, each once."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from nats.js import JetStreamContext

from dexec.bus.history import StoredEvent, read_order_events
from dexec.orders.states import is_terminal
from dexec_notifier.live import LiveHub, SlowConsumer, Watcher, client_message
from dexec_notifier.metrics import WS_CONNECTIONS, WS_MESSAGES

CLOSE_DONE = 1000
CLOSE_SLOW_CONSUMER = 1008
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404


async def send_error(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    await ws.send_text(orjson.dumps({"error": {"code": code, "message": message}}).decode())
    await ws.close(close_code)


class OrderStream:
    def __init__(
        self,
        ws: WebSocket,
        js: JetStreamContext,
        hub: LiveHub,
        queue_limit: int,
        after_seq: int = 0,
    ):
        self._ws = ws
        self._js = js
        self._hub = hub
        self._watcher = Watcher(queue_limit)
        # A reconnecting client passes the last seq it saw and resumes after it.
        self._last_seq = after_seq

    async def run(self, order_id: str) -> None:
        await self._ws.accept()
        WS_CONNECTIONS.inc()
        # Register first, then read the backfill: nothing published in between is missed.
        self._hub.watch(order_id, self._watcher)
        disconnected = asyncio.create_task(self._wait_disconnect())
        try:
            backfill = await read_order_events(self._js, order_id)
            if not backfill and not self._last_seq:
                await send_error(
                    self._ws, "ORDER_NOT_FOUND", f"no order {order_id}", CLOSE_NOT_FOUND
                )
                return
            for stored in backfill:
                if await self._send(stored):
                    return
            if backfill and is_terminal(backfill[-1].event.status):
                await self._ws.close(CLOSE_DONE)  # resumed after the end: nothing left to send
                return
            await self._follow(disconnected)
        except (WebSocketDisconnect, asyncio.CancelledError):
            pass
        except SlowConsumer:
            with contextlib.suppress(Exception):
                await self._ws.close(CLOSE_SLOW_CONSUMER, "slow consumer: events were dropped")
        finally:
            self._hub.unwatch(order_id, self._watcher)
            disconnected.cancel()
            WS_CONNECTIONS.dec()

    async def _follow(self, disconnected: asyncio.Task[None]) -> None:
        while True:
            nxt = asyncio.create_task(self._watcher.next())
            await asyncio.wait({nxt, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                nxt.cancel()
                return
            if await self._send(nxt.result()):
                return

    async def _send(self, stored: StoredEvent) -> bool:
        """Send unless already sent; True once the order is terminal and the socket closed."""
        if stored.seq <= self._last_seq:
            return False
        self._last_seq = stored.seq
        message = client_message(stored.seq, stored.event)
        await self._ws.send_text(orjson.dumps(message).decode())
        WS_MESSAGES.inc()
        if is_terminal(stored.event.status):
            await self._ws.close(CLOSE_DONE)
            return True
        return False

    async def _wait_disconnect(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
