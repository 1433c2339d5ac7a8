"""The router's settings refuse values that would break what the API promises."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dexec_api.market_routes import ROUTER_REPLY_TIMEOUT_SECONDS
from dexec_router.settings import RouterSettings


def test_a_quote_may_not_take_longer_than_the_api_waits_for_it() -> None:
    RouterSettings(quote_timeout_seconds=ROUTER_REPLY_TIMEOUT_SECONDS - 1)  # within: accepted
    with pytest.raises(ValidationError, match="quote_timeout_seconds"):
        RouterSettings(quote_timeout_seconds=ROUTER_REPLY_TIMEOUT_SECONDS)
