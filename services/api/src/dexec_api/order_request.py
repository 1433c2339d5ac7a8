"""Parsing a submitted order: every accepted spelling becomes one normalised `OrderSpec`.

Accepted: `{type, tokenIn, tokenOut, amount, slippageBps}`; the seed systems' spellings
`inputToken/outputToken` and `slippage` as a fraction; and `side` + `pair` (`"SOL/USDC"`:
`sell` spends the base token, `buy` spends the quote token). `amount` is always the amount of
the token spent, in token units (`"1.5"` SOL), as a string or a JSON number.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dexec.market.tokens import (
    BadAmount,
    UnknownToken,
    is_decimal_notation,
    resolve_token,
    to_base_units,
)
from dexec.orders.events import OrderSpec
from dexec.webhook_targets import INVALID_NAME, is_valid_name, refused_host, unsendable
from dexec_api.errors import ApiError, validation_details

# Validation context key: true when webhooks may go to private targets (the setting).
PRIVATE_WEBHOOKS = "webhook_allow_private_targets"


def plain_number(value: Any) -> Any:
    """Before a number field's own parsing: a boolean is not a number (`true` would be 1), and
    a string must be decimal notation in ASCII digits (the parsers would also read `5_0`, and
    `Decimal` digits of other scripts, U+0661)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str) and not is_decimal_notation(value.strip()):
        raise ValueError("must be a decimal number in ASCII digits")
    return value


# Past this many digits no int field here is in range (slippageBps is at most 10,000).
_WHOLE_DIGITS = 20


def whole_number(value: Any) -> Any:
    """Before an int field's own parsing: a Decimal (a JSON number written with a fraction or
    an exponent) is decided here, in constant time, and handed on as an int.

    Pydantic's int from a Decimal takes time growing with its exponent (`1e-9999999` half a
    minute, `1e999999999` a billion-digit int), so one small body could hold the API's event
    loop for hours. A whole number past `_WHOLE_DIGITS` digits is clamped to 10**20 (its sign
    kept), out of every such field's bounds, which then refuse it with their own message.
    """
    if not isinstance(value, Decimal) or not value.is_finite():
        return value
    if value != value.to_integral_value():
        raise ValueError("must be a whole number")
    if value.adjusted() >= _WHOLE_DIGITS:
        return 10**_WHOLE_DIGITS if value > 0 else -(10**_WHOLE_DIGITS)
    return int(value)


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    type: Literal["market"] = "market"
    token_in: str | None = Field(None, alias="tokenIn", min_length=1, max_length=64)
    token_out: str | None = Field(None, alias="tokenOut", min_length=1, max_length=64)
    input_token: str | None = Field(None, alias="inputToken", min_length=1, max_length=64)
    output_token: str | None = Field(None, alias="outputToken", min_length=1, max_length=64)
    side: Literal["buy", "sell"] | None = None
    pair: str | None = Field(None, max_length=130)
    amount: Decimal | str
    slippage_bps: int | None = Field(None, alias="slippageBps", ge=0, le=10_000)
    slippage: Decimal | None = Field(None, ge=0, le=1)
    webhook_url: str | None = Field(None, alias="webhookUrl", max_length=2048)

    _plain_numbers = field_validator("slippage_bps", "slippage", mode="before")(plain_number)

    @field_validator("amount", mode="before")
    @classmethod
    def _number_or_text(cls, value: object) -> object:
        # One error naming the field: the union would answer one per member of it, as
        # `amount.decimal` and `amount.constrained-str`. (NaN and Infinity parse as floats.)
        if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
            raise ValueError("amount must be a decimal number, or a string holding one")
        if isinstance(value, Decimal) and not value.is_finite():
            raise ValueError("amount must be finite")
        return value

    _whole_numbers = field_validator("slippage_bps", mode="before")(whole_number)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is not None:
            # Control characters could not even be stored (Postgres JSONB refuses NUL).
            if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
                raise ValueError("webhookUrl must not contain spaces or control characters")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("webhookUrl must be an http(s) URL")
            try:
                parts.port  # noqa: B018 - parsing the port is the check
            except ValueError as exc:
                raise ValueError("webhookUrl has an invalid port") from exc
            if not is_valid_name(parts.hostname):
                raise ValueError(INVALID_NAME)
            if (reason := unsendable(url)) is not None:
                raise ValueError(f"webhookUrl cannot be sent to: {reason}")
            # Refused unless the context allows private targets. By the host as written: a DNS
            # lookup would slow every submit; the notifier judges names when it connects.
            if not (info.context or {}).get(PRIVATE_WEBHOOKS):
                refusal = refused_host(parts.hostname)
                if refusal is not None:
                    raise ValueError(refusal)
        return url

    @model_validator(mode="after")
    def _one_way_to_name_tokens(self) -> OrderRequest:
        named = [
            self.token_in is not None or self.token_out is not None,
            self.input_token is not None or self.output_token is not None,
            self.side is not None or self.pair is not None,
        ]
        if sum(named) != 1:
            raise ValueError(
                "name the tokens one way: tokenIn/tokenOut, inputToken/outputToken, or side+pair"
            )
        if self.slippage_bps is not None and self.slippage is not None:
            raise ValueError("give slippageBps or slippage, not both")
        return self

    def token_keys(self) -> tuple[str, str]:
        if self.side is not None or self.pair is not None:
            if self.side is None or self.pair is None or self.pair.count("/") != 1:
                field = "side" if self.side is None else "pair"
                raise invalid(field, "side and pair ('BASE/QUOTE') go together")
            base, quote = (part.strip() for part in self.pair.split("/"))
            return (base, quote) if self.side == "sell" else (quote, base)
        token_in = self.token_in or self.input_token
        token_out = self.token_out or self.output_token
        if not token_in or not token_out:
            # Named as the body named its tokens (tokenIn/tokenOut unless it used the others).
            other_names = self.input_token or self.output_token
            spelled = ("inputToken", "outputToken") if other_names else ("tokenIn", "tokenOut")
            field = spelled[0] if not token_in else spelled[1]
            raise invalid(field, "both the input and output token are required")
        return token_in, token_out

    def slippage_in_bps(self, default: int) -> int:
        if self.slippage is not None:
            return fraction_in_bps(self.slippage)
        return default if self.slippage_bps is None else self.slippage_bps


