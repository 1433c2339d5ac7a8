"""Landed transactions pushed to whoever waits for them, as a `signatureSubscribe` would.

Polling each signature's outcome once a slot (one `getSignatureStatuses` per signature) makes
the load on NATS grow with the orders in flight. Instead one ordered consumer per process reads
new writes to the chain bucket (`$KV.<bucket>.<signature>`, the NATS KV convention) and hands
each to the waiters of that signature. It starts at "now": a waiter registers, then reads the
outcome once itself, so a landing just before the registration is not missed.

It hands on every write as it is, which is not always a landing: the chain also writes there
that a transaction expired without landing (`dexec.market.chain.NeverLanded`); the waiter
decodes the value (`decode_record`) and tells the two apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from dexec.bus.subjects import kv_key_prefix, kv_stream


class Landings:
    def __init__(self, bucket: str) -> None:
        self._prefix = kv_key_prefix(bucket)
        self._stream = kv_stream(bucket)
        self._waiting: dict[str, set[asyncio.Future[bytes]]] = {}
        self._sub: Subscription | None = None

    async def start(self, js: JetStreamContext) -> None:
        self._sub = await js.subscribe(
            f"{self._prefix}>",
            stream=self._stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=self._on_msg,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    @contextmanager
    def expect(self, signature: str) -> Iterator[asyncio.Future[bytes]]:
        """A future that gets what is recorded for the signature (JSON) when it is written."""
        landing: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        waiters = self._waiting.setdefault(signature, set())
        waiters.add(landing)
        try:
            yield landing
        finally:
            waiters.discard(landing)
            if not waiters:
                self._waiting.pop(signature, None)

    async def _on_msg(self, msg: Msg) -> None:
        waiters = self._waiting.get(msg.subject[len(self._prefix) :])
        for landing in waiters or ():
            if not landing.done():
                landing.set_result(msg.data)
