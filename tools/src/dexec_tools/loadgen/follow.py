"""Following accepted orders over the notifier's WebSockets until their terminal event.

Two ways, as clients do it: `MultiplexFollower` keeps a few sockets to `/ws` and subscribes
orders in batches; `PerOrderFollower` opens `/ws/orders/{id}` for each order, which the
notifier closes with 1000 after the terminal event. Either way a dropped socket is re-opened
and resumes after the last seq it saw, so a drop costs neither events nor duplicates. With
batched frames (the default) a frame is a JSON array of events; a notifier that predates them
ignores `?batch=true` and sends one object per frame, and both shapes are read.

The per-message path is deliberately small (parse, append a tuple, maybe count a terminal):
everything else is computed from the raw samples after the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from dexec_tools.loadgen.config import RunConfig
from dexec_tools.loadgen.samples import OrderSample, Received

TERMINAL_STATUSES = frozenset({"confirmed", "failed"})
# The notifier's MAX_ORDERS_PER_SOCKET: it refuses subscriptions beyond this many per socket.
SOCKET_CAPACITY = 1_000
RECONNECT_BASE_SECONDS = 0.05
RECONNECT_MAX_SECONDS = 2.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
# Closes that ask to connect again after a second: over the tenant's subscribe budget (4429),
# the order's events not readable from the stream for now (1013).
CLOSE_RATE_LIMITED, CLOSE_TRY_AGAIN_LATER = 4429, 1013
# Error frames for ids a multiplexed socket may subscribe again after their `retryAfter`: over
# the subscribe budget, and a backfill the notifier could not read from the stream.
SUBSCRIBE_LATER = frozenset({"RATE_LIMITED", "BUS_UNAVAILABLE"})
# Connection failures worth a retry: refused or reset, a handshake the server turned down
# (e.g. while it restarts), an open that timed out.
CONNECT_ERRORS = (OSError, InvalidHandshake, TimeoutError)
# Opening handshakes in progress per worker (per-order sockets). Without a bound, a burst of
# accepted orders becomes a burst of handshakes the notifier answers only after the client's
# open timeout; the client retries, the server still completes the abandoned ones, and the
# run measures its own retry storm. Queued here, an order waits for a slot instead.
MAX_OPENING = 64
OPEN_TIMEOUT_SECONDS = 30
# The websockets library's default frame limit, as most clients have it. A reconnected socket
# resubscribes up to SOCKET_CAPACITY orders in one command, whose backfills (~6 MB for 1,000
# orders) the notifier sends in batched frames of at most 512 KiB (dexec_notifier.frames): a
# 1009 close in the report means a frame over this limit, a regression in the notifier.
MAX_FRAME_BYTES = 2**20


def reconnect_delay(attempt: int) -> float:
    ceiling = min(RECONNECT_MAX_SECONDS, RECONNECT_BASE_SECONDS * 2**attempt)
    return ceiling * (0.5 + random.random() / 2)


def connect_options(config: RunConfig) -> dict[str, Any]:
    return {
        # Browsers negotiate permessage-deflate; off by default so the run measures the
        # engine, not zlib on both ends (--ws-compression turns it on).
        "compression": "deflate" if config.ws_compression else None,
        # The notifier pings its clients; a client ping would only add traffic and, on a
        # loaded machine, spurious timeouts.
        "ping_interval": None,
        "proxy": None,  # a local benchmark must not go through an HTTP(S)_PROXY from the env
        "open_timeout": OPEN_TIMEOUT_SECONDS,
        "close_timeout": 1,
        "max_size": MAX_FRAME_BYTES,
    }


def socket_url(url: str, config: RunConfig) -> str:
    """The URL with the query parameters every socket of the run takes."""
    params = []
    if config.batched_frames:
        params.append("batch=true")
    if config.api_key:
        # Browsers cannot set headers on a WebSocket, so the notifier also takes ?apiKey=.
        params.append(f"apiKey={quote(config.api_key, safe='')}")
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{'&'.join(params)}"


class Ledger:
    """The worker's accepted orders by id: records their messages, knows when all are done."""

    def __init__(self, on_progress: Callable[[int, int], None]) -> None:
        self.by_id: dict[str, OrderSample] = {}
        self.accepted = 0
        self.completed = 0  # orders whose terminal event arrived
        self._settled = 0  # completed, or given up on (unknown to the notifier, unauthorized)
        self._submitting = True
        self.all_settled = asyncio.Event()
        self.error_frames: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()
        self.connect_failures: Counter[str] = Counter()  # by exception, e.g. "TimeoutError"
        self.reconnects = 0
        self.sockets_opened = 0
        self._on_progress = on_progress
        # Ids the notifier refused to subscribe for now (SUBSCRIBE_LATER) in the frames
        # recorded, and how long it asked to wait: `take_refused` hands them to the socket to
        # retry.
        self._refused: list[str] = []
        self._retry_after = 0.0

    def add(self, order: OrderSample) -> None:
        assert order.order_id is not None
        self.by_id[order.order_id] = order
        self.accepted += 1
        self._on_progress(self.accepted, self.completed)

    def submission_finished(self) -> None:
        self._submitting = False
        self._check_settled()

    def record(self, raw: str | bytes) -> list[OrderSample]:
        """Store one frame's events; returns the orders it settled."""
        received = time.time()
        frame = orjson.loads(raw)
        messages = frame if isinstance(frame, list) else [frame]
        settled = []
        for message in messages:
            order = self._record(message, received)
            if order is not None:
                settled.append(order)
        return settled

    def _record(self, message: Any, received: float) -> OrderSample | None:
        if not isinstance(message, dict):
            self.error_frames["UNEXPECTED_MESSAGE"] += 1
            return None
        order = self.by_id.get(message.get("orderId"))  # type: ignore[arg-type]
        if order is None or "error" in message:
            return self._other(message)
        status = message["status"]
        seq = message["seq"]
        code = message["data"].get("code") if status == "failed" else None
        order.events.append(Received(seq, message["event"], status, message["at"], received, code))
        if seq > order.last_seq:
            order.last_seq = seq
        if status in TERMINAL_STATUSES and not order.terminal:
            order.terminal = True
            self.completed += 1
            self._on_progress(self.accepted, self.completed)
            self._settle()
            return order
        return None

    def _other(self, message: dict[str, Any]) -> OrderSample | None:
        """An error frame, or a message about an order this worker never submitted."""
        error = message.get("error")
        if not isinstance(error, dict):
            self.error_frames["UNEXPECTED_MESSAGE"] += 1
            return None
        code = str(error.get("code"))
        self.error_frames[code] += 1
        if code in SUBSCRIBE_LATER:
            refused = error.get("orderIds") or [error.get("orderId")]
            self._refused.extend(i for i in refused if i in self.by_id)
            self._retry_after = max(self._retry_after, float(error.get("retryAfter") or 0))
            return None
        order = self.by_id.get(error.get("orderId"))  # type: ignore[arg-type]
        if order is not None and code == "ORDER_NOT_FOUND":
            return self.not_found(order)
        return None

    def take_refused(self) -> tuple[list[str], float]:
        """The ids refused for now since the last call, and the wait asked for."""
        refused, wait = self._refused, self._retry_after
        self._refused, self._retry_after = [], 0.0
        return refused, wait

    def not_found(self, order: OrderSample) -> OrderSample | None:
        """The notifier does not know an order the API accepted: stop waiting for it."""
        if order.not_found or order.terminal:
            return None
        order.not_found = True
        self._settle()
        return order

    def abandon(self, order: OrderSample) -> None:
        """Stop waiting for an order that cannot be followed (e.g. a refused API key)."""
        if not order.terminal and not order.not_found:
            self._settle()

    def _settle(self) -> None:
        self._settled += 1
        self._check_settled()

    def _check_settled(self) -> None:
        if not self._submitting and self._settled >= self.accepted:
            self.all_settled.set()


