"""Waiters are told when their signature's outcome is written to the chain bucket."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from dexec.market.landings import Landings

BUCKET = "test_landings"


async def test_a_write_resolves_its_waiters_only(js: JetStreamContext) -> None:
    landings = Landings(BUCKET)
    try:
        kv = await js.create_key_value(bucket=BUCKET, history=1)
        await landings.start(js)
        with landings.expect("sig-a") as a, landings.expect("sig-b") as b:
            await kv.create("sig-a", b'{"slot": 7}')
            assert await asyncio.wait_for(a, 10) == b'{"slot": 7}'
            assert not b.done()  # another signature's write is not this one's landing
        assert landings._waiting == {}  # nothing kept once the waits are over
    finally:
        await landings.stop()
