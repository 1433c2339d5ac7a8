"""WebSocket backfills served from the notifier's live cache, and from the stream without it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import nats
import orjson
import websockets
from fastapi import FastAPI
from prometheus_client import REGISTRY

from dexec.bus.history import read_order_events
from dexec_notifier.app import create_app as create_notifier
from dexec_notifier.settings import NotifierSettings
from dexec_tools.servers import free_port
from tests.support.stack import TEST_DEFAULTS, Stack, _serve, _stopper
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "3", "slippageBps": 300}
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]
NO_NOTIFIER = frozenset({"notifier"})
# Realistic latency with a slow confirmation: an order spends seconds in `submitted`.
SLOW_CONFIRMATION = {
    "latency_mode": "realistic",
    "slot_ms": 200,
    "confirm_slots_min": 10,
    "confirm_slots_max": 10,
}


def backfills() -> dict[str, float]:
    return {
        source: REGISTRY.get_sample_value("dexec_ws_backfills_total", {"source": source}) or 0.0
        for source in ("cache", "stream")
    }


def since(before: dict[str, float]) -> dict[str, float]:
    return {source: count - before[source] for source, count in backfills().items()}


async def stream_history(stack: Stack, order_id: str) -> list[tuple[int, str]]:
    nc = await nats.connect(stack.nats_url)
    try:
        stored = await read_order_events(nc.jetstream(), order_id)
        return [(s.seq, str(s.event.event)) for s in stored]
    finally:
        await nc.close()


async def reached(stack: Stack, order_id: str, event: str) -> None:
    async def probe() -> bool:
        return event in [e for _, e in await stream_history(stack, order_id)]

    await eventually(probe, timeout=30, what=f"{order_id} reaching {event} in the stream")


async def serve_notifier(stack: Stack, **overrides: Any) -> tuple[FastAPI, str]:
    """A notifier of our own on the stack's NATS and Postgres, started now; stopped with it."""
    values = {**TEST_DEFAULTS, "nats_url": stack.nats_url, "database_url": stack.database_url}
    app = create_notifier(NotifierSettings(**{**values, **overrides}))
    port = free_port()
    server, task = await _serve(app, port)
    stack._stoppers.append(_stopper(server, task))
    return app, f"ws://127.0.0.1:{port}"


def assert_once_in_order(messages: list[dict[str, Any]], history: list[tuple[int, str]]) -> None:
    assert [m["event"] for m in messages] == LIFECYCLE
    assert [(m["seq"], m["event"]) for m in messages] == history


async def test_a_client_joining_mid_order_gets_every_event_once_from_the_cache(start) -> None:
    stack: Stack = await start(**SLOW_CONFIRMATION)
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    await reached(stack, order_id, "submitted")
    before = backfills()
    joined = datetime.now(UTC)

    messages = await stack.watch(order_id)

    assert_once_in_order(messages, await stream_history(stack, order_id))
    # It joined mid-order: the end came live, after the backfill (from the cache).
    assert datetime.fromisoformat(messages[-1]["at"]) > joined
    assert since(before) == {"cache": 1, "stream": 0}


async def test_one_command_subscribing_many_orders_serves_each_from_the_cache(start) -> None:
    stack: Stack = await start(**SLOW_CONFIRMATION)
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(20)]
    await asyncio.gather(*(reached(stack, order_id, "routed") for order_id in ids))
    before = backfills()

    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(30), websockets.connect(f"{stack.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": [*ids, "missing"]}))
        while sum(f.get("event") == "confirmed" for f in frames) < len(ids):
            frames.append(orjson.loads(await ws.recv()))

    for order_id in ids:
        mine = [f for f in frames if f.get("orderId") == order_id and "event" in f]
        assert_once_in_order(mine, await stream_history(stack, order_id))
    assert [f["error"]["orderId"] for f in frames if "error" in f] == ["missing"]
    # The unknown order is looked for in the stream; every real one came from the cache.
    assert since(before) == {"cache": len(ids), "stream": 1}


