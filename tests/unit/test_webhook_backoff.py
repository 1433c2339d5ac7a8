"""The webhook retry delay: doubling from the base, capped, for any number of attempts."""

from __future__ import annotations

import pytest

from dexec_notifier.webhooks import backoff_seconds


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0)]
)
def test_the_delay_doubles_up_to_the_ceiling(attempts: int, delay: float) -> None:
    assert backoff_seconds(attempts, base=1.0, ceiling=60.0) == delay


def test_thousands_of_attempts_stay_at_the_ceiling() -> None:
    """A give-up time of days allows that many; 2.0 ** 1024 would overflow."""
    assert backoff_seconds(1_025, base=1.0, ceiling=60.0) == 60.0
    assert backoff_seconds(1_000_000, base=0.5, ceiling=3_600.0) == 3_600.0
