"""Parsing a submitted order body into one normalised `OrderSpec`."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dexec.market.tokens import WSOL_MINT
from dexec_api.errors import ApiError
from dexec_api.order_request import parse_json_object, parse_order, whole_number

USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
DEFAULT_BPS = 50


def parse(body: dict[str, Any], tenant: str | None = None):
    return parse_order(body, DEFAULT_BPS, tenant)


def normalised(body: dict[str, Any]) -> tuple[str, str, int, int]:
    spec = parse(body)
    return spec.token_in, spec.token_out, spec.amount_in, spec.slippage_bps


def api_error(body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(body)
    return info.value


SELL_ONE_AND_A_HALF_SOL = ("SOL", "USDC", 1_500_000_000, 50)


@pytest.mark.parametrize(
    "body",
    [
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 50},
        {"type": "market", "tokenIn": "sol", "tokenOut": "usdc", "amount": "1.5"},
        {"inputToken": "SOL", "outputToken": "USDC", "amount": "1.5", "slippage": "0.005"},
        {"side": "sell", "pair": "SOL/USDC", "amount": "1.5", "slippageBps": 50},
        {"side": "sell", "pair": " SOL / USDC ", "amount": "1.5"},
        {"tokenIn": "wSOL", "tokenOut": USDC_MINT, "amount": "1.5"},
        {"tokenIn": WSOL_MINT, "tokenOut": "USDC", "amount": Decimal("1.5")},
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": " 1.5 ", "unknownField": 1},
    ],
)
def test_all_spellings_give_the_same_spec(body: dict[str, Any]) -> None:
    assert normalised(body) == SELL_ONE_AND_A_HALF_SOL


def test_buy_spends_the_quote_token() -> None:
    spec = parse({"side": "buy", "pair": "SOL/USDC", "amount": "150"})
    assert (spec.token_in, spec.token_out, spec.amount_in) == ("USDC", "SOL", 150_000_000)


def test_sell_spends_the_base_token() -> None:
    spec = parse({"side": "sell", "pair": "SOL/USDC", "amount": "2"})
    assert (spec.token_in, spec.token_out, spec.amount_in) == ("SOL", "USDC", 2_000_000_000)


@pytest.mark.parametrize(
    ("slippage", "bps"), [("0.005", 50), ("0.0001", 1), ("0", 0), ("1", 10_000), ("0.01", 100)]
)
def test_slippage_fraction_becomes_bps(slippage: str, bps: int) -> None:
    spec = parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": slippage})
    assert spec.slippage_bps == bps


@pytest.mark.parametrize(
    "slippage",
    [
        "0.00005",
        "1e-1000000",
        # Below the default decimal context's smallest exponent: its product rounded to 0 bps.
        "1e-999999999",
        Decimal("1e-999999999"),  # as a JSON number
        # More digits than the default precision: its product rounded to 50 bps.
        "0.00500000000000000000000000000001",
    ],
)
def test_a_slippage_finer_than_1_bps_is_refused_however_small(slippage: Any) -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": slippage})
    assert (error.status, error.code, error.message) == (
        422,
        "VALIDATION_ERROR",
        "slippage finer than 1 bps",
    )


@pytest.mark.parametrize(
    ("slippage", "bps"),
    [
        ("0", 0),  # zero slippage is 0 bps, not the default
        ("-0", 0),
        ("0e-999999999", 0),
        (Decimal("0E-999999999"), 0),
        ("0.0050000000000000000000000000000000000", 50),  # digits past the precision, all 0
        ("1.0000000000000000000000000000000000000", 10_000),
    ],
)
def test_a_slippage_of_whole_bps_is_exact_in_any_notation(slippage: Any, bps: int) -> None:
    spec = parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": slippage})
    assert spec.slippage_bps == bps


def test_default_slippage_is_used_when_none_given() -> None:
    spec = parse_order({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}, 75, None)
    assert spec.slippage_bps == 75


def test_tenant_and_webhook_are_carried() -> None:
    spec = parse(
        {
            "tokenIn": "SOL",
            "tokenOut": "USDC",
            "amount": "1",
            "webhookUrl": "https://example.com/hook",
        },
        tenant="acme",
    )
    assert spec.tenant == "acme"
    assert spec.webhook_url == "https://example.com/hook"
    assert spec.type == "market"
    assert spec.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",
        "http://localhost:8080/hook",
        "http://hooks.localhost/hook",
        "http://127.0.0.1./hook",
        # Loopback and localhost once IDNA maps the ideographic or full-width dots, as httpx
        # and resolvers do.
        "http://127\u30020\u30020\u30021:18999/a",
        "http://127\uff0e0\uff0e0\uff0e1/b",
        "http://localhost\u3002/c",
    ],
)
def test_a_webhook_to_localhost_or_a_private_address_is_refused(url: str) -> None:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": url}
    error = api_error(body)
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert [d["field"] for d in error.details] == ["webhookUrl"]
    # Where the receivers are local (`make up`, tests), the setting lets them through.
    spec = parse_order(body, DEFAULT_BPS, None, allow_private_webhook_targets=True)
    assert spec.webhook_url == url


@pytest.mark.parametrize(
    "host",
    [
        "a..b",
        "x" * 64 + ".example",
        # localhost in full-width letters: localhost to a resolver, no host to httpx (which
        # the notifier sends with), so refused even where private targets are allowed.
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    ],
)
def test_a_webhook_host_no_resolver_accepts_is_refused(host: str) -> None:
    assert "invalid host name" in refused_even_to_private_targets(f"http://{host}/")


@pytest.mark.parametrize("host", ["\u2603.example", "xn--n3h.example"])
def test_a_webhook_host_the_notifiers_client_cannot_parse_is_refused(host: str) -> None:
    """IDNA 2003 encodes a snowman label (as `xn--n3h`); IDNA 2008, which the notifier's HTTP
    client follows, forbids it: such a URL could never be sent."""
    assert "cannot be sent to" in refused_even_to_private_targets(f"https://{host}/h")


def refused_even_to_private_targets(url: str) -> str:
    """What the webhook URL is refused with (422), whether private targets are allowed or not."""
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": url}
    messages = set()
    for allow_private in (False, True):
        with pytest.raises(ApiError) as info:
            parse_order(body, DEFAULT_BPS, None, allow_private_webhook_targets=allow_private)
        assert (info.value.status, info.value.code) == (422, "VALIDATION_ERROR")
        messages.add(info.value.details[0]["message"])
    assert len(messages) == 1
    return messages.pop()


@pytest.mark.parametrize("host", ["b\u00fccher.example", "example\u3002com"])
def test_a_webhook_to_a_name_idna_keeps_is_accepted(host: str) -> None:
    url = f"https://{host}/h"
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": url}
    assert parse(body).webhook_url == url


def test_a_webhook_host_name_is_not_looked_up_at_submit() -> None:
    """The API judges the host as written; the notifier judges the name's addresses."""
    url = "https://hooks.example.invalid/h"
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": url}
    assert parse(body).webhook_url == url