async def test_orders_older_than_the_notifier_are_read_from_the_stream(start) -> None:
    stack: Stack = await start(without=NO_NOTIFIER, **SLOW_CONFIRMATION)
    finished = (await stack.submit(ORDER)).json()["orderId"]
    await reached(stack, finished, "confirmed")
    in_flight = (await stack.submit(ORDER)).json()["orderId"]
    await reached(stack, in_flight, "routed")
    app, ws_url = await serve_notifier(stack, **SLOW_CONFIRMATION)
    before = backfills()

    streams = await asyncio.gather(
        stack.watch(finished, ws_url=ws_url), stack.watch(in_flight, ws_url=ws_url)
    )

    for order_id, messages in zip((finished, in_flight), streams, strict=True):
        assert_once_in_order(messages, await stream_history(stack, order_id))
        assert order_id not in app.state.hub.cache  # its first event came before the notifier
    assert since(before) == {"cache": 0, "stream": 2}


async def test_orders_evicted_by_the_byte_cap_are_read_from_the_stream(start) -> None:
    stack: Stack = await start(without=NO_NOTIFIER)
    cap = 40_000  # a few orders' worth
    app, ws_url = await serve_notifier(
        stack, ws_backfill_cache_bytes=cap, ws_backfill_cache_ttl_seconds=600
    )
    cache = app.state.hub.cache
    first = (await stack.submit(ORDER)).json()["orderId"]
    before = backfills()
    first_view = await stack.watch(first, ws_url=ws_url)
    assert since(before) == {"cache": 1, "stream": 0}

    latest = first
    for _ in range(100):  # newer orders push the first one out
        if first not in cache:
            break
        latest = (await stack.submit(ORDER)).json()["orderId"]
        await reached(stack, latest, "confirmed")
    assert first not in cache
    assert latest in cache
    assert cache.bytes <= cap

    before = backfills()
    again = await stack.watch(first, ws_url=ws_url)
    assert since(before) == {"cache": 0, "stream": 1}
    assert again == first_view
    assert_once_in_order(again, await stream_history(stack, first))

    before = backfills()
    assert_once_in_order(
        await stack.watch(latest, ws_url=ws_url), await stream_history(stack, latest)
    )
    assert since(before) == {"cache": 1, "stream": 0}


def gaps() -> float:
    return REGISTRY.get_sample_value("dexec_live_consumer_gaps_total") or 0.0


async def test_a_consumer_reset_never_leaves_a_hole_in_the_cache(start) -> None:
    stack: Stack = await start(without=NO_NOTIFIER)
    app, ws_url = await serve_notifier(stack)
    hub = app.state.hub
    jsi = hub._sub._sub._jsi  # nats-py's ordered-consumer state

    def cached_events(order_id: str) -> int:
        history = hub.cache.history(order_id)
        return 0 if history is None else len(history)

    async def fully_cached(*order_ids: str) -> None:
        async def probe() -> bool:
            return all(cached_events(o) == len(LIFECYCLE) for o in order_ids)

        await eventually(probe, what=f"{order_ids} complete in the cache")

    first = (await stack.submit(ORDER)).json()["orderId"]
    await fully_cached(first)
    gaps_before = gaps()

    # The server loses the hub's consumer; an order runs meanwhile, unseen by the hub. nats-py
    # then recreates the consumer right after the last message it delivered (as it does after
    # missed heartbeats), and the hub gets everything it missed: nothing to clear.
    nc = await nats.connect(stack.nats_url)
    try:
        await nc.jetstream().delete_consumer("ORDERS", hub._sub._consumer)
    finally:
        await nc.close()
    unseen = (await stack.submit(ORDER)).json()["orderId"]
    await reached(stack, unseen, "confirmed")
    await jsi.reset_ordered_consumer(jsi._sseq + 1)
    await fully_cached(first, unseen)
    assert gaps() == gaps_before

    # A reset that resumes one message too far (as after messages the client dropped): the
    # hub notices the jump and clears the cache, so nothing cached has a hole; the order whose
    # `pending` was skipped is never cached and is read from the stream.
    await jsi.reset_ordered_consumer(jsi._sseq + 2)
    skipped = (await stack.submit(ORDER)).json()["orderId"]
    await reached(stack, skipped, "confirmed")

    async def noticed() -> bool:
        return gaps() > gaps_before

    await eventually(noticed, what="the hub noticing the jump")
    assert gaps() == gaps_before + 1
    assert first not in hub.cache and unseen not in hub.cache and skipped not in hub.cache

    before = backfills()
    for order_id in (first, unseen, skipped):
        messages = await stack.watch(order_id, ws_url=ws_url)
        assert_once_in_order(messages, await stream_history(stack, order_id))
    assert since(before) == {"cache": 0, "stream": 3}
