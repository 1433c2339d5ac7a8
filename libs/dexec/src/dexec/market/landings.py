"""Landed transactions pushed to whoever waits for them, as a `signatureSubscribe` would.

Polling each signature's outcome once a slot (one `getSignatureStatuses` per signature) makes
the load on NATS grow with the orders in flight. Instead one ordered consumer per process reads
new writes to the chain bucket (`$KV.<bucket>.<signature>`, the NATS KV convention) and hands
each to the waiters of that signature. It starts at "now" (the stream's next seq when it
starts): a waiter registers, then reads the outcome once itself, so a landing just before the
registration is not missed. "Now" holds also when nats-py recreates the consumer before its
first message (a NATS restart): the bucket's history is never replayed ahead of new landings.

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
from nats.js.api import ConsumerConfig, DeliverPolicy

from dexec.bus.ordered_resume import resume_after
from dexec.bus.subjects import kv_key_prefix, kv_stream


class Landings:
    def __init__(self, bucket: str) -> None:
        self._prefix = kv_key_prefix(bucket)
        self._stream = kv_stream(bucket)
        self._waiting: dict[str, set[asyncio.Future[bytes]]] = {}
        self._sub: Subscription | None = None

    async def start(self, js: JetStreamContext, heartbeat_seconds: float = 5.0) -> None:
        """Follow the bucket's writes from its next one on (`heartbeat_seconds`: the consumer's
        idle heartbeat; nats-py recreates the consumer after two missed ones)."""
        # nats-py recreates an ordered consumer (after a NATS restart, missed heartbeats or a
        # gap) at the stream seq after the last message it delivered, and before any at 1: its
        # reset overwrites the config's deliver policy and start seq with that one, so asking
        # for `NEW` or an `opt_start_seq` alone is forgotten at the first reset, and Landings
        # that had seen nothing yet would be sent every record in the bucket. So they start at
        # an explicit seq (the stream's last + 1, read now; 1 for an empty bucket), and nats-py's
        # state is told that everything before it was seen, which is where a reset then resumes.
        start = (await js.stream_info(self._stream)).state.last_seq + 1
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        self._sub = await js.subscribe(
            f"{self._prefix}>",
            stream=self._stream,
            config=config,
            ordered_consumer=True,
            idle_heartbeat=heartbeat_seconds,
            cb=self._on_msg,
        )
        resume_after(self._sub, start - 1, "chain landings consumer")

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
