"""Webhooks: every event POSTed to the order's URL, signed, in order, retried after failures."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import nats
import orjson
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dexec.bus.connection import ensure_stream
from dexec.bus.publisher import publish_event
from dexec.db.engine import create_engine
from dexec.db.models import WebhookDeliveryRow
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus
from dexec.settings import CommonSettings
from dexec_notifier.recorder import Recorded, Recorder, record_batch
from dexec_notifier.settings import NotifierSettings
from dexec_notifier.webhooks import WebhookDispatcher
from dexec_tools.servers import NatsServer
from tests.support.dns_server import NameServer
from tests.support.events import spec_data
from tests.support.stack import Stack
from tests.support.stream import orders_in_stream
from tests.support.waiting import eventually
from tests.support.webhook_receiver import FloodingReceiver, TricklingReceiver, WebhookReceiver

SECRET = "test-webhook-secret"
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}


def signature_ok(headers: dict[str, str], body: bytes) -> bool:
    """Verify as a receiver would, independently of the engine's code."""
    timestamp = headers["x-dexec-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and headers["x-dexec-signature"] == f"v1={expected.hexdigest()}"


async def test_events_are_posted_signed_in_order_and_retried(start) -> None:
    stack: Stack = await start(
        webhook_secret=SECRET,
        webhook_backoff_base_seconds=0.1,
        webhook_allow_private_targets=True,  # the receiver is on 127.0.0.1
    )
    async with WebhookReceiver(fail_first=3) as receiver:
        body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": receiver.url}
        order_id = (await stack.submit(body)).json()["orderId"]
        streamed = await stack.watch(order_id)

        async def all_accepted() -> bool:
            return len(receiver.accepted) == len(LIFECYCLE)

        await eventually(all_accepted, what="every event accepted by the receiver")

    # The first three POSTs were refused; the same event came again until accepted.
    assert [r.answered for r in receiver.received[:4]] == [503, 503, 503, 200]
    first = receiver.received[0].headers["x-dexec-event-id"]
    assert {r.headers["x-dexec-event-id"] for r in receiver.received[:4]} == {first}
    assert all(signature_ok(r.headers, r.body) for r in receiver.received)
    delivered = [orjson.loads(r.body) for r in receiver.accepted]
    assert [d["event"] for d in delivered] == LIFECYCLE
    assert delivered == streamed  # the same messages as the WebSocket, in the same order


@pytest.mark.parametrize(("overrides", "warned"), [({}, True), ({"webhook_secret": SECRET}, False)])
async def test_the_notifier_warns_at_start_when_it_signs_with_the_development_key(
    start, caplog: pytest.LogCaptureFixture, overrides: dict[str, str], warned: bool
) -> None:
    """Anyone can forge that key's signatures: a deployment that did not set its own shows."""
    with caplog.at_level(logging.WARNING, logger="dexec_notifier.webhooks"):
        await start(without=frozenset({"router", "executor"}), **overrides)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "DEXEC_WEBHOOK_SECRET" in record.getMessage()
    ]
    assert len(warnings) == int(warned), warnings