def test_json_float_amount_is_exact() -> None:
    body = parse_json_object(b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 0.1}')
    assert body["amount"] == Decimal("0.1")
    assert parse(body).amount_in == 100_000_000


def test_json_integer_amount() -> None:
    body = parse_json_object(b'{"tokenIn": "USDC", "tokenOut": "SOL", "amount": 150}')
    assert parse(body).amount_in == 150_000_000


def test_json_slippage_fraction_is_exact() -> None:
    raw = b'{"inputToken": "SOL", "outputToken": "USDC", "amount": "1", "slippage": 0.005}'
    assert parse(parse_json_object(raw)).slippage_bps == 50


def test_json_amount_with_many_digits_is_exact() -> None:
    raw = b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 123456.123456789}'
    assert parse(parse_json_object(raw)).amount_in == 123_456_123_456_789


def test_parse_json_object_returns_the_object() -> None:
    assert parse_json_object(b'{"a": {"b": [1, "2"]}}') == {"a": {"b": [1, "2"]}}


@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b"{'a': 1}", b"\xff\xfe\x00"])
def test_invalid_json_is_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json_object(raw)
    assert (info.value.status, info.value.code) == (400, "INVALID_JSON")


@pytest.mark.parametrize("raw", [b"[]", b'[{"tokenIn": "SOL"}]', b'"SOL"', b"1", b"null"])
def test_non_object_json_is_422(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json_object(raw)
    assert (info.value.status, info.value.code) == (422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tokenIn": "SOL", "tokenOut": "USDC"},
        {"amount": "1"},
        {"tokenIn": "SOL", "amount": "1"},
        {"tokenOut": "USDC", "amount": "1"},
        {"inputToken": "SOL", "amount": "1"},
        {"side": "sell", "amount": "1"},
        {"pair": "SOL/USDC", "amount": "1"},
        {"side": "sell", "pair": "SOLUSDC", "amount": "1"},
        {"side": "sell", "pair": "SOL/USDC/USDT", "amount": "1"},
    ],
)
def test_missing_fields_are_validation_errors(body: dict[str, Any]) -> None:
    error = api_error(body)
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")


