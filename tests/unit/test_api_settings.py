"""The API's settings refuse combinations that would break its promises."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dexec_api.settings import ApiSettings


def test_an_idempotency_key_may_not_outlive_the_stream() -> None:
    with pytest.raises(ValidationError, match="DEXEC_IDEMPOTENCY_TTL_SECONDS"):
        ApiSettings(idempotency_ttl_seconds=7200, stream_max_age_seconds=3600)


def test_a_key_may_live_as_long_as_the_stream_keeps_orders() -> None:
    settings = ApiSettings(idempotency_ttl_seconds=3600, stream_max_age_seconds=3600)
    assert settings.idempotency_ttl_seconds == settings.stream_max_age_seconds