async def test_a_webhook_url_must_be_http(stack: Stack) -> None:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": "file:///etc"}
    response = await stack.submit(body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8080/hook",
        # The same, in dots and letters IDNA maps to ASCII (the first three as httpx does).
        "http://127\u30020\u30020\u30021:18999/a",
        "http://127\uff0e0\uff0e0\uff0e1/b",
        "http://localhost\u3002/c",
        "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/d",
    ],
)
async def test_a_webhook_url_to_localhost_or_a_private_address_is_refused(
    stack: Stack, url: str
) -> None:
    response = await stack.submit({**ORDER, "webhookUrl": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in error["details"]] == ["webhookUrl"]
    assert await orders_in_stream(stack.nats_url) == 0


def refused_deliveries() -> float:
    """The notifier's count of webhook events dropped for a refused target (this process)."""
    sample = REGISTRY.get_sample_value("dexec_webhook_deliveries_total", {"outcome": "refused"})
    return sample or 0.0


@contextlib.asynccontextmanager
async def dispatching(
    js: JetStreamContext, database_url: str, **settings: object
) -> AsyncIterator[tuple[AsyncEngine, WebhookDispatcher]]:
    """A dispatcher (to start) with `settings`, and its engine; stopped and closed at the end."""
    engine = create_engine(database_url, 2)
    dispatcher = WebhookDispatcher(
        engine, NotifierSettings(database_url=database_url, **settings), js
    )
    try:
        yield engine, dispatcher
    finally:
        await dispatcher.stop()
        await engine.dispose()


async def delivery_column(engine: AsyncEngine, order_id: str, column: Any) -> list[Any]:
    """One column of the order's webhook deliveries, in stream order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(column)
            .where(WebhookDeliveryRow.order_id == order_id)
            .order_by(WebhookDeliveryRow.seq)
        )
        return list(rows.scalars())


async def delivery_states(engine: AsyncEngine, order_id: str) -> list[str]:
    return await delivery_column(engine, order_id, WebhookDeliveryRow.state)


async def until_dropped(engine: AsyncEngine, order_id: str, count: int, what: str) -> None:
    """Wait until the order has `count` deliveries, every one dropped."""

    async def all_dropped() -> bool:
        return await delivery_states(engine, order_id) == ["dropped"] * count

    await eventually(all_dropped, what=what, explain=lambda: delivery_states(engine, order_id))


async def test_a_name_that_resolves_to_a_private_address_gets_no_webhook(start) -> None:
    """The API does not look names up; the notifier does, and drops the order's deliveries
    without connecting (though a receiver listens at the address), nor retrying. The name is
    answered by a name server of the test's own, as the notifier is told to ask."""
    name = "hooks.private.test"
    async with NameServer({name: "127.0.0.1"}) as names, WebhookReceiver() as receiver:
        # Private targets refused, as in production.
        stack: Stack = await start(webhook_nameservers=names.address)
        refused_before = refused_deliveries()
        response = await stack.submit({**ORDER, "webhookUrl": receiver.url_via(name)})
        assert response.status_code == 202, response.text
        order_id = response.json()["orderId"]
        streamed = await stack.watch(order_id)

        await until_dropped(stack.db, order_id, len(streamed), f"the webhooks to {name} dropped")
    assert receiver.received == []
    assert refused_deliveries() - refused_before == len(streamed)


def queued_order(order_id: str, url: str) -> list[Recorded]:
    """An order's first events as the recorder writes them, its pending carrying `url`."""
    now = datetime.now(UTC)
    steps = [
        (EventType.PENDING, OrderStatus.PENDING),
        (EventType.ROUTING, OrderStatus.ROUTING),
        (EventType.BUILDING, OrderStatus.BUILDING),
    ]
    return [
        Recorded(
            seq,
            OrderEvent(
                order_id=order_id,
                event=event,
                status=status,
                at=now,
                data={"webhookUrl": url} if event == EventType.PENDING else {},
            ),
        )
        for seq, (event, status) in enumerate(steps, start=1)
    ]


async def test_a_queued_webhook_to_a_private_address_is_dropped_not_posted(
    js: JetStreamContext, database_url: str
) -> None:
    """Deliveries queued before the API refused such URLs (or while private targets were
    allowed) are refused by the notifier when it sends them."""
    refused_before = refused_deliveries()
    async with (
        dispatching(js, database_url, webhook_backoff_base_seconds=0.1) as (
            engine,
            dispatcher,
        ),
        WebhookReceiver() as receiver,
    ):
        await record_batch(engine, queued_order("queued", receiver.url))
        await dispatcher.start()

        await until_dropped(engine, "queued", 3, "the queued webhooks dropped")
    assert receiver.received == []
    assert refused_deliveries() - refused_before == 3


async def delivery_attempts(engine: AsyncEngine, order_id: str) -> list[int]:
    return await delivery_column(engine, order_id, WebhookDeliveryRow.attempts)


@pytest.mark.parametrize(
    "url",
    [
        # localhost in full-width letters: httpx cannot parse the host (InvalidURL).
        "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/d",
        "ftp://hooks.example/h",  # a scheme httpx does not speak (UnsupportedProtocol)
        # A snowman label as IDNA 2003 encodes it: IDNA 2008, in httpx, raises idna's error.
        "http://xn--n3h.example/d",
    ],
)
async def test_a_queued_webhook_the_client_cannot_send_is_refused_not_retried(
    js: JetStreamContext, database_url: str, url: str
) -> None:
    """Queued before the API refused such URLs: each event is dropped after its one attempt,
    even with private targets allowed, instead of being retried until the give-up while the
    order's later events wait behind it."""
    refused_before = refused_deliveries()
    async with dispatching(
        js, database_url, webhook_backoff_base_seconds=0.1, webhook_allow_private_targets=True
    ) as (engine, dispatcher):
        await record_batch(engine, queued_order("unsendable", url))
        await dispatcher.start()

        await until_dropped(engine, "unsendable", 3, "the unsendable webhooks dropped")
        assert await delivery_attempts(engine, "unsendable") == [1, 1, 1]
    assert refused_deliveries() - refused_before == 3


class ParkedSignal(asyncio.Event):
    """The dispatcher's wake event, which tells the test when the loop is parked on it."""

    def __init__(self) -> None:
        super().__init__()
        self.parked = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.parked.set()
        return await super().wait()


async def test_stop_returns_when_a_wake_lands_with_it(
    js: JetStreamContext, database_url: str
) -> None:
    """A wake (a POST ending, the recorder queueing) at the moment of stop must not keep the
    dispatcher running: Python 3.11's wait_for drops a cancellation that lands as the awaited
    event is set, which once hung a notifier's shutdown."""
    async with dispatching(js, database_url) as (_, dispatcher):
        signal = dispatcher._wake = ParkedSignal()
        await dispatcher.start()
        async with asyncio.timeout(5):
            await signal.parked.wait()
        dispatcher.wake()
        stopping = asyncio.create_task(dispatcher.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert stopping in done, "the dispatcher kept running after stop"


async def test_a_post_whose_answer_never_ends_fails_at_the_timeout_and_is_never_doubled(
    js: JetStreamContext, database_url: str
) -> None:
    """A receiver that trickles its answer a byte at a time never trips a read timeout: the
    whole POST is cut off at the webhook timeout, a failed attempt, before the event is sent
    again (never two POSTs of it at once), and the event is given up on in the end."""
    async with (
        dispatching(
            js,
            database_url,
            webhook_timeout_seconds=0.5,  # a lease of 6 s
            webhook_backoff_base_seconds=0.1,
            webhook_give_up_seconds=3.0,
            webhook_allow_private_targets=True,
        ) as (engine, dispatcher),
        TricklingReceiver() as receiver,
    ):
        await record_batch(engine, queued_order("trickled", receiver.url)[:1])
        await dispatcher.start()

        async def posted_again() -> bool:
            return len(receiver.requests) >= 2

        await eventually(posted_again, what="the event POSTed again")
        first, second = receiver.requests[:2]
        assert first.closed is not None, "the first POST still runs beside the second"
        assert first.closed <= second.arrived

        await until_dropped(engine, "trickled", 1, "the event given up on")

        async def all_ended() -> bool:
            return not receiver.open

        await eventually(all_ended, what="every POST ended")
    requests = receiver.requests
    assert {r.event_id for r in requests} == {"trickled:pending"}
    # Each POST ended (at the timeout) before the next began.
    for earlier, later in itertools.pairwise(requests):
        assert earlier.closed is not None and earlier.closed <= later.arrived


async def test_a_huge_answer_is_not_read_the_status_is_enough(
    js: JetStreamContext, database_url: str
) -> None:
    """A receiver answering 200 with a gigabyte: the event is delivered, and the notifier
    takes at most a little of the answer (what the sockets buffer) before hanging up, rather
    than holding it all in memory."""
    async with (
        dispatching(js, database_url, webhook_allow_private_targets=True) as (engine, dispatcher),
        FloodingReceiver() as receiver,
    ):
        await record_batch(engine, queued_order("flooded", receiver.url)[:1])
        await dispatcher.start()

        async def delivered() -> bool:
            return await delivery_states(engine, "flooded") == ["delivered"]

        await eventually(delivered, what="the event delivered")

        async def hung_up() -> bool:
            return len(receiver.written) == 1

        await eventually(hung_up, what="the notifier hanging up")
    assert receiver.written[0] < 64 << 20, receiver.written


async def test_a_host_that_never_answers_does_not_take_every_slot(
    js: JetStreamContext, database_url: str
) -> None:
    """Ten orders to a receiver whose answers never end, queued before one to another host:
    with four POSTs at once and two per host, the other host's POST goes out while the first
    two hang, instead of waiting behind them for their timeout."""
    async with (
        dispatching(
            js,
            database_url,
            webhook_concurrency=4,
            webhook_host_concurrency=2,
            webhook_timeout_seconds=10.0,
            webhook_allow_private_targets=True,
        ) as (engine, dispatcher),
        TricklingReceiver() as hanging,  # on 127.0.0.1
        WebhookReceiver(host="127.0.0.2") as answering,
    ):
        for n in range(10):
            await record_batch(engine, queued_order(f"hanging-{n}", hanging.url)[:1])
        await record_batch(engine, queued_order("answered", answering.url)[:1])
        await dispatcher.start()

        async with asyncio.timeout(5):  # well inside the hanging POSTs' 10 s
            await answering.arrived.wait()
        assert len(hanging.requests) == 2, "more POSTs to the hanging host than its limit"
        assert len(hanging.open) == 2

        async def recorded_delivered() -> bool:
            return await delivery_states(engine, "answered") == ["delivered"]

        await eventually(recorded_delivered, what="the answered webhook delivered")
        # Only two of the hanging host's events were claimed (and so counted as attempts).
        attempts = [await delivery_attempts(engine, f"hanging-{n}") for n in range(10)]
        assert sorted(attempts) == [[0]] * 8 + [[1]] * 2


def webhook_holds() -> float:
    return REGISTRY.get_sample_value("dexec_webhook_holds_total") or 0.0


def order_with_webhook(order_id: str, url: str, **data: dict[str, object]) -> list[OrderEvent]:
    """An order's first three events, its `pending` carrying `url`; `data` by event name."""
    steps = [
        (EventType.PENDING, OrderStatus.PENDING),
        (EventType.ROUTING, OrderStatus.ROUTING),
        (EventType.BUILDING, OrderStatus.BUILDING),
    ]
    return [
        OrderEvent(
            order_id=order_id,
            event=event,
            status=status,
            data=spec_data(webhookUrl=url) if event == EventType.PENDING else data.get(event, {}),
        )
        for event, status in steps
    ]


def event_ids(receiver: WebhookReceiver) -> list[str]:
    return [r.headers["x-dexec-event-id"] for r in receiver.accepted]


async def test_events_two_recorder_replicas_commit_out_of_order_are_posted_in_order(
    js: JetStreamContext, database_url: str
) -> None:
    """Replica A's batch holds an order's stream seq 2 and B's seq 3, and B commits first: the
    dispatcher finds seq 2 in the stream, unrecorded, and holds seq 3 back until it is."""
    async with (
        dispatching(
            js, database_url, webhook_poll_seconds=0.2, webhook_allow_private_targets=True
        ) as (engine, dispatcher),
        WebhookReceiver() as receiver,
    ):
        events = order_with_webhook("straddled", receiver.url)
        first, second, third = [
            Recorded((await publish_event(js, event)).seq, event) for event in events
        ]
        await dispatcher.start()
        await record_batch(engine, [first])

        async def accepted(count: int) -> bool:
            return len(receiver.accepted) >= count

        await eventually(lambda: accepted(1), what="the first event posted")
        holds = webhook_holds()
        await record_batch(engine, [third])  # replica B's batch

        async def third_looked_at() -> bool:
            return webhook_holds() > holds or len(receiver.received) > 1

        await eventually(third_looked_at, what="the dispatcher to look at the third event")
        await record_batch(engine, [second])  # replica A's, later
        await eventually(lambda: accepted(3), what="all three posted")
    assert event_ids(receiver) == [e.msg_id for e in events]


async def test_an_earlier_event_the_recorder_terminated_does_not_hold_the_later_ones_back(
    js: JetStreamContext, database_url: str
) -> None:
    """An event Postgres refuses is never recorded, and never will be: the recorder's ack floor
    passes it, so the order's later events are still posted (without it)."""
    async with dispatching(
        js, database_url, webhook_poll_seconds=0.2, webhook_allow_private_targets=True
    ) as (engine, dispatcher):
        settings = NotifierSettings(database_url=database_url)
        recorder = Recorder(js, engine, settings, on_webhooks_queued=dispatcher.wake)
        try:
            async with WebhookReceiver() as receiver:
                # A NUL in JSONB: Postgres refuses the `routing` event.
                pending, routing, building = order_with_webhook(
                    "gapped", receiver.url, routing={"note": "a\u0000b"}
                )
                for event in (pending, routing, building):
                    await publish_event(js, event)
                await dispatcher.start()
                await recorder.start()

                async def both_accepted() -> bool:
                    return len(receiver.accepted) >= 2

                await eventually(both_accepted, what="the pending and building posted")
        finally:
            await recorder.stop()
    assert event_ids(receiver) == [pending.msg_id, building.msg_id]


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, JetStreamContext]]:
    """A NATS server of this test's own, to stop and start, and a context on it that reconnects
    forever (as the services' do) and gives up on each request after a second."""
    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = nc.jetstream(timeout=1.0)
        await ensure_stream(js, CommonSettings(nats_url=server.url))
        try:
            yield server, js
        finally:
            await asyncio.to_thread(server.start)  # a no-op if it runs

            async def reconnected() -> bool:
                return nc.is_connected

            await eventually(reconnected, what="the client back on NATS")  # to close cleanly
            await nc.close()


