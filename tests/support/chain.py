"""Reading the simulated chain's state (its NATS KV bucket) to count what really executed."""

from __future__ import annotations

from collections import Counter

import nats
from nats.js.errors import NoKeysError

from dexec.bus.subjects import CHAIN_BUCKET
from dexec.market.chain import Outcome


async def landed_outcomes(nats_url: str) -> list[Outcome]:
    """Every transaction that landed on the simulated chain."""
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(CHAIN_BUCKET)
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        return [Outcome.model_validate_json((await kv.get(key)).value or b"") for key in keys]
    finally:
        await nc.close()


async def landed_per_order(nats_url: str) -> Counter[str]:
    return Counter(outcome.order_id for outcome in await landed_outcomes(nats_url))
