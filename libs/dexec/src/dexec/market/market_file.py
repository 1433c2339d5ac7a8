"""The market file: which tokens trade, in which pools, from which prices, moving how.

TOML (or JSON with the same structure); see `markets/default.toml`, the market the engine
ships with, for every field. Decimals are read as `Decimal`, never float, so `150.1` is exact.
A file is checked whole when it is loaded: unknown fields, unknown tokens, pools of a pair with
a token the file does not price, or an unknown CPMM fee tier are refused with the reason.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dexec.market.constant_product import CPMM_FEE_TIERS
from dexec.market.pool_model import LiquidityShape
from dexec.market.tokens import UnknownToken, resolve_token

DEFAULT_MARKET = "default.toml"


class MarketFileError(ValueError):
    pass


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OctaveSpec(_Spec):
    period_slots: int = Field(gt=0)
    amplitude_bps: Decimal = Field(ge=0, le=5_000)


class PathSpec(_Spec):
    octaves: list[OctaveSpec] = Field(default_factory=list)


class TokenSpec(_Spec):
    price_usd: Decimal = Field(gt=0)
    # Multiplies the amplitudes of `price_path`: 0 pins the price, 2 doubles every move.
    volatility: Decimal = Field(Decimal(1), ge=0, le=10)
    # Moves with that token (its path is added to this one's own).
    tracks: str | None = None


class _PoolSpec(_Spec):
    pair: str = Field(pattern=r"^[^/\s]+/[^/\s]+$")
    liquidity_usd: Decimal = Field(gt=0)
    # Multiplies the amplitudes of `pool_drift`: pegged pairs (stables, LSTs) drift little.
    drift: Decimal = Field(Decimal(1), ge=0, le=10)
    # Defaults to an address derived from the pool's kind, pair and position in the file.
    address: str | None = Field(None, min_length=32, max_length=44)

    @property
    def symbols(self) -> tuple[str, str]:
        base, quote = self.pair.split("/")
        return base, quote


class AmmV4PoolSpec(_PoolSpec):
    kind: Literal["raydium-amm-v4"]


class CpmmPoolSpec(_PoolSpec):
    kind: Literal["raydium-cpmm"]
    # Over 1,000,000: 2,500 is 0.25%.
    trade_fee_rate: int

    @model_validator(mode="after")
    def _known_tier(self) -> CpmmPoolSpec:
        if self.trade_fee_rate not in CPMM_FEE_TIERS:
            raise ValueError(f"trade_fee_rate must be one of {sorted(CPMM_FEE_TIERS)}")
        return self


class DlmmPoolSpec(_PoolSpec):
    kind: Literal["meteora-dlmm"]
    bin_step: int = Field(ge=1, le=400)
    # Base fee = base_factor · bin_step · 10 (1e-9 units): 10,000 at bin step 4 is 0.04%.
    base_factor: int = Field(ge=0, le=65_535)
    variable_fee_control: int = Field(0, ge=0)
    max_volatility_accumulator: int = Field(0, ge=0)
    bins_each_side: int = Field(ge=0, le=350)
    shape: LiquidityShape = LiquidityShape.CURVE


PoolSpec = Annotated[AmmV4PoolSpec | CpmmPoolSpec | DlmmPoolSpec, Field(discriminator="kind")]


class MarketSpec(_Spec):
    name: str
    description: str = ""
    # Tokens a route may pass through when a pair has no pool of its own.
    hubs: list[str] = Field(default_factory=lambda: ["SOL", "USDC"])
    price_path: PathSpec
    pool_drift: PathSpec
    tokens: dict[str, TokenSpec]
    pools: list[PoolSpec]

    @model_validator(mode="after")
    def _consistent(self) -> MarketSpec:
        symbols = set()
        for key, token in self.tokens.items():
            symbol = _symbol(key)
            symbols.add(symbol)
            if token.tracks is not None:
                tracked = self.tokens.get(token.tracks)
                if tracked is None:
                    raise ValueError(f"{key} tracks {token.tracks}, which the file does not price")
                if tracked.tracks is not None:
                    raise ValueError(f"{key} tracks {token.tracks}, which tracks another token")
        for hub in self.hubs:
            if _symbol(hub) not in symbols:
                raise ValueError(f"hub {hub} is not among the tokens")
        for pool in self.pools:
            base, quote = (_symbol(s) for s in pool.symbols)
            if base == quote:
                raise ValueError(f"pool {pool.pair} trades a token for itself")
            missing = {base, quote} - symbols
            if missing:
                raise ValueError(f"pool {pool.pair} uses {sorted(missing)}, not among the tokens")
        return self

    def token_spec(self, symbol: str) -> TokenSpec:
        for key, spec in self.tokens.items():
            if _symbol(key) == symbol:
                return spec
        raise KeyError(symbol)


def _symbol(key: str) -> str:
    try:
        return resolve_token(key).symbol
    except UnknownToken as exc:
        raise ValueError(f"{exc}: add it to dexec.market.tokens first") from exc


def parse_market(text: str, suffix: str = ".toml") -> MarketSpec:
    try:
        raw = (
            json.loads(text, parse_float=Decimal)
            if suffix == ".json"
            else tomllib.loads(text, parse_float=Decimal)
        )
        return MarketSpec.model_validate(raw)
    except (ValueError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise MarketFileError(str(exc)) from exc
    except InvalidOperation as exc:  # a number whose exponent a Decimal cannot hold
        raise MarketFileError(f"a number out of range: {exc!r}") from exc


@lru_cache(maxsize=1)
def _default_market() -> MarketSpec:
    resource = files("dexec.market").joinpath("markets", DEFAULT_MARKET)
    return parse_market(resource.read_text(encoding="utf-8"))


def load_market_file(path: Path | None = None) -> MarketSpec:
    """The market in `path`, or the default market shipped with dexec (read once)."""
    if path is None:
        return _default_market()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MarketFileError(f"cannot read market file {path}: {exc}") from exc
    try:
        return parse_market(text, path.suffix.lower())
    except MarketFileError as exc:
        raise MarketFileError(f"{path}: {exc}") from exc
