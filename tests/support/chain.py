"""Reading the simulated chain's state (its NATS KV bucket) to count what really executed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import nats
from nats.js.kv import KeyValue

from dexec.bus.subjects import CHAIN_BUCKET, kv_key_prefix, kv_stream
from dexec.market.chain import Outcome, decode_record


async def landed_outcomes(nats_url: str) -> list[Outcome]:
    """Every transaction that landed on the simulated chain.

    A key may instead hold the chain's record that its transaction never landed (its
    blockhash expired first: `NeverLanded`); those are left out.

    The keys come from the bucket's stream state rather than `KeyValue.keys()`, whose watcher
    can report "no keys" when the server has sent them all before the client read any.
    """
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        kv = await js.key_value(CHAIN_BUCKET)
        prefix = kv_key_prefix(CHAIN_BUCKET)
        info = await js.stream_info(kv_stream(CHAIN_BUCKET), subjects_filter=f"{prefix}>")
        keys = [subject.removeprefix(prefix) for subject in info.state.subjects or {}]
        records = [decode_record((await kv.get(key)).value or b"") for key in keys]
        return [record for record in records if isinstance(record, Outcome)]
    finally:
        await nc.close()


async def landed_per_order(nats_url: str) -> Counter[str]:
    return Counter(outcome.order_id for outcome in await landed_outcomes(nats_url))


class FirstCreateHeld:
    """The chain's bucket, except that its first `create` waits until `release` is set.

    A send whose write reaches NATS late: held during a disconnect, by a paused process, or
    by TCP retransmission. `held` is set when that create is waiting; `result` gets what it
    came to (its revision, or the error it raised).
    """

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.result: asyncio.Future[int | Exception] = asyncio.get_running_loop().create_future()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)

    async def create(self, key: str, value: bytes) -> int:
        if self.held.is_set():
            return await self._kv.create(key, value)
        self.held.set()
        await self.release.wait()
        try:
            revision = await self._kv.create(key, value)
        except Exception as exc:
            self.result.set_result(exc)
            raise
        self.result.set_result(revision)
        return revision
