"""Idempotency keys, claimed atomically in a NATS KV bucket shared by every API replica.

A claim is a KV `create` (it fails if the key exists), so of 20 concurrent requests with one
key exactly one mints the order id; the rest read the claim and get the same order. The claim
stores a fingerprint of the normalised order: the same key with another order is a conflict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import orjson
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from dexec.bus.subjects import IDEMPOTENCY_BUCKET, kv_stream
from dexec.orders.events import OrderSpec


class IdempotencyConflict(Exception):
    pass


@dataclass(frozen=True)
class Claim:
    order_id: str
    created: bool


def fingerprint(spec: OrderSpec) -> str:
    """What makes two requests "the same body": the normalised order, not its spelling."""
    fields = spec.model_dump(mode="json", exclude={"created_at", "idempotency_key"})
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


class IdempotencyStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, ttl_seconds: int) -> IdempotencyStore:
        """The bucket, created with `ttl_seconds`, or brought to it if it exists: a key must
        not outlive what the settings allow (see `ApiSettings`)."""
        try:
            kv = await js.key_value(IDEMPOTENCY_BUCKET)
            config = (await js.stream_info(kv_stream(IDEMPOTENCY_BUCKET))).config
            if config.max_age != ttl_seconds:
                await js.update_stream(replace(config, max_age=float(ttl_seconds)))
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=IDEMPOTENCY_BUCKET,
                    history=1,
                    ttl=float(ttl_seconds),
                    storage=StorageType.FILE,
                )
            )
        return cls(kv)

    async def claim(self, tenant: str | None, key: str, spec: OrderSpec, order_id: str) -> Claim:
        kv_key = hashlib.sha256(f"{tenant or ''}\0{key}".encode()).hexdigest()
        mine = fingerprint(spec)
        try:
            await self._kv.create(kv_key, orjson.dumps({"orderId": order_id, "fingerprint": mine}))
            return Claim(order_id, created=True)
        except KeyWrongLastSequenceError:
            entry = await self._kv.get(kv_key)
        stored = orjson.loads(entry.value or b"{}")
        if stored.get("fingerprint") != mine:
            raise IdempotencyConflict(key)
        return Claim(stored["orderId"], created=False)
