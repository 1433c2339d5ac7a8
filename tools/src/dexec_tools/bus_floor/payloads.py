"""One order's events as the engine publishes them: real envelopes, real sizes.

The floor sends these bytes unchanged for every order (only the subject and the message id
name the order), so NATS stores and delivers what it does in a real run without any process
serialising or parsing JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from dexec.market.market import Market
from dexec.market.routing import find_route
from dexec.market.tokens import resolve_token
from dexec.orders.events import CamelModel, Execution, OrderEvent, OrderSpec, Submission
from dexec.orders.states import EVENT_STATUS, EventType, OrderStatus
from dexec.settings import MarketSettings

# The standard benchmark's order: 0.1 SOL for USDC.
AMOUNT_IN = 100_000_000
SLIPPAGE_BPS = 50
PRIORITY_FEE_LAMPORTS = 10_000
SAMPLE_ORDER_ID = "0" * 32


@dataclass(frozen=True)
class SampleEvent:
    body: bytes  # the event's JSON
    # Its `Nats-Msg-Id` after the order id (`OrderEvent.msg_id`, e.g. ":submitted:1").
    id_suffix: str

    def msg_id(self, order_id: str) -> str:
        return order_id + self.id_suffix


def sample_events() -> dict[EventType, SampleEvent]:
    """Each event a confirmed order goes through."""
    market = Market.from_settings(MarketSettings())
    sol, usdc = resolve_token("SOL"), resolve_token("USDC")
    route = find_route(
        market.view(0),
        sol,
        usdc,
        AMOUNT_IN,
        SLIPPAGE_BPS,
        priority_fee_lamports=PRIORITY_FEE_LAMPORTS,
    )
    payloads: dict[EventType, CamelModel | None] = {
        EventType.PENDING: OrderSpec(
            token_in=sol.symbol,  # as the API writes it (`order_request.parse_order`)
            token_out=usdc.symbol,
            amount_in=AMOUNT_IN,
            slippage_bps=SLIPPAGE_BPS,
            idempotency_key="run-0000000",
            created_at=datetime.now(UTC),
        ),
        EventType.ROUTING: None,
        EventType.ROUTED: route,
        EventType.BUILDING: None,
        EventType.SUBMITTED: Submission(
            signature="5" * 88, blockhash="B" * 44, last_valid_block_height=1_000
        ),
        EventType.CONFIRMED: Execution(
            tx_hash="5" * 88,
            slot=850,
            in_amount=AMOUNT_IN,
            out_amount=route.out_amount,
            # USDC has 6 decimals and SOL 9: the price in USDC per SOL.
            executed_price=Decimal(route.out_amount * 1000) / AMOUNT_IN,
            fee_lamports=route.network_fee_lamports,
        ),
    }
    return {event: _envelope(event, payload) for event, payload in payloads.items()}


def _envelope(event: EventType, payload: CamelModel | None) -> SampleEvent:
    status = EVENT_STATUS[event] or OrderStatus.ROUTING  # only `routed` keeps its status
    sample = OrderEvent.of(SAMPLE_ORDER_ID, event, status, payload)
    return SampleEvent(sample.to_json(), sample.msg_id.removeprefix(SAMPLE_ORDER_ID))