class Follower(Protocol):
    async def start(self) -> None: ...
    def track(self, order: OrderSample) -> None: ...
    async def close(self) -> None: ...


class MuxSocket:
    """One `/ws` socket and the orders subscribed on it, for the socket's whole life.

    Subscriptions and unsubscriptions are queued and sent as one command per batch interval.
    `load` counts what the server holds or will hold once the queued commands arrive (the
    server applies a socket's commands in order), so a socket never exceeds its capacity.
    """

    def __init__(
        self, url: str, ledger: Ledger, batch_seconds: float, options: dict[str, Any]
    ) -> None:
        self._url = url
        self._ledger = ledger
        self._batch_seconds = batch_seconds
        self._options = options
        self._active: set[str] = set()  # subscribed on the server
        self._to_subscribe: list[str] = []
        self._to_unsubscribe: list[str] = []
        self._retrying: set[str] = set()  # refused for now, waiting to subscribe again
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    @property
    def load(self) -> int:
        return (
            len(self._active)
            + len(self._to_subscribe)
            + len(self._to_unsubscribe)
            + len(self._retrying)
        )

    def subscribe(self, order_id: str) -> None:
        self._to_subscribe.append(order_id)
        self._wake.set()

    def _retry(self, refused: list[str]) -> None:
        """Queue refused ids again, but for orders that ended meanwhile (on a reconnect's
        resubscription, say)."""
        again = [i for i in refused if i in self._retrying and not self._ledger.by_id[i].terminal]
        self._retrying.difference_update(refused)
        self._to_subscribe.extend(again)
        if again:
            self._wake.set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        attempt = 0
        while True:
            code: int | None = 1006  # no close frame: the connection dropped
            try:
                async with connect(self._url, **self._options) as ws:
                    self._ledger.sockets_opened += 1
                    self.connected.set()
                    attempt = 0
                    await self._serve(ws)
                    code = ws.close_code or code  # the server closed normally (e.g. shutdown)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else code
            except CONNECT_ERRORS as exc:
                self._ledger.connect_failures[type(exc).__name__] += 1
                code = None
            except InvalidURI:
                self._give_up()
                raise
            if code is not None:
                self._ledger.close_codes[code] += 1
            if code == CLOSE_UNAUTHORIZED:
                self._give_up()
                return
            self._ledger.reconnects += 1
            # A new session knows nothing of this one: subscribe every unfinished order
            # again, resuming after the last seq seen (the subscribe command adds afterSeq).
            self._to_subscribe[:0] = list(self._active)
            self._active.clear()
            self._to_unsubscribe.clear()
            if self._to_subscribe:
                self._wake.set()  # the new session's sender sends them at once
            await asyncio.sleep(reconnect_delay(attempt))
            attempt += 1

    async def _serve(self, ws: ClientConnection) -> None:
        """Read until the socket closes, sending the queued commands alongside."""
        sender = asyncio.create_task(self._send_batches(ws))
        try:
            async for raw in ws:
                for settled in self._ledger.record(raw):
                    if settled.order_id in self._active:
                        self._active.discard(settled.order_id)
                        self._to_unsubscribe.append(settled.order_id)
                        self._wake.set()
                refused, wait = self._ledger.take_refused()
                if refused:
                    # Not subscribed: subscribe them again once the notifier has room.
                    self._active.difference_update(refused)
                    self._retrying.update(refused)
                    asyncio.get_running_loop().call_later(wait, self._retry, refused)
        finally:
            sender.cancel()
            # Collect the sender's end (cancelled, or the send that hit the closed socket).
            await asyncio.gather(sender, return_exceptions=True)

    async def _send_batches(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            # Batching, not synchronisation: one command carries every order queued meanwhile.
            await asyncio.sleep(self._batch_seconds)
            self._wake.clear()
            # Unsubscribe first: the server applies commands in order, so the slots are free
            # before the new subscriptions arrive.
            while self._to_unsubscribe:
                ids = self._to_unsubscribe[:SOCKET_CAPACITY]
                del self._to_unsubscribe[:SOCKET_CAPACITY]
                await ws.send(orjson.dumps({"op": "unsubscribe", "orderIds": ids}).decode())
            while self._to_subscribe:
                ids = self._to_subscribe[:SOCKET_CAPACITY]
                del self._to_subscribe[:SOCKET_CAPACITY]
                self._active.update(ids)  # before the send: a drop mid-send resubscribes them
                await ws.send(self._subscribe_command(ids))

    def _subscribe_command(self, ids: list[str]) -> str:
        command: dict[str, Any] = {"op": "subscribe", "orderIds": ids}
        after = {i: seq for i in ids if (seq := self._ledger.by_id[i].last_seq)}
        if after:
            command["afterSeq"] = after
        return orjson.dumps(command).decode()

    def _give_up(self) -> None:
        for order_id in (*self._active, *self._to_subscribe, *self._retrying):
            self._ledger.abandon(self._ledger.by_id[order_id])
        self._active.clear()
        self._to_subscribe.clear()
        self._retrying.clear()


class MultiplexFollower:
    """A few `/ws` sockets per worker; each order goes to the least loaded one."""

    def __init__(self, config: RunConfig, ledger: Ledger) -> None:
        self._url = socket_url(f"{config.ws_url.rstrip('/')}/ws", config)
        self._ledger = ledger
        self._initial = max(1, config.sockets_per_worker)
        self._batch_seconds = config.subscribe_batch_seconds
        self._options = connect_options(config)
        self._sockets: list[MuxSocket] = []

    async def start(self) -> None:
        """Open the sockets before the run starts, so it does not time their handshakes."""
        for _ in range(self._initial):
            self._open()
        await asyncio.gather(*(s.connected.wait() for s in self._sockets))

    def track(self, order: OrderSample) -> None:
        assert order.order_id is not None
        socket = min(self._sockets, key=lambda s: s.load)
        if socket.load >= SOCKET_CAPACITY:
            socket = self._open()  # more orders in flight than the sockets may hold
        socket.subscribe(order.order_id)

    def _open(self) -> MuxSocket:
        socket = MuxSocket(self._url, self._ledger, self._batch_seconds, self._options)
        self._sockets.append(socket)
        return socket

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._sockets))


