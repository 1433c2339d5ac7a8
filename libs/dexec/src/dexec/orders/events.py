"""Event envelope and payloads carried on the `ORDERS` stream.

Amounts are integers in base units and travel as decimal strings (as Jupiter's API does), so
no JSON reader on the way can turn them into floats.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from dexec.orders.states import EventType, OrderStatus

# Accepts an int or a string of digits; always written as a string.
BaseUnits = Annotated[int, Field(ge=0), PlainSerializer(str, return_type=str, when_used="json")]
# The same for the rare amount that can be negative (an output less its fees).
SignedUnits = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class OrderSpec(CamelModel):
    """Everything needed to execute the order; carried whole by the `pending` event."""

    type: Literal["market"] = "market"
    token_in: str
    token_out: str
    amount_in: BaseUnits
    slippage_bps: int = Field(ge=0, le=10_000)
    tenant: str | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    created_at: datetime


class VenueQuote(CamelModel):
    """One pool's quote for a whole hop: what that pool alone would give."""

    venue: str
    pool: str
    in_amount: BaseUnits
    out_amount: BaseUnits
    fee_amount: BaseUnits
    price_impact_pct: Decimal
    context_slot: int
    # The pool type (Jupiter's AMM label) and the hop's mints; absent in events before them.
    label: str | None = None
    input_mint: str | None = None
    output_mint: str | None = None


class RouteLeg(CamelModel):
    """One swap in one pool (Jupiter's `routePlan[].swapInfo` with its `percent`).

    `percent` is the share of its hop's input; a multi-hop route lists the first hop's legs,
    then the second's, each naming its input and output mint.
    """

    venue: str
    pool: str
    in_amount: BaseUnits
    out_amount: BaseUnits
    fee_amount: BaseUnits
    percent: int
    label: str | None = None
    input_mint: str | None = None
    output_mint: str | None = None
    # The pool fee is taken from the leg's input.
    fee_mint: str | None = None


class RouteCandidate(CamelModel):
    """A route the router considered, with what it would leave the trader after fees."""

    description: str
    route_plan: list[RouteLeg]
    out_amount: BaseUnits
    price_impact_pct: Decimal
    compute_unit_limit: int
    network_fee_lamports: BaseUnits
    # The network fee valued in the output token at the market price, rounded up.
    network_fee_in_output: BaseUnits
    # out_amount - network_fee_in_output: what route choice maximises (negative for dust).
    net_out_amount: SignedUnits
    chosen: bool = False


class SwapPlan(CamelModel):
    """What signing and executing a route's swap needs: the part of a `routed` payload the
    executor and the chain read. Validated alone from a `routed` event it skips the quotes and
    candidates, most of the event's bytes (pydantic ignores the fields it does not declare)."""

    input_mint: str
    output_mint: str
    in_amount: BaseUnits
    out_amount: BaseUnits
    other_amount_threshold: BaseUnits
    price_impact_pct: Decimal
    route_plan: list[RouteLeg]
    context_slot: int
    network_fee_lamports: BaseUnits
    swap_mode: Literal["ExactIn"] = "ExactIn"
    slippage_bps: int | None = None
    # The transaction's compute-unit limit, which prices its priority fee (None: the default).
    compute_unit_limit: int | None = None


class Route(SwapPlan):
    """The `routed` payload: Jupiter's quote fields plus every candidate and the reason."""

    quotes: list[VenueQuote]
    failed_venues: dict[str, str] = Field(default_factory=dict)
    reason: str
    candidates: list[RouteCandidate] = Field(default_factory=list)


class Submission(CamelModel):
    signature: str
    blockhash: str
    last_valid_block_height: int


class Execution(CamelModel):
    tx_hash: str
    slot: int
    in_amount: BaseUnits
    out_amount: BaseUnits
    executed_price: Decimal
    fee_lamports: BaseUnits


class Failure(CamelModel):
    code: str
    reason: str
    attempts: int
    details: dict[str, Any] = Field(default_factory=dict)


class Retry(CamelModel):
    stage: str
    code: str
    reason: str
    delay_seconds: float


class Empty(CamelModel):
    pass


PAYLOAD_TYPES: dict[EventType, type[CamelModel]] = {
    EventType.PENDING: OrderSpec,
    EventType.ROUTING: Empty,
    EventType.ROUTED: Route,
    EventType.BUILDING: Empty,
    EventType.SUBMITTED: Submission,
    EventType.CONFIRMED: Execution,
    EventType.FAILED: Failure,
    EventType.RETRYING: Retry,
}

# Events that may happen once per attempt; the attempt joins their message id so each attempt
# is its own transition while a redelivered handler publishing the same attempt is dropped.
PER_ATTEMPT_EVENTS = frozenset({EventType.SUBMITTED, EventType.RETRYING})


class OrderEvent(CamelModel):
    order_id: str
    event: EventType
    status: OrderStatus
    # With its zone: the fold orders events by `at`, and a naive time cannot be compared.
    at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    attempt: int = 1
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _retry_names_its_stage(self) -> OrderEvent:
        # A retry's message id, its key in the stream and in Postgres, names its stage.
        if self.event == EventType.RETRYING and not isinstance(self.data.get("stage"), str):
            raise ValueError("a retrying event names its stage (data.stage)")
        return self

    @classmethod
    def of(
        cls,
        order_id: str,
        event: EventType,
        status: OrderStatus,
        payload: CamelModel | None = None,
        attempt: int = 1,
    ) -> OrderEvent:
        data = payload.model_dump(mode="json", by_alias=True) if payload is not None else {}
        return cls(order_id=order_id, event=event, status=status, attempt=attempt, data=data)

    @property
    def msg_id(self) -> str:
        """`<orderId>:<event>[:<attempt>]`; a retry's attempt is qualified by its stage."""
        if self.event == EventType.RETRYING:
            return f"{self.order_id}:{self.event}:{self.data['stage']}-{self.attempt}"
        if self.event in PER_ATTEMPT_EVENTS:
            return f"{self.order_id}:{self.event}:{self.attempt}"
        return f"{self.order_id}:{self.event}"

    def payload(self) -> Any:
        return PAYLOAD_TYPES[self.event].model_validate(self.data)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> OrderEvent:
        # pydantic's reader, not orjson's: orjson.loads + model_validate took 40% less time
        # (32 against 56 µs for an order's six events), but orjson reads an integer beyond
        # 64 bits as a float, silently.
        return cls.model_validate_json(raw)
