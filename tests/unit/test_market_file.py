"""Market files: the shipped default, another file (TOML or JSON), and refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from dexec.market.market import Market
from dexec.market.market_file import MarketFileError, load_market_file, parse_market
from dexec.market.tokens import resolve_token
from dexec.settings import MarketSettings

SMALL = """
name = "small"
[price_path]
octaves = [{ period_slots = 100, amplitude_bps = 10 }]
[pool_drift]
octaves = []
[tokens.SOL]
price_usd = 150.25
[tokens.USDC]
price_usd = 1
volatility = 0
[[pools]]
kind = "raydium-amm-v4"
pair = "SOL/USDC"
liquidity_usd = 1_000_000
"""


def test_the_default_market_ships_with_the_package() -> None:
    spec = load_market_file()
    assert spec.name == "default"
    assert spec.hubs == ["SOL", "USDC"]


def test_decimals_are_read_exactly() -> None:
    spec = parse_market(SMALL)
    assert spec.tokens["SOL"].price_usd == Decimal("150.25")


def test_another_market_file_from_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    market = Market.from_settings(MarketSettings(market_file=str(path), market_seed=1))
    assert [t.symbol for t in market.tokens] == ["SOL", "USDC"]
    assert len(market.pools()) == 1
    assert market.venues == ("raydium",)


def test_a_json_market_file(tmp_path: Path) -> None:
    spec = parse_market(SMALL)
    path = tmp_path / "small.json"
    path.write_text(json.dumps(spec.model_dump(mode="json")))
    assert load_market_file(path) == spec


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('pair = "SOL/USDC"', 'pair = "SOL/DOGE"'), "unknown token"),
        (('pair = "SOL/USDC"', 'pair = "SOL/USDT"'), "not among the tokens"),
        (('pair = "SOL/USDC"', 'pair = "SOL/SOL"'), "itself"),
        (('raydium-amm-v4"', 'raydium-cpmm"\ntrade_fee_rate = 3000'), "trade_fee_rate"),
        (("liquidity_usd = 1_000_000", "liquidity_usd = 0"), "greater than 0"),
        (("[tokens.USDC]", "[tokens.USDC]\ncolour = 1"), "colour"),
        (("volatility = 0", 'volatility = 0\ntracks = "JUP"'), "does not price"),
        (('name = "small"', 'name = "small"\nhubs = ["BONK"]'), "hub"),
        (("price_usd = 150.25", "price_usd = 1e99999999999999999999"), "out of range"),
    ],
)
def test_bad_files_are_refused_with_the_reason(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(MarketFileError, match=message):
        parse_market(SMALL.replace(*edit))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MarketFileError, match="cannot read"):
        load_market_file(tmp_path / "nope.toml")


def test_the_file_may_name_tokens_by_any_spelling() -> None:
    spec = parse_market(SMALL.replace("[tokens.SOL]", "[tokens.wsol]"))
    assert Market(1, spec).tokens[0] is resolve_token("SOL")