def invalid(field: str | None, message: str) -> ApiError:
    """A VALIDATION_ERROR with its one detail, as pydantic's are given (`field` None: about the
    body as a whole)."""
    return ApiError(422, "VALIDATION_ERROR", message, [{"field": field, "message": message}])


def fraction_in_bps(slippage: Decimal) -> int:
    """A slippage fraction (0 to 1) in whole bps: `0.005` is 50, `0` is 0; finer than 1 bps,
    however little finer, is a validation error.

    The product must be exact: the default context rounds, so a positive fraction below its
    smallest exponent (`1e-999999999`) would come out as 0 bps, and one with more digits than
    its precision (`0.00500000000000000000000000000001`) as 50, both whole numbers of bps.
    """
    exact = Context(traps=[Inexact])  # a result it would have to round raises instead
    try:
        bps = exact.multiply(slippage, 10_000)
    except Inexact:
        bps = None
    if bps is None or bps != bps.to_integral_value():
        raise invalid("slippage", "slippage finer than 1 bps")
    return int(bps)


def _json_number(text: str) -> Decimal | str:
    """A JSON number as a Decimal. One whose exponent a Decimal cannot hold
    (`1e99999999999999999999`) stays its text, for its field to judge as if it had come as a
    string (InvalidOperation is no ValueError: raised here, it was a 500)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        # Numbers become Decimal, never float: "0.1" SOL stays exactly 0.1. Integers too: int
        # refuses text of over 4,300 digits (sys.get_int_max_str_digits, a guard for the whole
        # process, kept), which would make valid JSON an INVALID_JSON; as a Decimal, each field
        # judges it (an amount over u64 is INVALID_AMOUNT).
        body = json.loads(raw, parse_float=_json_number, parse_int=_json_number)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser's stack (3 KB of "[" is enough).
        raise ApiError(400, "INVALID_JSON", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid(None, "the body must be a JSON object")
    return body


def parse_order(
    body: dict[str, Any],
    default_slippage_bps: int,
    tenant: str | None,
    *,
    allow_private_webhook_targets: bool = False,
) -> OrderSpec:
    try:
        request = OrderRequest.model_validate(
            body, context={PRIVATE_WEBHOOKS: allow_private_webhook_targets}
        )
    except ValidationError as exc:
        details = validation_details(exc)
        raise ApiError(422, "VALIDATION_ERROR", "invalid order", details) from exc
    in_key, out_key = request.token_keys()
    try:
        token_in, token_out = resolve_token(in_key), resolve_token(out_key)
    except UnknownToken as exc:
        raise ApiError(422, "UNKNOWN_TOKEN", str(exc), {"tokens": [in_key, out_key]}) from exc
    if token_in == token_out:
        raise ApiError(422, "SAME_TOKEN", "tokenIn and tokenOut must differ")
    try:
        amount_in = to_base_units(token_in, request.amount)
    except BadAmount as exc:
        raise ApiError(422, "INVALID_AMOUNT", str(exc)) from exc
    return OrderSpec(
        token_in=token_in.symbol,
        token_out=token_out.symbol,
        amount_in=amount_in,
        slippage_bps=request.slippage_in_bps(default_slippage_bps),
        tenant=tenant,
        webhook_url=request.webhook_url,
        created_at=datetime.now(UTC),
    )
