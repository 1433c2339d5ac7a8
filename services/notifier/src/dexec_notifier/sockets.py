"""WebSocket sessions: each watches one or many orders and gets every event once, in order.

For each order a session registers for live events *before* it reads the backfill, and sends
an event only if its stream sequence is above the last one it sent for that order. The
backfill comes from the live hub's cache, taken in the same synchronous step as registering
(so it ends exactly where live delivery starts), or, for an order the cache does not hold,
from the stream. Backfill and live sending share one lock, so a live event can never overtake
the backfill of its own order: the merge has no gaps and no repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from nats.js import JetStreamContext
from pydantic import BaseModel, Field, ValidationError

from dexec.bus.history import read_order_events
from dexec_notifier.client_events import ClientEvent
from dexec_notifier.live import LiveHub, SlowConsumer, Watcher
from dexec_notifier.metrics import WS_BACKFILLS, WS_CONNECTIONS, WS_MESSAGES

log = logging.getLogger(__name__)

CLOSE_DONE = 1000
CLOSE_SLOW_CONSUMER = 1008
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
MAX_ORDERS_PER_SOCKET = 1_000


class Command(BaseModel):
    """What a client may send on a multi-order socket."""

    op: str = Field(pattern="^(subscribe|unsubscribe)$")
    order_ids: list[str] = Field(alias="orderIds", min_length=1, max_length=MAX_ORDERS_PER_SOCKET)
    # Resume: the last seq seen per order, as after a reconnect.
    after_seq: dict[str, int] = Field(default_factory=dict, alias="afterSeq")


def error_frame(code: str, message: str, **extra: Any) -> str:
    return orjson.dumps({"error": {"code": code, "message": message, **extra}}).decode()


class StreamSession:
    def __init__(
        self,
        ws: WebSocket,
        js: JetStreamContext,
        hub: LiveHub,
        *,
        queue_limit: int,
        send_timeout: float,
        tenant: str | None = None,
    ) -> None:
        self._ws = ws
        self._js = js
        self._hub = hub
        self._send_timeout = send_timeout
        self._tenant = tenant
        self._watcher = Watcher(queue_limit)
        self._last_seq: dict[str, int] = {}
        self._ended: set[str] = set()  # orders whose terminal event was sent
        self._send_lock = asyncio.Lock()

    async def watch_one(self, order_id: str, after_seq: int, close_on_terminal: bool) -> None:
        """A single-order socket: the order's events, then (by default) close on its end."""
        await self._open()
        try:
            if not await self._subscribe(order_id, after_seq):
                await self._send_raw(error_frame("ORDER_NOT_FOUND", f"no order {order_id}"))
                await self._ws.close(CLOSE_NOT_FOUND)
                return
            if close_on_terminal and order_id in self._ended:
                await self._ws.close(CLOSE_DONE)
                return
            await self._run(self._drain_client(), close_on_terminal)
        finally:
            self._close_all()

    async def watch_many(self) -> None:
        """A multiplexed socket: the client subscribes and unsubscribes with commands."""
        await self._open()
        try:
            await self._run(self._serve_commands(), close_on_terminal=False)
        finally:
            self._close_all()

    async def _open(self) -> None:
        await self._ws.accept()
        WS_CONNECTIONS.inc()

    def _close_all(self) -> None:
        for order_id in list(self._last_seq):
            self._hub.unwatch(order_id, self._watcher)
        self._last_seq.clear()
        WS_CONNECTIONS.dec()

    async def _run(self, client_side: Any, close_on_terminal: bool) -> None:
        """Pump live events until the client leaves, the order ends, or the client is slow."""
        pump = asyncio.create_task(self._pump(close_on_terminal))
        client = asyncio.create_task(client_side)
        try:
            done, _ = await asyncio.wait({pump, client}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, SlowConsumer | TimeoutError):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            self._ws.close(CLOSE_SLOW_CONSUMER, "slow consumer"), 1
                        )
                elif exc is not None and not isinstance(exc, WebSocketDisconnect):
                    log.error("websocket session failed", exc_info=exc)
        finally:
            for task in (pump, client):
                task.cancel()
            await asyncio.gather(pump, client, return_exceptions=True)

    async def _subscribe(self, order_id: str, after_seq: int = 0) -> bool:
        """Register, then send the backfill; False if the order does not exist (for us)."""
        async with self._send_lock:
            if order_id in self._last_seq:
                return True
            # No await between registering and taking the cached history: nothing slips between.
            backfill = self._hub.watch(order_id, self._watcher)
            self._last_seq[order_id] = after_seq
            if backfill is not None:
                WS_BACKFILLS.labels(source="cache").inc()
            else:
                WS_BACKFILLS.labels(source="stream").inc()
                stored = await read_order_events(self._js, order_id)
                backfill = [ClientEvent.of(event) for event in stored]
            if not backfill or not self._visible(backfill[0]):
                self._hub.unwatch(order_id, self._watcher)
                del self._last_seq[order_id]
                return False
            for event in backfill:
                await self._send_event(event)
            if backfill[-1].terminal:
                self._ended.add(order_id)  # also when a resuming client had seen it already
            return True

    def _visible(self, first: ClientEvent) -> bool:
        """With API keys on, another tenant's order does not exist for this client."""
        if self._tenant is None:
            return True
        return first.tenant == self._tenant

    def _unsubscribe(self, order_id: str) -> None:
        if self._last_seq.pop(order_id, None) is not None:
            self._hub.unwatch(order_id, self._watcher)

    async def _pump(self, close_on_terminal: bool) -> None:
        while True:
            event = await self._watcher.next()
            async with self._send_lock:
                if event.order_id not in self._last_seq:
                    continue  # unsubscribed while the event was queued
                await self._send_event(event)
            if close_on_terminal and event.terminal:
                await self._ws.close(CLOSE_DONE)
                return

    async def _send_event(self, event: ClientEvent) -> None:
        if event.seq <= self._last_seq.get(event.order_id, 0):
            return
        self._last_seq[event.order_id] = event.seq
        await self._send_raw(event.text)
        WS_MESSAGES.inc()

    async def _send_raw(self, text: str) -> None:
        # A client that stops reading fills its TCP window and blocks the send: cut it off.
        await asyncio.wait_for(self._ws.send_text(text), self._send_timeout)

    async def _drain_client(self) -> None:
        """Single-order sockets ignore what the client sends; this only notices it leaving."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await self._receive()

    async def _receive(self) -> str | bytes:
        """The next frame, text or binary (clients differ in which they send JSON as)."""
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message.get("text") or message.get("bytes") or b""

    async def _serve_commands(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await self._receive()
                try:
                    command = Command.model_validate_json(raw)
                except ValidationError as exc:
                    await self._send_raw(error_frame("BAD_REQUEST", str(exc.errors()[0]["msg"])))
                    continue
                await self._apply(command)

    async def _apply(self, command: Command) -> None:
        for order_id in command.order_ids:
            if command.op == "unsubscribe":
                self._unsubscribe(order_id)
            elif len(self._last_seq) >= MAX_ORDERS_PER_SOCKET:
                await self._send_raw(error_frame("TOO_MANY_ORDERS", "open another socket"))
                return
            elif not await self._subscribe(order_id, command.after_seq.get(order_id, 0)):
                message = f"no order {order_id}"
                await self._send_raw(error_frame("ORDER_NOT_FOUND", message, orderId=order_id))
