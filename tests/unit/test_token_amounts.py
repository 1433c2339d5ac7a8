"""Amounts shown to people: base units in the token's decimal notation, never an exponent."""

from __future__ import annotations

import pytest

from dexec.market.tokens import format_units, resolve_token, to_base_units


@pytest.mark.parametrize(
    ("symbol", "units", "shown"),
    [
        ("SOL", 1, "0.000000001"),
        ("SOL", 1_500_000_000, "1.500000000"),
        ("USDC", 10, "0.000010"),
        ("USDC", 2**64 - 1, "18446744073709.551615"),
    ],
)
def test_base_units_are_shown_in_plain_decimal_notation(
    symbol: str, units: int, shown: str
) -> None:
    token = resolve_token(symbol)
    assert format_units(token, units) == shown
    assert to_base_units(token, shown) == units  # and it reads back exactly
