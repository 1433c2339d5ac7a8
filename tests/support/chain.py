"""Reading the simulated chain's state (its NATS KV bucket) to count what really executed."""

from __future__ import annotations

from collections import Counter

import nats

from dexec.bus.subjects import CHAIN_BUCKET, kv_key_prefix, kv_stream
from dexec.market.chain import Outcome


async def landed_outcomes(nats_url: str) -> list[Outcome]:
    """Every transaction that landed on the simulated chain.

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
        return [Outcome.model_validate_json((await kv.get(key)).value or b"") for key in keys]
    finally:
        await nc.close()


async def landed_per_order(nats_url: str) -> Counter[str]:
    return Counter(outcome.order_id for outcome in await landed_outcomes(nats_url))
