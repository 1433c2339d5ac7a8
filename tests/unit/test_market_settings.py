"""The simulated market's settings refuse a range that runs downwards."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dexec.settings import ChainSettings
from dexec_executor.settings import ExecutorSettings
from dexec_router.settings import RouterSettings


@pytest.mark.parametrize(
    ("low", "high", "variable"),
    [
        ("quote_latency_ms_min", 301, "DEXEC_QUOTE_LATENCY_MS_MIN"),  # max + 1: a zero span
        ("quote_latency_ms_min", 1_000, "DEXEC_QUOTE_LATENCY_MS_MIN"),
        ("confirm_slots_min", 5, "DEXEC_CONFIRM_SLOTS_MIN"),
    ],
)
@pytest.mark.parametrize("settings", [RouterSettings, ExecutorSettings, ChainSettings])
def test_a_minimum_above_its_maximum_stops_the_service_at_start(
    settings: type[ChainSettings], low: str, high: int, variable: str
) -> None:
    with pytest.raises(ValidationError, match=f"{variable} must not exceed"):
        settings(**{low: high})


def test_a_range_of_one_value_is_allowed() -> None:
    settings = ChainSettings(quote_latency_ms_min=300, confirm_slots_min=3)
    assert (settings.quote_latency_ms_min, settings.quote_latency_ms_max) == (300, 300)
    assert (settings.confirm_slots_min, settings.confirm_slots_max) == (3, 3)
