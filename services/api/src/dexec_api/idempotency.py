"""Idempotency keys, claimed atomically in a NATS KV bucket shared by every API replica.

A claim is a KV `create` (it fails if the key exists), so of 20 concurrent requests with one
key exactly one mints the order id; the rest read the claim and get the same order. The claim
stores a fingerprint of the normalised order: the same key with another order is a conflict.

A claim's KV revision says who may release it. The request that made it releases it (a delete
expecting that revision) when its order was certainly not stored, so the key is free again.
A request that finds a claim without an order takes it over (an update expecting the
revision) before it places the order, so that the first request can no longer release a key
whose order may now exist; it never releases the claim itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import orjson
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import (
    APIError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from dexec.bus.connection import ensure_key_value
from dexec.bus.errors import WRONG_LAST_SEQUENCE
from dexec.bus.subjects import IDEMPOTENCY_BUCKET
from dexec.orders.events import OrderSpec

# A claim released between this request's `create` and its read: claim the key again, a few
# times at most.
CLAIM_ATTEMPTS = 3


class IdempotencyConflict(Exception):
    pass


class ClaimUnknown(Exception):
    """The store did not answer: whether the key already names an order is not known."""


class ClaimLost(Exception):
    """The claim changed since it was read: another request released it or took it over."""


@dataclass(frozen=True)
class Claim:
    order_id: str
    # Whether this request made the claim, rather than found it.
    created: bool
    revision: int
    kv_key: str
    fingerprint: str

    def value(self) -> bytes:
        return orjson.dumps({"orderId": self.order_id, "fingerprint": self.fingerprint})


def fingerprint(spec: OrderSpec) -> str:
    """What makes two requests "the same body": the normalised order, not its spelling."""
    fields = spec.model_dump(mode="json", exclude={"created_at", "idempotency_key"})
    if spec.webhook_url is not None:
        fields["webhook_url"] = host_in_lower_case(spec.webhook_url)
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def host_in_lower_case(url: str) -> str:
    """`url` with its scheme and host in lower case, as they are compared (RFC 3986 6.2.2.1):
    `HTTPS://Hooks.Example/x` names the same target as `https://hooks.example/x`. The user
    info, path and query are left as written; their case can matter."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    user, at, host = rest[:end].rpartition("@")
    return f"{scheme.lower()}://{user}{at}{host.lower()}{rest[end:]}"


class IdempotencyStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(
        cls, js: JetStreamContext, ttl_seconds: int, replicas: int = 1
    ) -> IdempotencyStore:
        """The bucket, created with `ttl_seconds` and `replicas`, or brought to them if it
        exists: a key must not outlive what the settings allow (see `ApiSettings`)."""
        return cls(await ensure_key_value(js, IDEMPOTENCY_BUCKET, replicas, ttl_seconds))

    async def claim(self, tenant: str | None, key: str, spec: OrderSpec, order_id: str) -> Claim:
        """The key claimed for `order_id`, or the claim it has (for the same order, else
        `IdempotencyConflict`). `ClaimUnknown` if the store did not answer."""
        claim = Claim(order_id, True, 0, _kv_key(tenant, key), fingerprint(spec))
        for _ in range(CLAIM_ATTEMPTS):
            try:
                return replace(claim, revision=await self._kv.create(claim.kv_key, claim.value()))
            except KeyWrongLastSequenceError:
                pass  # claimed already: read it
            except NatsError as exc:  # a claim may exist, or even have been made here
                raise ClaimUnknown(key) from exc
            found = await self._read(claim.kv_key, key, claim.fingerprint)
            if found is not None:
                return found
        raise ClaimUnknown(key)  # released each time between the create and the read

    async def existing(self, tenant: str | None, key: str, spec: OrderSpec) -> Claim | None:
        """The key's claim if it has one (for the same order, else `IdempotencyConflict`)."""
        return await self._read(_kv_key(tenant, key), key, fingerprint(spec))

    async def take_over(self, claim: Claim) -> None:
        """Move `claim`'s revision on, so that the request that made it can no longer release
        it. `ClaimLost` if it changed or went since it was read."""
        try:
            await self._kv.update(claim.kv_key, claim.value(), last=claim.revision)
        except KeyWrongLastSequenceError as exc:
            raise ClaimLost(claim.kv_key) from exc

    async def release(self, claim: Claim) -> bool:
        """Delete `claim` if it is still as this request left it, and say whether it was: False
        if another request has taken it over since."""
        try:
            await self._kv.delete(claim.kv_key, last=claim.revision)
        except APIError as exc:
            if exc.err_code in WRONG_LAST_SEQUENCE:
                return False
            raise
        return True

    async def _read(self, kv_key: str, key: str, mine: str) -> Claim | None:
        try:
            entry = await self._kv.get(kv_key)
        except KeyNotFoundError:  # never claimed, released, or expired
            return None
        except NatsError as exc:
            raise ClaimUnknown(key) from exc
        stored = orjson.loads(entry.value or b"{}")
        if stored.get("fingerprint") != mine:
            raise IdempotencyConflict(key)
        return Claim(stored["orderId"], False, entry.revision or 0, kv_key, mine)


def _kv_key(tenant: str | None, key: str) -> str:
    return hashlib.sha256(f"{tenant or ''}\0{key}".encode()).hexdigest()
