"""Known tokens (mainnet mints) and conversions between decimal amounts and base units.

This is the registry every service validates against; which of these tokens trade, and where,
is the market file's business (`dexec.market.market_file`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext


@dataclass(frozen=True)
class Token:
    symbol: str
    mint: str
    decimals: int
    name: str


WSOL_MINT = "So11111111111111111111111111111111111111112"

TOKENS: tuple[Token, ...] = (
    Token("SOL", WSOL_MINT, 9, "Solana (wrapped as wSOL for swaps)"),
    Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6, "USD Coin"),
    Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6, "Tether USD"),
    Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5, "Bonk"),
    Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6, "Jupiter"),
    Token("RAY", "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 6, "Raydium"),
    Token("WIF", "EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm", 6, "dogwifhat"),
    Token("JitoSOL", "J1toso1uCk3RLmjorhTtrVwY9HJ7X8V9yYac6Y7kGCPn", 9, "Jito Staked SOL"),
)

# SPL token amounts are u64 on chain.
MAX_BASE_UNITS = 2**64 - 1

# Symbols match in any case; mints are base58, where case matters.
_BY_SYMBOL: dict[str, Token] = {t.symbol.upper(): t for t in TOKENS}
_BY_SYMBOL["WSOL"] = _BY_SYMBOL["SOL"]
_BY_MINT: dict[str, Token] = {t.mint: t for t in TOKENS}


# Decimal notation in ASCII: what `Decimal()` reads without its extensions (`1_0`, digits of
# other scripts such as U+FF11 or U+0661, `NaN`, `Infinity`). An exponent is decimal notation too.
_DECIMAL_NOTATION = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def is_decimal_notation(text: str) -> bool:
    """`1.5`, `.5`, `-2`, `1e3`; not `1_0`, U+FF11, `NaN`, `0x10` (surrounding spaces are not
    stripped here)."""
    return _DECIMAL_NOTATION.fullmatch(text) is not None


class UnknownToken(ValueError):
    pass


class BadAmount(ValueError):
    pass


def resolve_token(key: str) -> Token:
    """A token by symbol (any case of its ASCII letters, `wSOL` is SOL) or by mint address.

    Only ASCII is upper-cased: `str.upper` makes `SOL` of "\u017fol" (a long s) and `WIF` of
    "w\u0131f" (a dotless i), look-alikes that must not name a token."""
    key = key.strip()
    token = _BY_MINT.get(key) or (_BY_SYMBOL.get(key.upper()) if key.isascii() else None)
    if token is None:
        raise UnknownToken(f"unknown token {key!r}")
    return token


def to_base_units(token: Token, amount: Decimal | str | int) -> int:
    """`1.5` SOL → 1_500_000_000 lamports; refuses more decimals than the token has, and
    anything but decimal notation in ASCII digits (`is_decimal_notation`)."""
    text = str(amount).strip()
    if not is_decimal_notation(text):
        raise BadAmount(f"amount {amount!r} is not a decimal number (ASCII digits, '.', 'e')")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # an exponent Decimal cannot hold: `1e99999999999999999999`
        raise BadAmount(f"amount {amount!r} is not a number") from exc
    if value <= 0:
        raise BadAmount("amount must be greater than zero")
    # Compare before scaling, so a huge exponent never reaches arithmetic.
    if value > Decimal(MAX_BASE_UNITS).scaleb(-token.decimals):
        raise BadAmount(f"amount {amount} is more than a {token.symbol} account can hold")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite values have an int exponent
    if -exponent > token.decimals and value != value.quantize(Decimal(1).scaleb(-token.decimals)):
        raise BadAmount(f"{token.symbol} has {token.decimals} decimals; {amount} has more")
    # u64 fits in 20 digits: this context computes exactly, with no rounding.
    with localcontext(prec=60):
        return int(value.scaleb(token.decimals))


def from_base_units(token: Token, units: int) -> Decimal:
    with localcontext(prec=60):
        return Decimal(units).scaleb(-token.decimals)


def format_units(token: Token, units: int) -> str:
    """`units` in the token's decimal notation, never an exponent: 1 lamport is `0.000000001`
    (`str` of the Decimal would give `1E-9`)."""
    return format(from_base_units(token, units), "f")