def test_validation_error_lists_the_missing_field() -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "USDC"})
    assert any(d["field"] == "amount" for d in error.details)


@pytest.mark.parametrize("raw_amount", [b"null", b"true", b"{}", b"[]", b"NaN", b"-Infinity"])
def test_an_amount_of_the_wrong_type_is_one_error_naming_the_field(raw_amount: bytes) -> None:
    """Not one per member of the field's type (`amount.decimal`, `amount.constrained-str`)."""
    body = parse_json_object(
        b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": ' + raw_amount + b"}"
    )
    error = api_error(body)
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert [d["field"] for d in error.details] == ["amount"]


def test_an_error_about_the_whole_body_names_no_field() -> None:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": "0.01"}
    error = api_error({**body, "slippageBps": 100})
    assert [(d["field"], d["message"]) for d in error.details] == [
        (None, "Value error, give slippageBps or slippage, not both")
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": -1},
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 10_001},
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": "1.5"},
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": "-0.01"},
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": "0.00001"},
        {
            "tokenIn": "SOL",
            "tokenOut": "USDC",
            "amount": "1",
            "slippage": "0.005",
            "slippageBps": 50,
        },
        {"type": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"},
        {"side": "hold", "pair": "SOL/USDC", "amount": "1"},
    ],
)
def test_bad_slippage_side_or_type_is_a_validation_error(body: dict[str, Any]) -> None:
    error = api_error(body)
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "slippage",
    [
        {"slippageBps": True},  # would be 1 bps
        {"slippageBps": False},
        {"slippageBps": "5_0"},
        {"slippage": "0.00_5"},
        {"slippage": "\uff10.005"},
        {"slippage": "\u0660.\u0660\u0660\u0665"},
    ],
)
def test_slippage_is_a_number_in_ascii_digits_not_a_boolean(slippage: dict[str, Any]) -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", **slippage})
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("slippage", "bps"),
    [
        ({"slippageBps": 50}, 50),
        ({"slippageBps": "50"}, 50),
        ({"slippageBps": " 50 "}, 50),
        ({"slippageBps": 50.0}, 50),
        ({"slippageBps": "50.0"}, 50),
        ({"slippageBps": Decimal("50")}, 50),
        ({"slippage": "1e-2"}, 100),
        ({"slippage": 0}, 0),
    ],
)
def test_slippage_spellings_that_stay_accepted(slippage: dict[str, Any], bps: int) -> None:
    spec = parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", **slippage})
    assert spec.slippage_bps == bps


