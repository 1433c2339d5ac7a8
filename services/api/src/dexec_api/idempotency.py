"""Idempotency keys, claimed atomically in a NATS KV bucket shared by every API replica.

A claim is a KV `create` (it fails if the key exists), so of 20 concurrent requests with one
key exactly one mints the order id; the rest read the claim and get the same order. The claim
stores a fingerprint of the normalised order: the same key with another order is a conflict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import orjson
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from dexec.bus.subjects import IDEMPOTENCY_BUCKET, kv_stream
from dexec.orders.events import OrderSpec


class IdempotencyConflict(Exception):
    pass


class ClaimUnknown(Exception):
    """The store did not answer: whether the key already names an order is not known."""


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
        """The key claimed for `order_id`, or the claim it has (for the same order, else
        `IdempotencyConflict`). `ClaimUnknown` if the store did not answer."""
        kv_key, mine = _kv_key(tenant, key), fingerprint(spec)
        try:
            await self._kv.create(kv_key, orjson.dumps({"orderId": order_id, "fingerprint": mine}))
            return Claim(order_id, created=True)
        except KeyWrongLastSequenceError:
            pass  # claimed already: read it
        except NatsError as exc:  # a claim may exist, or even have been made here
            raise ClaimUnknown(key) from exc
        found = await self._read(kv_key, key, mine)
        if found is None:  # claimed, and gone since (expired)
            raise ClaimUnknown(key)
        return found

    async def existing(self, tenant: str | None, key: str, spec: OrderSpec) -> Claim | None:
        """The key's claim if it has one (for the same order, else `IdempotencyConflict`)."""
        return await self._read(_kv_key(tenant, key), key, fingerprint(spec))

    async def _read(self, kv_key: str, key: str, mine: str) -> Claim | None:
        try:
            entry = await self._kv.get(kv_key)
        except KeyNotFoundError:  # never claimed, or expired
            return None
        except NatsError as exc:
            raise ClaimUnknown(key) from exc
        stored = orjson.loads(entry.value or b"{}")
        if stored.get("fingerprint") != mine:
            raise IdempotencyConflict(key)
        return Claim(stored["orderId"], created=False)


def _kv_key(tenant: str | None, key: str) -> str:
    return hashlib.sha256(f"{tenant or ''}\0{key}".encode()).hexdigest()
