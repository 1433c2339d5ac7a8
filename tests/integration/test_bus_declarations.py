"""The stream and consumers every service declares at start: settings become their config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, StorageType
from nats.js.errors import ServerError

from dexec.bus.connection import ensure_consumer, ensure_stream
from dexec.bus.subjects import (
    ALL_EVENTS,
    CHAIN_BUCKET,
    EXECUTOR_CONSUMER,
    IDEMPOTENCY_BUCKET,
    STREAM,
    kv_stream,
)
from dexec.market.chain import SimulatedChain
from dexec.market.market import Market
from dexec.settings import ChainSettings, CommonSettings
from dexec_api.idempotency import IdempotencyStore

# What a single, unclustered server answers a request for more than one replica.
REPLICAS_NEED_A_CLUSTER = 10074
CHAIN_SETTINGS = ChainSettings(latency_mode="zero")


async def _open_idempotency(js: JetStreamContext, replicas: int) -> None:
    await IdempotencyStore.open(js, ttl_seconds=3600, replicas=replicas)


async def _open_chain(js: JetStreamContext, replicas: int) -> None:
    market = Market.from_settings(CHAIN_SETTINGS)
    chain = await SimulatedChain.open(js, market, CHAIN_SETTINGS, replicas)
    await chain.close()


async def test_the_stream_takes_its_limits_from_the_settings_and_follows_changes(
    js: JetStreamContext, nats_url: str
) -> None:
    settings = CommonSettings(
        nats_url=nats_url, stream_max_age_seconds=3600, duplicate_window_seconds=900
    )
    await ensure_stream(js, settings)
    config = (await js.stream_info(STREAM)).config
    assert config.subjects == [ALL_EVENTS]
    assert config.storage == StorageType.FILE
    assert config.max_age == 3600
    assert config.duplicate_window == 900
    assert config.allow_direct is True

    # A restart with other settings converges on them instead of failing on the old stream.
    await ensure_stream(js, settings.model_copy(update={"stream_max_age_seconds": 7200}))
    assert (await js.stream_info(STREAM)).config.max_age == 7200


async def test_a_consumer_acks_explicitly_and_redelivers_after_the_ack_wait(
    js: JetStreamContext, nats_url: str
) -> None:
    settings = CommonSettings(nats_url=nats_url, ack_wait_seconds=12)
    await ensure_consumer(js, EXECUTOR_CONSUMER, settings, max_ack_pending=64)

    config = (await js.consumer_info(STREAM, EXECUTOR_CONSUMER.durable)).config
    assert config.filter_subject == EXECUTOR_CONSUMER.filter_subject
    assert config.ack_policy == AckPolicy.EXPLICIT
    assert config.ack_wait == 12
    assert config.max_ack_pending == 64
    # Unlimited: the worker ends an order `failed` itself after its last attempt.
    assert config.max_deliver == -1


async def test_the_idempotency_bucket_follows_its_ttl_setting(js: JetStreamContext) -> None:
    await IdempotencyStore.open(js, ttl_seconds=7200)
    await IdempotencyStore.open(js, ttl_seconds=3600)  # lowered on a running deployment

    config = (await js.stream_info(kv_stream(IDEMPOTENCY_BUCKET))).config
    assert config.max_age == 3600


@pytest.mark.parametrize(
    ("bucket", "open_bucket"),
    [(IDEMPOTENCY_BUCKET, _open_idempotency), (CHAIN_BUCKET, _open_chain)],
)
async def test_the_key_value_buckets_get_the_streams_replica_count(
    js: JetStreamContext,
    bucket: str,
    open_bucket: Callable[[JetStreamContext, int], Awaitable[None]],
) -> None:
    """`DEXEC_STREAM_REPLICAS` holds for the buckets too, when they are made and when they
    exist already (a deployment grown to a cluster). A single server refuses more than one
    replica: its refusal shows that the count reached it, both ways."""
    with pytest.raises(ServerError) as refused_at_creation:
        await open_bucket(js, 3)
    assert refused_at_creation.value.err_code == REPLICAS_NEED_A_CLUSTER

    await open_bucket(js, 1)
    assert (await js.stream_info(kv_stream(bucket))).config.num_replicas == 1
    with pytest.raises(ServerError) as refused_at_update:
        await open_bucket(js, 3)
    assert refused_at_update.value.err_code == REPLICAS_NEED_A_CLUSTER


async def test_the_chain_keeps_its_records_as_long_as_the_stream_keeps_events(
    start: Callable[..., Awaitable[object]], js: JetStreamContext
) -> None:
    """One record per signature: kept for ever, the bucket would outgrow the stream it sits
    beside. A bucket made before it had an age limit gets one at the executor's next start."""
    await _open_chain(js, 1)
    assert (await js.stream_info(kv_stream(CHAIN_BUCKET))).config.max_age == 0  # for ever

    await start(
        without=frozenset({"api", "router", "notifier"}),
        stream_max_age_seconds=3600,
        idempotency_ttl_seconds=3600,  # which must not outlive the stream
    )

    assert (await js.stream_info(kv_stream(CHAIN_BUCKET))).config.max_age == 3600
    assert (await js.stream_info(STREAM)).config.max_age == 3600