class PerOrderFollower:
    """One `/ws/orders/{id}` socket per order, as the simplest client does it."""

    def __init__(self, config: RunConfig, ledger: Ledger) -> None:
        self._base = config.ws_url.rstrip("/")
        self._config = config
        self._ledger = ledger
        self._options = connect_options(config)
        self._tasks: set[asyncio.Task[None]] = set()
        self._opening = asyncio.Semaphore(MAX_OPENING)

    async def start(self) -> None:
        return None  # nothing to open ahead: each order opens its own socket

    def track(self, order: OrderSample) -> None:
        task = asyncio.create_task(self._follow(order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, order: OrderSample) -> None:
        attempt = 0
        while True:
            url = f"{self._base}/ws/orders/{order.order_id}?afterSeq={order.last_seq}"
            code: int | None = 1006  # no close frame: the connection dropped
            try:
                async with self._opening:
                    ws = await connect(socket_url(url, self._config), **self._options)
                async with ws:
                    self._ledger.sockets_opened += 1
                    attempt = 0
                    async for raw in ws:
                        self._ledger.record(raw)
                        if order.terminal:
                            break  # also when the server keeps sockets open after the end
                    code = ws.close_code or code
                if order.terminal:
                    return
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else code
            except CONNECT_ERRORS as exc:
                self._ledger.connect_failures[type(exc).__name__] += 1
                code = None
            if code is not None:
                # Closed before the order's end: a drop, a slow-consumer cut (1008), a refusal.
                self._ledger.close_codes[code] += 1
            if code == CLOSE_NOT_FOUND:
                self._ledger.not_found(order)
                return
            if code == CLOSE_UNAUTHORIZED:
                self._ledger.abandon(order)
                return
            self._ledger.reconnects += 1
            delay = reconnect_delay(attempt)
            later = code in (CLOSE_RATE_LIMITED, CLOSE_TRY_AGAIN_LATER)
            await asyncio.sleep(max(delay, 1.0) if later else delay)
            attempt += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