async def test_an_orders_pending_is_posted_while_nats_is_unreachable(
    own_nats: tuple[NatsServer, JetStreamContext], database_url: str
) -> None:
    """A `pending` is its order's first event: nothing before it to confirm in the stream, so
    an outage of NATS does not hold it back."""
    server, js = own_nats
    async with (
        dispatching(
            js, database_url, webhook_poll_seconds=0.2, webhook_allow_private_targets=True
        ) as (engine, dispatcher),
        WebhookReceiver() as receiver,
    ):
        # Another order's event first: the pending is above any ack floor's next seq.
        await publish_event(js, order_with_webhook("unhooked", receiver.url)[0])
        pending = order_with_webhook("hooked-in-outage", receiver.url)[0]
        recorded = Recorded((await publish_event(js, pending)).seq, pending)
        assert recorded.seq > 1
        await asyncio.to_thread(server.stop)
        await record_batch(engine, [recorded])
        await dispatcher.start()

        async def posted() -> bool:
            return len(receiver.accepted) >= 1

        await eventually(
            posted,
            what="the pending posted while NATS is gone",
            explain=lambda: delivery_states(engine, "hooked-in-outage"),
        )
    assert event_ids(receiver) == [pending.msg_id]


async def test_an_event_held_while_nats_is_unreachable_is_not_dropped_for_its_age(
    own_nats: tuple[NatsServer, JetStreamContext], database_url: str
) -> None:
    """While NATS is away the dispatcher cannot tell whether an order's earlier events are
    recorded: it holds the later ones however long that lasts, past `webhook_give_up_seconds`
    (the outage is not the receiver's fault), and posts them once NATS is back."""
    server, js = own_nats
    give_up = 1.0
    order_id = "held-in-outage"
    async with (
        dispatching(
            js,
            database_url,
            webhook_poll_seconds=0.2,
            webhook_give_up_seconds=give_up,
            webhook_allow_private_targets=True,
        ) as (engine, dispatcher),
        WebhookReceiver() as receiver,
    ):
        events = order_with_webhook(order_id, receiver.url)[:2]
        recorded = [Recorded((await publish_event(js, e)).seq, e) for e in events]
        await asyncio.to_thread(server.stop)
        await record_batch(engine, recorded)
        await dispatcher.start()

        async def accepted(count: int) -> bool:
            return len(receiver.accepted) >= count

        await eventually(lambda: accepted(1), what="the pending posted")

        async def older_than_give_up() -> bool:
            return (datetime.now(UTC) - events[1].at).total_seconds() > give_up

        await eventually(older_than_give_up, what="the routing event older than give-up")
        holds = webhook_holds()

        async def held_twice_more_or_dropped() -> bool:
            dropped = "dropped" in await delivery_states(engine, order_id)
            return dropped or webhook_holds() >= holds + 2

        await eventually(held_twice_more_or_dropped, what="the routing event looked at")
        assert await delivery_states(engine, order_id) == ["delivered", "pending"]
        await asyncio.to_thread(server.start)
        await eventually(
            lambda: accepted(2),
            timeout=30.0,
            what="the routing event posted once NATS is back",
            explain=lambda: delivery_states(engine, order_id),
        )
    assert event_ids(receiver) == [e.msg_id for e in events]
