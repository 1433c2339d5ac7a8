"""What an idempotency claim is when the store answers partly (`dexec_api.idempotency`)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import KeyWrongLastSequenceError

from dexec_api.idempotency import ClaimUnknown, IdempotencyStore
from dexec_api.order_request import parse_order

SPEC = parse_order({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}, 50, None)


class ClaimedButUnreadable:
    """A bucket where the key is claimed already, and reading it times out."""

    async def create(self, key: str, value: bytes, **kwargs: Any) -> int:
        raise KeyWrongLastSequenceError()

    async def get(self, key: str, **kwargs: Any) -> Any:
        raise NatsTimeoutError()


async def test_a_claim_that_exists_but_cannot_be_read_is_unknown_not_a_bus_error() -> None:
    """A bus error would be answered "not accepted", and the claim's order may exist."""
    store = IdempotencyStore(ClaimedButUnreadable())  # type: ignore[arg-type]
    with pytest.raises(ClaimUnknown):
        await store.claim(None, "k", SPEC, "order-1")
