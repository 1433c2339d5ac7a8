"""The webhooks consumer: which events it parses, and which it acks unparsed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from dexec.bus.subjects import event_subject, parse_event_subject
from dexec.orders.events import OrderEvent, OrderSpec
from dexec.orders.states import EventType, OrderStatus
from dexec_notifier.settings import NotifierSettings
from dexec_notifier.webhooks import CONSUMED, WebhookDispatcher

ORDER_ID = "0c4f9a52-1b7e-4c8a-9f0d-3e2a6b5c7d19"


def pending(order_id: str, webhook_url: str | None) -> OrderEvent:
    spec = OrderSpec(
        token_in="SOL",
        token_out="USDC",
        amount_in=1_500_000_000,
        slippage_bps=50,
        webhook_url=webhook_url,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    return OrderEvent.of(order_id, EventType.PENDING, OrderStatus.PENDING, spec)


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    acked: int = 0
    termed: int = 0

    async def ack(self) -> None:
        self.acked += 1

    async def term(self) -> None:
        self.termed += 1


@dataclass
class FakeJetStream:
    """Answers direct gets of `pending` events; counts them."""

    pendings: dict[str, OrderEvent] = field(default_factory=dict)
    gets: int = 0

    async def get_last_msg(self, stream: str, subject: str, direct: bool = False) -> Any:
        self.gets += 1
        return SimpleNamespace(data=self.pendings[subject.rsplit(".", 1)[-1]].to_json())


def dispatcher(js: FakeJetStream) -> tuple[WebhookDispatcher, list[OrderEvent]]:
    hooks = WebhookDispatcher(js, NotifierSettings())  # type: ignore[arg-type]
    handled: list[OrderEvent] = []

    async def handle(msg: Any, event: OrderEvent) -> None:
        handled.append(event)

    hooks._handle = handle  # type: ignore[method-assign]
    return hooks, handled


def consumed(event: EventType) -> float:
    return CONSUMED[event]._value.get()


def test_subject_names_event_and_order() -> None:
    assert parse_event_subject(event_subject(EventType.ROUTED, ORDER_ID)) == (
        EventType.ROUTED,
        ORDER_ID,
    )
    assert parse_event_subject(f"orders.nonsense.{ORDER_ID}") is None
    assert parse_event_subject("router.quote") is None
    assert parse_event_subject("orders.routed") is None


async def test_events_of_an_order_without_webhook_are_acked_unparsed() -> None:
    js = FakeJetStream()
    hooks, handled = dispatcher(js)
    first = FakeMsg(event_subject(EventType.PENDING, ORDER_ID), pending(ORDER_ID, None).to_json())
    await hooks._process(first)  # type: ignore[arg-type]
    assert [e.event for e in handled] == [EventType.PENDING]  # acked by _handle (no URL)
    before = consumed(EventType.ROUTED)
    # Not valid JSON at all: it is never parsed, so it is simply acked.
    later = FakeMsg(event_subject(EventType.ROUTED, ORDER_ID), b"not parsed")
    await hooks._process(later)  # type: ignore[arg-type]
    assert (later.acked, later.termed) == (1, 0)
    assert len(handled) == 1
    assert js.gets == 0  # the URL came from the pending message itself
    assert consumed(EventType.ROUTED) == before + 1


async def test_an_unseen_order_is_looked_up_once() -> None:
    js = FakeJetStream({ORDER_ID: pending(ORDER_ID, None)})
    hooks, handled = dispatcher(js)
    for event in (EventType.ROUTING, EventType.BUILDING):
        msg = FakeMsg(event_subject(event, ORDER_ID), b"{}")
        await hooks._process(msg)  # type: ignore[arg-type]
        assert msg.acked == 1
    assert js.gets == 1
    assert handled == []


@pytest.mark.parametrize("seen_pending", [True, False])
async def test_events_of_an_order_with_webhook_are_parsed_and_handled(seen_pending: bool) -> None:
    first = pending(ORDER_ID, "http://127.0.0.1:9/hook")
    js = FakeJetStream({ORDER_ID: first})
    hooks, handled = dispatcher(js)
    if seen_pending:
        msg = FakeMsg(event_subject(EventType.PENDING, ORDER_ID), first.to_json())
        await hooks._process(msg)  # type: ignore[arg-type]
    routing = OrderEvent.of(ORDER_ID, EventType.ROUTING, OrderStatus.ROUTING)
    await hooks._process(FakeMsg(event_subject(EventType.ROUTING, ORDER_ID), routing.to_json()))  # type: ignore[arg-type]
    malformed = FakeMsg(event_subject(EventType.ROUTED, ORDER_ID), b"not json")
    await hooks._process(malformed)  # type: ignore[arg-type]
    assert malformed.termed == 1
    expected = [EventType.PENDING, EventType.ROUTING] if seen_pending else [EventType.ROUTING]
    assert [e.event for e in handled] == expected
    assert js.gets == (0 if seen_pending else 1)
