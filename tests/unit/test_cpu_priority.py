"""Reading the stack's CPU priorities: a profile's name or explicit nice values."""

from __future__ import annotations

import pytest

from dexec_tools.cpu_priority import PROFILES, parse_priorities
from dexec_tools.devstack import PARTS


def test_a_profile_by_name() -> None:
    assert parse_priorities("equal", PARTS) == {}
    assert parse_priorities("latency", PARTS) == PROFILES["latency"]
    assert parse_priorities("latency", PARTS) is not PROFILES["latency"]  # a copy to change freely


def test_explicit_nice_values_per_part() -> None:
    assert parse_priorities("router=10, executor=5,postgres=-2", PARTS) == {
        "router": 10,
        "executor": 5,
        "postgres": -2,
    }
    assert parse_priorities("", PARTS) == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("fast", "want one of equal, latency or PART=NICE"),
        ("loadgen=5", "PART one of api, router"),
        ("router=high", "must be an integer"),
        ("router=20", "from -20 to 19"),
        ("router", "want one of"),
    ],
)
def test_what_is_not_a_priority_is_refused_with_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_priorities(text, PARTS)