@pytest.mark.parametrize(
    ("value", "whole"),
    [
        (Decimal("5E+1"), 50),
        (Decimal("50.000"), 50),
        (Decimal("-0.0"), 0),
        (Decimal("1e19"), 10**19),
        # Past 20 digits, clamped (sign kept): out of the field's bounds all the same.
        (Decimal("1e20"), 10**20),
        (Decimal("1e999999999"), 10**20),
        (Decimal("-1e999999999"), -(10**20)),
        ("50", "50"),  # not a Decimal: the field's own parsing
        (50, 50),
    ],
)
def test_whole_number_hands_on_an_int_of_bounded_size(value: Any, whole: Any) -> None:
    assert whole_number(value) == whole
    assert type(whole_number(value)) is type(whole)


@pytest.mark.parametrize("value", [Decimal("50.5"), Decimal("1e-999999999")])
def test_whole_number_refuses_a_fraction(value: Decimal) -> None:
    with pytest.raises(ValueError, match="whole number"):
        whole_number(value)


# Exponents pydantic's own int parsing still gets through in milliseconds; at 1e-999999999 it
# computed for hours, in C holding the GIL, where no test timeout could stop it (the cases
# above show whole_number decides those in constant time).
@pytest.mark.parametrize(
    ("number", "message"),
    [
        (b"1e99999", "less than or equal to 10000"),
        (b"-1e99999", "greater than or equal to 0"),
        (b"1e-99999", "whole number"),
        (b"50.5", "whole number"),
    ],
)
def test_a_json_number_slippage_bps_of_any_exponent_is_a_validation_error(
    number: bytes, message: str
) -> None:
    raw = b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": %s}' % number
    error = api_error(parse_json_object(raw))
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert [d["field"] for d in error.details] == ["slippageBps"]
    assert message in error.details[0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"tokenIn": "SOL", "inputToken": "SOL", "tokenOut": "USDC", "amount": "1"},
        {"tokenIn": "SOL", "outputToken": "USDC", "amount": "1"},
        {"inputToken": "SOL", "tokenOut": "USDC", "amount": "1"},
        {"tokenIn": "SOL", "tokenOut": "USDC", "side": "sell", "amount": "1"},
        {"inputToken": "SOL", "outputToken": "USDC", "pair": "SOL/USDC", "amount": "1"},
        {
            "tokenIn": "SOL",
            "tokenOut": "USDC",
            "inputToken": "SOL",
            "outputToken": "USDC",
            "side": "sell",
            "pair": "SOL/USDC",
            "amount": "1",
        },
    ],
)
def test_mixing_spellings_is_a_validation_error(body: dict[str, Any]) -> None:
    error = api_error(body)
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body",
    [
        {"tokenIn": "DOGE", "tokenOut": "USDC", "amount": "1"},
        {"tokenIn": "SOL", "tokenOut": "DOGE", "amount": "1"},
        {"inputToken": "SOL", "outputToken": "XYZ", "amount": "1"},
        {"side": "sell", "pair": "SOL/DOGE", "amount": "1"},
        {"side": "sell", "pair": "SOL/", "amount": "1"},
    ],
)
def test_unknown_token(body: dict[str, Any]) -> None:
    error = api_error(body)
    assert (error.status, error.code) == (422, "UNKNOWN_TOKEN")


@pytest.mark.parametrize(
    ("token_in", "token_out"),
    [("\u017fol", "USDC"), ("SOL", "u\u017fdc"), ("w\u0131f", "SOL")],
)
def test_a_non_ascii_look_alike_of_a_symbol_names_no_token(token_in: str, token_out: str) -> None:
    """`str.upper` makes SOL of a long s and WIF of a dotless i: those are not the tokens."""
    error = api_error({"tokenIn": token_in, "tokenOut": token_out, "amount": "1"})
    assert (error.status, error.code) == (422, "UNKNOWN_TOKEN")


