"""WebSocket sessions: each watches one or many orders and gets every event once, in order.

For each order a session registers for live events *before* it reads the backfill, and sends
an event only if its stream sequence is above the last one it sent for that order. The
backfill comes from the live hub's cache, taken in the same synchronous step as registering
(so it ends exactly where live delivery starts), or, for an order the cache does not hold,
from the stream. Backfill and live sending share one lock, so a live event can never overtake
the backfill of its own order: the merge has no gaps and no repeats (but for those a client
asks for: a rewind, see `_apply`).

A client may ask for batched frames (`?batch=true`): each event frame is then a JSON array of
the events ready at that moment (a subscription's backfills, or the live events queued since
the last send; at most 256 events and 512 KiB a frame, see `frames`), in the same order
single frames would have come. A busy multiplexed socket carries several events per frame
instead of one frame per event, and most of a frame's cost is fixed (a one-event frame costs
the notifier ~50 µs, six events in one frame ~14 µs each; BENCHMARKS.md). Error frames stay
single objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from pydantic import BaseModel, Field, ValidationError

from dexec.bus.history import read_order_events
from dexec_notifier.budget import SubscribeBudget
from dexec_notifier.client_events import ClientEvent
from dexec_notifier.frames import batched_frames
from dexec_notifier.live import LiveHub, SlowConsumer, Watcher
from dexec_notifier.metrics import WS_BACKFILLS, WS_CONNECTIONS, WS_FRAMES, WS_MESSAGES

log = logging.getLogger(__name__)

CLOSE_DONE = 1000
CLOSE_SLOW_CONSUMER = 1008
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_RATE_LIMITED = 4429
CLOSE_TRY_AGAIN_LATER = 1013  # the order's events could not be read from the stream
# Why `_subscribe` left an order out: it does not exist (for this client), or its backfill
# could not be read from the stream.
NOT_FOUND, UNAVAILABLE = "ORDER_NOT_FOUND", "BUS_UNAVAILABLE"
MAX_ORDERS_PER_SOCKET = 1_000
# Live events taken from a socket's queue at once: bounds the work of one send.
MAX_EVENTS_PER_SEND = 256


class Command(BaseModel):
    """What a client may send on a multi-order socket."""

    op: str = Field(pattern="^(subscribe|unsubscribe)$")
    order_ids: list[str] = Field(alias="orderIds", min_length=1, max_length=MAX_ORDERS_PER_SOCKET)
    # Resume: the last seq seen per order, as after a reconnect.
    after_seq: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, alias="afterSeq"
    )


def bad_request_frame(errors: Sequence[Mapping[str, Any]], skip: tuple[str, ...] = ()) -> str:
    """A BAD_REQUEST frame naming each wrong field (`{"field": "afterSeq.<id>", "message":
    ...}`), from pydantic's errors; location parts in `skip` (FastAPI's "query") are left out
    of the names. A command that is not an object at all has no field to name."""
    details = [
        {"field": ".".join(str(p) for p in err["loc"] if p not in skip), "message": err["msg"]}
        for err in errors
    ]
    message = "; ".join(
        f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details
    )
    return error_frame("BAD_REQUEST", message, details=details)


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
        budget: SubscribeBudget,
        tenant: str | None = None,
        batch: bool = False,
    ) -> None:
        self._ws = ws
        self._batch = batch
        self._js = js
        self._hub = hub
        self._send_timeout = send_timeout
        self._tenant = tenant
        self._watcher = Watcher(queue_limit)
        self._last_seq: dict[str, int] = {}
        self._ended: set[str] = set()  # orders whose terminal event was sent
        self._send_lock = asyncio.Lock()
        self._budget = budget

    async def watch_one(self, order_id: str, after_seq: int, close_on_terminal: bool) -> None:
        """A single-order socket: the order's events, then (by default) close on its end."""
        await self._open()
        try:
            await self._watch_one(order_id, after_seq, close_on_terminal)
        except WebSocketDisconnect:
            pass  # the client left before its backfill or refusal was sent: nothing to do
        except TimeoutError:
            await self._cut_off_slow_client()  # it did not take its backfill
        finally:
            self._close_all()

    async def _watch_one(self, order_id: str, after_seq: int, close_on_terminal: bool) -> None:
        if not self._budget.take(1):  # a tenant's single-order sockets draw on its budget
            await self._send_raw(self._rate_limited(1, orderId=order_id))
            await self._ws.close(CLOSE_RATE_LIMITED)
            return
        left_out = await self._subscribe([(order_id, after_seq)])
        if code := left_out.get(order_id):
            await self._send_raw(_refusal(code, order_id))
            not_found = code == NOT_FOUND
            await self._ws.close(CLOSE_NOT_FOUND if not_found else CLOSE_TRY_AGAIN_LATER)
            return
        if close_on_terminal and order_id in self._ended:
            await self._ws.close(CLOSE_DONE)
            return
        await self._run(self._drain_client(), close_on_terminal)

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
                    await self._cut_off_slow_client()
                elif exc is not None and not isinstance(exc, WebSocketDisconnect):
                    log.error("websocket session failed", exc_info=exc)
        finally:
            for task in (pump, client):
                task.cancel()
            await asyncio.gather(pump, client, return_exceptions=True)

    async def _cut_off_slow_client(self) -> None:
        # Queued behind the unread data; the server resets the connection if the client never
        # takes it (dexec.ws_protocol).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(CLOSE_SLOW_CONSUMER, "slow consumer"), 1)

    async def _subscribe(self, subscriptions: list[tuple[str, int]]) -> dict[str, str]:
        """Register each (order, after seq) and send its backfill; the orders left out, with
        why: NOT_FOUND, or UNAVAILABLE (its backfill could not be read from the stream: NATS
        is away or did not answer in time; the socket and its other orders go on).

        Backfills from the cache go out together (one frame when batched); a backfill read
        from the stream ends a group, so live events of orders already subscribed are not
        held behind more than one stream read.
        """
        left_out: dict[str, str] = {}
        queue = deque(subscriptions)
        while queue:
            async with self._send_lock:
                backfills: list[ClientEvent] = []
                while queue:
                    order_id, after_seq = queue.popleft()
                    try:
                        backfill, cached = await self._register(order_id, after_seq)
                    except NatsError as exc:
                        log.warning("backfill of %s not read from the stream: %r", order_id, exc)
                        self._unsubscribe(order_id)
                        left_out[order_id] = UNAVAILABLE
                        break
                    if backfill is None:
                        left_out[order_id] = NOT_FOUND
                    else:
                        backfills += backfill
                    if not cached:
                        break
                await self._send_events(backfills)
        return left_out

    async def _register(
        self, order_id: str, after_seq: int
    ) -> tuple[list[ClientEvent] | None, bool]:
        """Watch the order; its history so far (None if it does not exist for this client),
        and whether that came from the cache. Call with the send lock held."""
        if order_id in self._last_seq:
            if after_seq >= self._last_seq[order_id]:
                return [], True
            # A rewind: watch it afresh from `after_seq` (the backfill covers what the
            # unwatched moment would have brought live).
            self._unsubscribe(order_id)
        # No await between registering and taking the cached history: nothing slips between.
        backfill = self._hub.watch(order_id, self._watcher)
        self._last_seq[order_id] = after_seq
        cached = backfill is not None
        if backfill is not None:
            WS_BACKFILLS.labels(source="cache").inc()
        else:
            WS_BACKFILLS.labels(source="stream").inc()
            stored = await read_order_events(self._js, order_id)
            backfill = [ClientEvent.of(event) for event in stored]
        if not backfill or not self._visible(backfill[0]):
            self._unsubscribe(order_id)
            return None, cached
        if backfill[-1].terminal:
            self._ended.add(order_id)  # also when a resuming client had seen it already
        return backfill, cached

    def _visible(self, first: ClientEvent) -> bool:
        """With API keys on, another tenant's order does not exist for this client."""
        if self._tenant is None:
            return True
        return first.tenant == self._tenant

    def _unsubscribe(self, order_id: str) -> None:
        self._ended.discard(order_id)  # a long-lived socket must not keep every order it saw
        if self._last_seq.pop(order_id, None) is not None:
            self._hub.unwatch(order_id, self._watcher)

    async def _pump(self, close_on_terminal: bool) -> None:
        while True:
            events = await self._watcher.next(MAX_EVENTS_PER_SEND)
            async with self._send_lock:
                await self._send_events(events)
            if close_on_terminal and any(event.terminal for event in events):
                await self._ws.close(CLOSE_DONE)
                return

    async def _send_events(self, events: list[ClientEvent]) -> None:
        """Send, in order, the events this client watches and has not had yet."""
        texts = []
        for event in events:
            last_seq = self._last_seq.get(event.order_id)
            if last_seq is None or event.seq <= last_seq:
                continue  # unsubscribed while queued, or sent already (backfill, resume)
            self._last_seq[event.order_id] = event.seq
            texts.append(event.text)
        if not texts:
            return
        if self._batch:
            for frame in batched_frames(texts):  # several, when a backfill is large
                await self._send_raw(frame)
        else:
            for text in texts:
                await self._send_raw(text)
        WS_MESSAGES.inc(len(texts))

    async def _send_raw(self, text: str) -> None:
        # A client that stops reading fills its TCP window and blocks the send: cut it off.
        await asyncio.wait_for(self._ws.send_text(text), self._send_timeout)
        WS_FRAMES.inc()

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
                    await self._send_raw(bad_request_frame(exc.errors(include_url=False)))
                    continue
                await self._apply(command)

    async def _apply(self, command: Command) -> None:
        if command.op == "unsubscribe":
            for order_id in command.order_ids:
                self._unsubscribe(order_id)
            return
        after = command.after_seq
        ids = dict.fromkeys(command.order_ids)  # in order, each once
        # An order already watched is left as it is, unless the command gives it an earlier
        # afterSeq than this socket has sent: then its events after that come again (a
        # rewind, as for a client that dropped what it had shown). A rewind takes no room.
        rewinds = {i for i in ids if i in after and after[i] < self._last_seq.get(i, -1)}
        waiting = [i for i in ids if i in rewinds or i not in self._last_seq]
        rate_limited: list[str] = []
        while waiting:
            fits = self._fitting(waiting, rewinds)
            if not fits:
                break
            taken = set(fits)
            waiting = [i for i in waiting if i not in taken]
            allowed = self._budget.take(len(fits))
            left_out = await self._subscribe([(i, after.get(i, 0)) for i in fits[:allowed]])
            for order_id, code in left_out.items():
                await self._send_raw(_refusal(code, order_id))
            if allowed < len(fits):
                # Out of budget: what would fit is refused for now, the rest is beyond.
                unserved = fits[allowed:] + waiting
                rate_limited = self._fitting(unserved, rewinds)
                refused = set(rate_limited)
                waiting = [i for i in unserved if i not in refused]
                break
            if not left_out:
                break  # no room came free: whatever still waits is beyond the limit
            # An id left out (unknown, unreadable) freed its room for those waiting.
        if rate_limited:
            await self._send_raw(self._rate_limited(len(rate_limited), orderIds=rate_limited))
        if waiting:
            message = f"a socket watches at most {MAX_ORDERS_PER_SOCKET} orders: open another"
            await self._send_raw(
                error_frame(
                    "TOO_MANY_ORDERS", message, orderIds=waiting, limit=MAX_ORDERS_PER_SOCKET
                )
            )

    def _fitting(self, ids: list[str], rewinds: set[str]) -> list[str]:
        """`ids` in order, as many as the socket has room for; a rewind takes none."""
        room = MAX_ORDERS_PER_SOCKET - len(self._last_seq)
        fits = []
        for order_id in ids:
            if order_id in rewinds:
                fits.append(order_id)
            elif room > 0:
                fits.append(order_id)
                room -= 1
        return fits

    def _rate_limited(self, wanted: int, **which: Any) -> str:
        message = f"over {self._budget.rate:g} subscriptions a second: try again later"
        retry_after = self._budget.seconds_until(wanted)
        return error_frame("RATE_LIMITED", message, retryAfter=retry_after, **which)


def _refusal(code: str, order_id: str) -> str:
    """The error frame for an order `_subscribe` left out."""
    if code == NOT_FOUND:
        return error_frame(NOT_FOUND, f"no order {order_id}", orderId=order_id)
    message = "the order's events could not be read: subscribe again later"
    return error_frame(UNAVAILABLE, message, orderId=order_id, retryAfter=1)
