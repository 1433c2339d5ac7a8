"""A continuous pull on a durable consumer: requests kept outstanding, messages to a callback.

nats-py's `fetch()` costs a task, a timer and a uuid per message it waits for, plus a pull
request (often two) per batch; at a trickle that is per message. Here the messages of
long-lived pull requests come to one subscription's callback instead, and new requests go
out only as room frees up.

Credits: the pump asks for at most `capacity` messages beyond those it holds (handed to
`on_message` and not yet released with `done()`), and asks again once half its capacity is
free. Each request expires after `expires` seconds (the server then says how many of its
messages it did not deliver: status 408 with `Nats-Pending-Messages`) and carries an idle
heartbeat. When neither a message nor a heartbeat came for two heartbeats, or the connection
came back from a reconnect, the outstanding requests are presumed lost and asked for anew:
the server bounds what may be delivered at once by the consumer's `max_ack_pending`, and
nothing received is ever dropped, so a miscount costs only a larger batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"
HEARTBEAT = "100"
REQUEST_EXPIRED = "408"
NS = 1_000_000_000
# After a request ended otherwise than by expiring (or could not be sent), wait before the next.
RETRY_SECONDS = 0.5


class PullPump:
    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        on_message: Callable[[Msg], None],
        *,
        capacity: int,
        expires: float = 30.0,
        heartbeat: float = 5.0,
    ) -> None:
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._on_message = on_message
        self._capacity = capacity
        self._threshold = max(1, capacity // 2)
        self._expires = expires
        self._heartbeat = heartbeat
        self._inbox = nc.new_inbox()
        self._asked = 0  # requested, not yet delivered or expired
        self._held = 0  # delivered, not yet released
        self._last_seen = time.monotonic()
        self._reconnects = 0
        self._not_before = 0.0
        self._wake = asyncio.Event()
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Pull requests sent so far.
        self.requests = 0

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._receive)
        self._reconnects = self._nc.stats["reconnects"]
        self._wake.set()
        self._tasks = [
            asyncio.create_task(self._ask_loop()),
            asyncio.create_task(self._watch_loop()),
        ]

    async def stop(self) -> None:
        """Stop asking; what is still on its way is redelivered after the ack wait."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def done(self, count: int = 1) -> None:
        """Release `count` delivered messages (acked, nakked or terminated)."""
        self._held -= count
        if self._room() >= self._threshold:
            self._wake.set()

    def _room(self) -> int:
        return self._capacity - self._held - self._asked

    async def _receive(self, msg: Msg) -> None:
        self._last_seen = time.monotonic()
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:
            self._asked = max(0, self._asked - 1)
            self._held += 1
            self._on_message(msg)
            return
        if status == HEARTBEAT:
            return
        if status == REQUEST_EXPIRED and msg.headers and PENDING_MESSAGES in msg.headers:
            self._asked = max(0, self._asked - int(msg.headers[PENDING_MESSAGES]))
        else:  # the request ended otherwise (409: leadership change, consumer deleted, ...)
            log.info("pull request on %s ended: %s %s", self._next_subject, status, msg.headers)
            self._asked = 0
            self._not_before = time.monotonic() + RETRY_SECONDS
        self._wake.set()

    async def _ask_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            delay = self._not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            room = self._room()
            if room < self._threshold and self._asked > 0:
                continue
            if room <= 0:
                continue
            request = {
                "batch": room,
                "expires": int(self._expires * NS),
                "idle_heartbeat": int(self._heartbeat * NS),
            }
            try:
                await self._nc.publish(self._next_subject, orjson.dumps(request), self._inbox)
            except Exception as exc:  # disconnected: the watch loop asks again
                log.warning("pull request on %s failed: %s", self._next_subject, exc)
                self._not_before = time.monotonic() + RETRY_SECONDS
                continue
            self._asked += room
            self.requests += 1

    async def _watch_loop(self) -> None:
        """Ask anew when the outstanding requests went silent or the connection was rebuilt."""
        while True:
            await asyncio.sleep(self._heartbeat)
            reconnects = self._nc.stats["reconnects"]
            silent = time.monotonic() - self._last_seen > 2 * self._heartbeat
            if reconnects != self._reconnects or (silent and self._asked > 0):
                self._reconnects = reconnects
                self._asked = 0
                self._last_seen = time.monotonic()
            if self._room() > 0:
                self._wake.set()
