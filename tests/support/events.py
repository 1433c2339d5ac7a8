"""Event data as the services publish it, for tests that put events on the stream: the
recorder refuses an event whose data is not its kind's payload (a `pending`'s `OrderSpec`, a
`routed`'s `Route` ...)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import orjson

from dexec.orders.events import OrderSpec
from dexec.orders.states import EventType
from dexec_tools.bus_floor.payloads import sample_events

SPEC = OrderSpec(
    token_in="SOL",
    token_out="USDC",
    amount_in=5_000_000_000,
    slippage_bps=50,
    created_at=datetime(2025, 1, 1, tzinfo=UTC),
)


def spec_data(**extra: object) -> dict[str, Any]:
    """A `pending` event's data: `SPEC` as JSON, with `extra` (camelCase keys) added or replaced."""
    return {**SPEC.model_dump(mode="json", by_alias=True), **extra}


@functools.cache
def _samples() -> dict[EventType, dict[str, Any]]:
    return {event: orjson.loads(sample.body)["data"] for event, sample in sample_events().items()}


def payload_data(event: EventType) -> dict[str, Any]:
    """The data of a real event of this kind (`pending` ... `confirmed`), as a fresh dict."""
    return (
        spec_data() if event == EventType.PENDING else orjson.loads(orjson.dumps(_samples()[event]))
    )
