"""Known tokens (mainnet mints) and conversions between decimal amounts and base units.

This is the registry every service validates against; which of these tokens trade, and where,
is the market file's business (`dexec.market.market_file`).
"""

from __future__ import annotations

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


class UnknownToken(ValueError):
    pass


class BadAmount(ValueError):
    pass


def resolve_token(key: str) -> Token:
    """A token by symbol (any case, `wSOL` is SOL) or by mint address."""
    key = key.strip()
    token = _BY_MINT.get(key) or _BY_SYMBOL.get(key.upper())
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