def test_unknown_token_details_name_both_tokens() -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "DOGE", "amount": "1"})
    assert error.details == {"tokens": ["SOL", "DOGE"]}


@pytest.mark.parametrize(
    ("token_in", "token_out"),
    [
        ("SOL", "SOL"),
        ("SOL", "wSOL"),
        ("wSOL", WSOL_MINT),
        (WSOL_MINT, "sol"),
        ("USDC", USDC_MINT),
    ],
)
def test_same_token_in_and_out(token_in: str, token_out: str) -> None:
    error = api_error({"tokenIn": token_in, "tokenOut": token_out, "amount": "1"})
    assert (error.status, error.code) == (422, "SAME_TOKEN")


def test_same_token_through_pair() -> None:
    error = api_error({"side": "buy", "pair": "SOL/wSOL", "amount": "1"})
    assert (error.status, error.code) == (422, "SAME_TOKEN")


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "0.0",
        "-1",
        "-0.5",
        "abc",
        "",
        "1,5",
        "NaN",
        "Infinity",
        "1e99999999999999999999",  # decimal notation, but past what Decimal can hold
        "0.0000000001",
        Decimal("0"),
        Decimal("-2"),
        0,
        -3,
    ],
)
def test_bad_amount(amount: Any) -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "USDC", "amount": amount})
    assert (error.status, error.code) == (422, "INVALID_AMOUNT")


@pytest.mark.parametrize(
    "amount",
    [
        "1_0",  # Python's Decimal would read 10
        "1_000.5",
        "\uff11",  # FULLWIDTH DIGIT ONE
        "\u0661",  # ARABIC-INDIC DIGIT ONE
        "\u0661.\u0665",
        "1.\uff15",
        "1e_3",
    ],
)
def test_an_amount_is_decimal_notation_in_ascii_digits(amount: str) -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "USDC", "amount": amount})
    assert (error.status, error.code) == (422, "INVALID_AMOUNT")


@pytest.mark.parametrize(
    ("amount", "units"),
    [("1e3", 1_000_000_000_000), (".5", 500_000_000), ("5.", 5_000_000_000), ("+1", 10**9)],
)
def test_decimal_notation_stays_accepted(amount: str, units: int) -> None:
    assert parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": amount}).amount_in == units


def test_too_precise_amount_for_a_six_decimal_token() -> None:
    error = api_error({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1.0000001"})
    assert (error.status, error.code) == (422, "INVALID_AMOUNT")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 0}',
        b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": -0.1}',
        b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1e-10}',
    ],
)
def test_bad_json_number_amount(raw: bytes) -> None:
    error = api_error(parse_json_object(raw))
    assert (error.status, error.code) == (422, "INVALID_AMOUNT")


# Longer than Python's int reads from text (4,300 digits by default), yet valid JSON.
HUGE_INTEGER = b"9" * 5000


def order_with(field: bytes, number: bytes) -> bytes:
    """A valid order's raw JSON with `field` set to the JSON number `number`."""
    return b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "%s": %s}' % (field, number)


def test_a_json_integer_amount_of_any_length_is_an_invalid_amount() -> None:
    limit = sys.get_int_max_str_digits()
    raw = b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": %s}' % HUGE_INTEGER
    error = api_error(parse_json_object(raw))
    assert (error.status, error.code) == (422, "INVALID_AMOUNT")
    assert sys.get_int_max_str_digits() == limit  # the process's guard is left as it was


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (b"slippageBps", "less than or equal to 10000"),
        (b"slippage", "less than or equal to 1"),
        (b"tokenOut", "valid string"),
    ],
)
def test_a_json_integer_of_any_length_gets_its_fields_own_error(field: bytes, message: str) -> None:
    error = api_error(parse_json_object(order_with(field, HUGE_INTEGER)))
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert [d["field"] for d in error.details] == [field.decode()]
    assert message in error.details[0]["message"]


