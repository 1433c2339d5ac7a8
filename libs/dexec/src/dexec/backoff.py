"""Exponential backoff: the delay doubles per attempt, up to a ceiling."""

from __future__ import annotations

import math

# Doubling stops here: base * 2^30 is past any ceiling a deployment would set, and a give-up
# time of days allows thousands of attempts, where 2.0 ** 1024 would overflow a float.
MAX_DOUBLINGS = 30


def doubling_delay(attempt: int, base_seconds: float, ceiling: float = math.inf) -> float:
    """Delay before the attempt after `attempt` (from 1): base, 2·base, 4·base, ... ≤ ceiling."""
    return min(base_seconds * 2.0 ** min(attempt - 1, MAX_DOUBLINGS), ceiling)
