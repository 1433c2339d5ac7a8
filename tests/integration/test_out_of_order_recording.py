"""Reads while recorder replicas have committed an order's events out of order.

Replicas take disjoint batches of the recorder durable and commit them in any order, so
Postgres can hold an order's later events before its earlier ones (its `pending` in a batch
still in flight, say). Here the replicas are stood in for by `record_batch` with the events
one replica would have committed, and the recorder durable exists with nothing acked, as
while the other replica's batch is in flight.
"""

from __future__ import annotations

from nats.js import JetStreamContext

from dexec.auth import hash_api_key
from dexec.bus.connection import ensure_consumer
from dexec.bus.history import StoredEvent, read_order_events
from dexec.bus.publisher import emit
from dexec.bus.subjects import RECORDER_CONSUMER
from dexec.orders.states import EventType
from dexec.settings import CommonSettings
from dexec_notifier.recorder import Recorded, record_batch
from tests.support.stack import Stack
from tests.support.waiting import eventually

ALICE = "alice-key-0123456789"
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}
WITHOUT_RECORDER = frozenset({"notifier"})
ONLY_THE_API = frozenset({"router", "executor", "notifier"})


async def an_idle_recorder_durable(js: JetStreamContext, nats_url: str) -> None:
    await ensure_consumer(js, RECORDER_CONSUMER, CommonSettings(nats_url=nats_url), 100)


async def commit(stack: Stack, events: list[StoredEvent]) -> None:
    """What one recorder replica commits."""
    await record_batch(stack.db, [Recorded(s.seq, s.event) for s in events])


async def test_an_order_recorded_before_its_pending_is_its_owners(
    start, js: JetStreamContext, nats_url: str
) -> None:
    stack: Stack = await start(
        without=ONLY_THE_API, api_keys_enabled=True, api_keys={"alice": hash_api_key(ALICE)}
    )
    await an_idle_recorder_durable(js, nats_url)
    headers = {"X-API-Key": ALICE}
    order_id = (await stack.submit(ORDER, **headers)).json()["orderId"]
    await emit(js, order_id, EventType.ROUTING)
    _, routing = await read_order_events(js, order_id)
    await commit(stack, [routing])  # the row has no spec yet, so no tenant

    response = await stack.http.get(f"{stack.api_url}/api/orders/{order_id}", headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "routing"
    assert [e["event"] for e in response.json()["events"]] == ["pending", "routing"]


async def test_a_finished_order_whose_earlier_events_are_not_recorded_is_read_whole(
    start, js: JetStreamContext, nats_url: str
) -> None:
    stack: Stack = await start(without=WITHOUT_RECORDER)
    await an_idle_recorder_durable(js, nats_url)
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    async def confirmed_in_stream() -> list[StoredEvent] | None:
        events = await read_order_events(js, order_id)
        return events if events and events[-1].event.event == EventType.CONFIRMED else None

    stream = await eventually(confirmed_in_stream, what="the order confirmed in the stream")
    early = (EventType.PENDING, EventType.ROUTING)
    late = (EventType.SUBMITTED, EventType.CONFIRMED)
    await commit(stack, [s for s in stream if s.event.event in early])
    await commit(stack, [s for s in stream if s.event.event in late])
    # `routed` and `building` are in a batch not committed yet.

    order = (await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")).json()

    assert order["status"] == "confirmed"
    assert order["route"] is not None
    assert [e["event"] for e in order["events"]] == [str(s.event.event) for s in stream]


async def test_a_walk_through_the_listing_meets_each_order_once(
    start, js: JetStreamContext
) -> None:
    stack: Stack = await start(without=ONLY_THE_API)
    first, second, third = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(3)]
    await emit(js, first, EventType.ROUTING)  # after the third order's `pending`
    first_pending, first_routing = await read_order_events(js, first)
    await commit(stack, [first_routing])
    for order_id in (second, third):
        await commit(stack, await read_order_events(js, order_id))

    url = f"{stack.api_url}/api/orders"
    page = (await stack.http.get(url, params={"limit": 1})).json()
    seen = [o["orderId"] for o in page["orders"]]
    await commit(stack, [first_pending])  # the other replica's batch, between two pages
    while page["nextCursor"]:
        page = (await stack.http.get(url, params={"limit": 1, "cursor": page["nextCursor"]})).json()
        seen += [o["orderId"] for o in page["orders"]]

    assert seen == [third, second, first]