def test_a_json_integer_of_any_length_in_an_unknown_field_is_ignored() -> None:
    assert parse(parse_json_object(order_with(b"note", HUGE_INTEGER))).amount_in == 10**9


@pytest.mark.parametrize("amount", [None, [], {"value": "1"}, True])
def test_amount_of_the_wrong_type_is_rejected(amount: Any) -> None:
    error = api_error({"tokenIn": "SOL", "tokenOut": "USDC", "amount": amount})
    assert error.status == 422
    assert error.code in ("VALIDATION_ERROR", "INVALID_AMOUNT")


# Bodies near valid ones: the parser's fields, with plausible or arbitrary values.
_TOKENS = st.sampled_from(["SOL", "USDC", "BONK", "sol", WSOL_MINT, USDC_MINT, "XYZ", ""])
_NUMBERS = st.sampled_from(["1.5", "0.01", "1e3", "-1", "0", "1e400", "NaN", "0.0000000001"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | _TOKENS
    | _NUMBERS
)
_anything = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


def _plausible(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten a plausible value, else anything at all."""
    return st.integers(0, 9).flatmap(lambda n: values if n else _anything)


_OPTIONAL = {
    "slippageBps": _plausible(st.integers(min_value=-10, max_value=20_000)),
    "slippage": _plausible(_NUMBERS),
    "webhookUrl": _plausible(st.sampled_from(["https://desk.example/h", "ftp://x"])),
}
_bodies = st.fixed_dictionaries(
    {
        "tokenIn": _plausible(_TOKENS),
        "tokenOut": _plausible(_TOKENS),
        "amount": _plausible(_NUMBERS),
    },
    optional=_OPTIONAL,
) | st.fixed_dictionaries(
    {
        "pair": _plausible(st.sampled_from(["SOL/USDC", "BONK-SOL", "SOL"])),
        "side": _plausible(st.sampled_from(["buy", "sell", "hold"])),
        "amount": _plausible(_NUMBERS),
    },
    optional=_OPTIONAL,
)


@settings(max_examples=500, deadline=None)
@given(_bodies, st.dictionaries(st.text(max_size=8), _anything, max_size=1))
def test_any_json_object_is_an_order_or_a_4xx(body: dict[str, Any], extra: dict[str, Any]) -> None:
    try:
        spec = parse(parse_json_object(json.dumps({**extra, **body}).encode()))
    except ApiError as error:
        assert 400 <= error.status < 500, error
        return
    assert spec.amount_in > 0
    assert spec.token_in != spec.token_out
    assert 0 <= spec.slippage_bps <= 10_000


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_json_or_a_4xx(raw: bytes) -> None:
    try:
        parse_json_object(raw)
    except ApiError as error:
        assert error.status in (400, 422), error


@pytest.mark.parametrize(
    ("field", "number", "code"),
    [
        ("amount", b"1e99999999999999999999", "INVALID_AMOUNT"),
        ("amount", b"-1e-99999999999999999999", "INVALID_AMOUNT"),
        ("slippageBps", b"1e99999999999999999999", "VALIDATION_ERROR"),
        ("slippage", b"1e-99999999999999999999", "VALIDATION_ERROR"),
        ("ignored", b"1e99999999999999999999", None),  # a field the API does not read
    ],
)
def test_a_json_number_past_what_a_decimal_holds_is_judged_by_its_field(
    field: str, number: bytes, code: str | None
) -> None:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}
    raw = json.dumps(body).encode()[:-1] + b', "%s": %s}' % (field.encode(), number)
    parsed = parse_json_object(raw)
    if code is None:
        assert parse_order(parsed, 50, None).amount_in == 1_000_000_000
        return
    error = api_error(parsed)
    assert (error.status, error.code) == (422, code)
