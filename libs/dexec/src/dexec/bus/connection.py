"""NATS connection and JetStream declarations (create-or-update, so every start converges)."""

from __future__ import annotations

import logging
from dataclasses import replace

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

from dexec.bus.subjects import ALL_EVENTS, STREAM, ConsumerSpec, kv_stream
from dexec.settings import CommonSettings

log = logging.getLogger(__name__)

STREAM_NAME_IN_USE = 10058
# Publishes conditioned on another subject, or on a wildcard (`Condition`), and batched
# direct gets arrived in NATS 2.11.
MIN_SERVER_VERSION = (2, 11)


class UnsupportedServer(RuntimeError):
    """The NATS server is older than dexec needs."""


async def connect(
    settings: CommonSettings, name: str, *, hold_while_disconnected: bool = True
) -> Client:
    """Connect and keep reconnecting forever: a NATS restart must not end a service.

    nats-py holds what is published while it is disconnected and sends it on reconnecting,
    however late. `hold_while_disconnected=False` makes such a publish fail at once instead
    (`OutboundBufferLimitError`), so the caller knows it was not sent.
    """

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    nc = await nats.connect(
        settings.nats_url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **({} if hold_while_disconnected else {"pending_size": 0}),
    )
    version = nc.connected_server_version
    if (version.major, version.minor) < MIN_SERVER_VERSION:
        await nc.close()
        needed = ".".join(map(str, MIN_SERVER_VERSION))
        running = f"{version.major}.{version.minor}.{version.patch}"
        raise UnsupportedServer(f"dexec needs NATS {needed} or later; this server is {running}")
    return nc


async def disconnect(nc: Client) -> None:
    """Drain (let in-flight work finish, then close), or close a connection that cannot drain
    (nats-py refuses to drain while reconnecting): a service stopping during a NATS outage
    must still stop cleanly, and release what it holds after this."""
    try:
        await nc.drain()
    except NatsError as exc:
        log.warning("nats: cannot drain (%r), closing", exc)
        await nc.close()


def stream_config(settings: CommonSettings) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[ALL_EVENTS],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        max_age=float(settings.stream_max_age_seconds),
        duplicate_window=float(settings.duplicate_window_seconds),
        num_replicas=settings.stream_replicas,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, settings: CommonSettings) -> None:
    config = stream_config(settings)
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)


async def ensure_key_value(
    js: JetStreamContext, bucket: str, replicas: int, ttl_seconds: float | None = None
) -> KeyValue:
    """The KV bucket (one value per key, on disk), created with `replicas` copies and
    `ttl_seconds` (None: keys never expire), or brought to them if it exists: a bucket made
    before a deployment grew to a NATS cluster must not stay on one server."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=bucket,
                history=1,
                ttl=None if ttl_seconds is None else float(ttl_seconds),
                storage=StorageType.FILE,
                replicas=replicas,
            )
        )
    config = (await js.stream_info(kv_stream(bucket))).config
    wanted = replace(config, num_replicas=replicas)
    if ttl_seconds is not None:
        wanted = replace(wanted, max_age=float(ttl_seconds))
    if wanted != config:
        await js.update_stream(wanted)
    return kv


async def ensure_consumer(
    js: JetStreamContext, spec: ConsumerSpec, settings: CommonSettings, max_ack_pending: int
) -> None:
    # max_deliver stays unlimited: the worker counts attempts itself and ends an order with
    # `failed` after the last one, so JetStream never drops an order silently.
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            durable_name=spec.durable,
            filter_subject=spec.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=max_ack_pending,
        ),
    )
