"""The API's settings refuse combinations that would break its promises."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dexec_api.settings import ApiSettings


def test_an_idempotency_key_may_not_outlive_the_stream_by_even_a_second() -> None:
    with pytest.raises(ValidationError, match="DEXEC_IDEMPOTENCY_TTL_SECONDS"):
        ApiSettings(idempotency_ttl_seconds=3601, stream_max_age_seconds=3600)


def test_a_key_may_live_as_long_as_the_stream_keeps_orders() -> None:
    # The boundary: no error. (The refusal one second above it is the test before.)
    ApiSettings(idempotency_ttl_seconds=3600, stream_max_age_seconds=3600)


def test_the_public_websocket_url_is_kept_without_a_trailing_slash() -> None:
    # Links are joined on as f"{url}/ws/orders/{id}": "ws://h:8001//ws/..." matches no route.
    assert ApiSettings(public_ws_url="wss://ws.example/").public_ws_url == "wss://ws.example"
