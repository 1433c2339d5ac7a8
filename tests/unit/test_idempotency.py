"""What an idempotency claim is when the store answers partly (`dexec_api.idempotency`)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import KeyWrongLastSequenceError

from dexec_api.idempotency import ClaimUnknown, IdempotencyStore, fingerprint, host_in_lower_case
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


def with_webhook(url: str) -> Any:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": url}
    return parse_order(body, 50, None)


def test_webhook_urls_that_differ_only_in_the_case_of_scheme_or_host_are_the_same_order() -> None:
    written = fingerprint(with_webhook("https://hooks.example:8443/h?k=V"))
    assert fingerprint(with_webhook("HTTPS://Hooks.EXAMPLE:8443/h?k=V")) == written
    # The path, query and user info are compared as written.
    assert fingerprint(with_webhook("https://hooks.example:8443/H?k=V")) != written
    assert fingerprint(with_webhook("https://hooks.example:8443/h?k=v")) != written


@pytest.mark.parametrize(
    ("url", "compared"),
    [
        ("HTTP://Alice:PW@Host.Example/P", "http://Alice:PW@host.example/P"),
        ("https://[FE80::1]:8443?Q#F", "https://[fe80::1]:8443?Q#F"),
        ("https://H.Example#Frag/x", "https://h.example#Frag/x"),
        ("https://H.Example", "https://h.example"),
    ],
)
def test_only_scheme_and_host_are_put_in_lower_case(url: str, compared: str) -> None:
    assert host_in_lower_case(url) == compared
