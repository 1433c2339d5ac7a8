"""The stream and consumers every service declares at start: settings become their config."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, StorageType

from dexec.bus.connection import ensure_consumer, ensure_stream
from dexec.bus.subjects import (
    ALL_EVENTS,
    EXECUTOR_CONSUMER,
    IDEMPOTENCY_BUCKET,
    STREAM,
    kv_stream,
)
from dexec.settings import CommonSettings
from dexec_api.idempotency import IdempotencyStore


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
