"""Tradable tokens and conversions between decimal amounts and integer base units."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


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
)

_BY_KEY: dict[str, Token] = {}
for _token in TOKENS:
    _BY_KEY[_token.symbol.upper()] = _token
    _BY_KEY[_token.mint.upper()] = _token
_BY_KEY["WSOL"] = _BY_KEY["SOL"]


class UnknownToken(ValueError):
    pass


class BadAmount(ValueError):
    pass


def resolve_token(key: str) -> Token:
    """A token by symbol (any case, `wSOL` is SOL) or by mint address."""
    token = _BY_KEY.get(key.strip().upper())
    if token is None:
        raise UnknownToken(f"unknown token {key!r}")
    return token


def to_base_units(token: Token, amount: Decimal | str | int) -> int:
    """`1.5` SOL → 1_500_000_000 lamports; refuses more decimals than the token has."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise BadAmount(f"amount {amount!r} is not a number") from exc
    if not value.is_finite():
        raise BadAmount(f"amount {amount!r} is not a finite number")
    if value <= 0:
        raise BadAmount("amount must be greater than zero")
    units = value.scaleb(token.decimals)
    if units != units.to_integral_value():
        raise BadAmount(f"{token.symbol} has {token.decimals} decimals; {amount} has more")
    return int(units)


def from_base_units(token: Token, units: int) -> Decimal:
    return Decimal(units).scaleb(-token.decimals)
