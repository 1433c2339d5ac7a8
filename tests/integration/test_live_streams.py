"""WebSocket streams: every event once, in order, for every client, whenever it connects."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
import websockets
from prometheus_client import REGISTRY

from dexec_notifier import sockets
from dexec_notifier.frames import MAX_EVENTS_PER_FRAME
from tests.support.stack import Stack
from tests.support.waiting import eventually

# Wide slippage: these tests are about streaming, not about the market moving.
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "3", "slippageBps": 300}
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]


async def test_many_clients_watching_one_order_each_get_every_event_once(start) -> None:
    # Realistic latencies keep the order in flight while the clients connect.
    stack: Stack = await start(latency_mode="realistic", slot_ms=100)
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    streams = await asyncio.gather(*(stack.watch(order_id) for _ in range(10)))

    for messages in streams:
        assert [m["event"] for m in messages] == LIFECYCLE
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(set(seqs))
    assert len({tuple(m["seq"] for m in s) for s in streams}) == 1


async def test_a_client_joining_after_the_end_gets_the_whole_history(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    first = await stack.watch(order_id)

    late = await stack.watch(order_id)

    assert [m["event"] for m in late] == LIFECYCLE
    assert late == first


async def test_query_parameter_endpoint_streams_the_same_events(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    messages = []
    async with websockets.connect(f"{stack.ws_url}/ws?orderId={order_id}") as ws:
        async for raw in ws:
            messages.append(orjson.loads(raw))
        assert ws.close_code == 1000
    assert [m["event"] for m in messages] == LIFECYCLE
    assert {"orderId", "status", "event", "seq", "at"} <= set(messages[0])


@pytest.mark.parametrize("order_id", ["no-such-order", "*", "%3E"])
async def test_unknown_order_gets_a_json_error_and_close_code_4404(
    stack: Stack, order_id: str
) -> None:
    await stack.submit(ORDER)  # an order exists that a wildcard would match
    async with websockets.connect(f"{stack.ws_url}/ws/orders/{order_id}") as ws:
        error = orjson.loads(await ws.recv())
        await ws.wait_closed()
    assert error["error"]["code"] == "ORDER_NOT_FOUND"
    assert ws.close_code == 4404


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/ws?orderId={'x' * 65}", "orderId"),
        ("/ws?afterSeq=-1", "afterSeq"),
        ("/ws/orders/some-order?afterSeq=abc", "afterSeq"),
        ("/api/orders/execute?orderId=o&batch=maybe", "batch"),
    ],
)
async def test_bad_query_parameters_get_a_json_error_and_close_code_4400(
    stack: Stack, path: str, field: str
) -> None:
    async with websockets.connect(f"{stack.ws_url}{path}") as ws:
        error = orjson.loads(await ws.recv())
        await ws.wait_closed()
    assert error["error"]["code"] == "BAD_REQUEST"
    assert [d["field"] for d in error["error"]["details"]] == [field]
    assert ws.close_code == 4400


async def test_a_reconnecting_client_resumes_after_the_last_seq_it_saw(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    everything = await stack.watch(order_id)
    seen = everything[:3]

    resumed = []
    url = f"{stack.ws_url}/ws/orders/{order_id}?afterSeq={seen[-1]['seq']}"
    async with websockets.connect(url) as ws:
        async for raw in ws:
            resumed.append(orjson.loads(raw))

    assert seen + resumed == everything
    async with websockets.connect(f"{url.split('?')[0]}?afterSeq={everything[-1]['seq']}") as ws:
        assert [raw async for raw in ws] == []
        assert ws.close_code == 1000


async def test_one_socket_watches_many_orders_and_can_unsubscribe(stack: Stack) -> None:
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(3)]
    for order_id in ids:
        await stack.watch(order_id)  # all finished: the subscription is pure backfill

    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": [*ids, "missing", "*"]}))
        frames = [orjson.loads(await ws.recv()) for _ in range(3 * len(LIFECYCLE) + 2)]
        await ws.send(orjson.dumps({"op": "unsubscribe", "orderIds": ids}))
        await ws.send(orjson.dumps({"op": "resubscribe"}))
        error = orjson.loads(await ws.recv())

    events = [f for f in frames if "event" in f]
    for order_id in ids:
        assert [f["event"] for f in events if f["orderId"] == order_id] == LIFECYCLE
    missing, wildcard = [f["error"] for f in frames if "error" in f]
    assert missing == {
        "code": "ORDER_NOT_FOUND",
        "message": "no order missing",
        "orderId": "missing",
    }
    assert wildcard["orderId"] == "*" and wildcard["code"] == "ORDER_NOT_FOUND"
    assert error["error"]["code"] == "BAD_REQUEST"


async def _finished_orders(stack: Stack, count: int) -> dict[str, list[dict]]:
    """`count` orders run to their end, each id with its events."""
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(count)]
    return {order_id: await stack.watch(order_id) for order_id in ids}


async def _frames_until_marker(ws: websockets.ClientConnection) -> list[dict]:
    """Every frame up to the answer to a subscription of an unknown id, sent now (not found,
    or no room for it): commands are applied in order, so whatever an earlier command brought
    has arrived before it."""
    await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ["marker"]}))
    frames = []
    async with asyncio.timeout(30):
        while True:
            frame = orjson.loads(await ws.recv())
            error = frame.get("error", {})
            if "marker" in (error.get("orderId"), *error.get("orderIds", ())):
                return frames
            frames.append(frame)


async def test_subscribing_again_with_an_earlier_after_seq_sends_the_rest_again(
    stack: Stack,
) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    everything = await stack.watch(order_id)
    last = everything[-1]["seq"]

    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": [order_id]}))
        first = await _frames_until_marker(ws)
        # Repeats that ask for nothing earlier than what was sent change nothing.
        for after_seq in ({}, {order_id: last}, {order_id: last + 5}):
            command = {"op": "subscribe", "orderIds": [order_id], "afterSeq": after_seq}
            await ws.send(orjson.dumps(command))
        repeats = await _frames_until_marker(ws)
        rewind = {"op": "subscribe", "orderIds": [order_id], "afterSeq": {order_id: 2}}
        await ws.send(orjson.dumps(rewind))
        rewound = await _frames_until_marker(ws)

    assert first == everything
    assert repeats == []
    assert rewound == [e for e in everything if e["seq"] > 2]


async def test_ids_beyond_a_sockets_cap_are_named_and_a_full_socket_can_still_rewind(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "MAX_ORDERS_PER_SOCKET", 2)
    histories = await _finished_orders(stack, 4)
    ids = list(histories)

    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
        frames = await _frames_until_marker(ws)
        rewind = {"op": "subscribe", "orderIds": ids[:1], "afterSeq": {ids[0]: 4}}
        await ws.send(orjson.dumps(rewind))
        rewound = await _frames_until_marker(ws)

    *events, too_many = frames
    assert events == histories[ids[0]] + histories[ids[1]]
    assert too_many["error"]["code"] == "TOO_MANY_ORDERS"
    assert too_many["error"]["orderIds"] == ids[2:]
    assert too_many["error"]["limit"] == 2
    assert rewound == [e for e in histories[ids[0]] if e["seq"] > 4]


async def test_unknown_ids_free_their_room_for_the_ids_after_them(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "MAX_ORDERS_PER_SOCKET", 2)
    histories = await _finished_orders(stack, 3)
    ids = list(histories)

    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids[:1]}))
        first = await _frames_until_marker(ws)
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ["nope", *ids[1:]]}))
        second = await _frames_until_marker(ws)

    assert first == histories[ids[0]]
    *events, too_many = [f for f in second if f.get("error", {}).get("orderId") != "nope"]
    assert events == histories[ids[1]]  # the one room left, not taken by "nope"
    assert too_many["error"]["code"] == "TOO_MANY_ORDERS"
    assert too_many["error"]["orderIds"] == ids[2:]
    assert {"code": "ORDER_NOT_FOUND", "message": "no order nope", "orderId": "nope"} in [
        f["error"] for f in second if "error" in f
    ]


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        ({"op": "subscribe"}, ["orderIds"]),
        ({"op": "subscribe", "orderIds": ["o"], "afterSeq": [1]}, ["afterSeq"]),
        (
            {"op": "subscribe", "orderIds": ["o", "p"], "afterSeq": {"o": -5, "p": 1}},
            ["afterSeq.o"],
        ),
        ({"op": "watch", "orderIds": ["o"]}, ["op"]),
        ([], [""]),
    ],
)
async def test_a_malformed_command_is_answered_with_the_fields_that_are_wrong(
    stack: Stack, command: object, fields: list[str]
) -> None:
    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        await ws.send(orjson.dumps(command))
        error = orjson.loads(await ws.recv())["error"]
        still_served = await _frames_until_marker(ws)  # the socket goes on

    assert error["code"] == "BAD_REQUEST"
    assert [d["field"] for d in error["details"]] == fields
    assert all(field in error["message"] for field in fields)
    assert still_served == []


async def test_a_negative_after_seq_is_refused_not_let_past_the_sockets_cap(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "MAX_ORDERS_PER_SOCKET", 2)
    ids = list(await _finished_orders(stack, 3))

    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        command = {"op": "subscribe", "orderIds": ids, "afterSeq": {i: -5 for i in ids}}
        await ws.send(orjson.dumps(command))
        answer = await _frames_until_marker(ws)

    [refusal] = answer  # no events: the command is refused as a whole
    assert refusal["error"]["code"] == "BAD_REQUEST"
    assert {d["field"] for d in refusal["error"]["details"]} == {f"afterSeq.{i}" for i in ids}


async def test_clients_leaving_a_single_order_socket_before_its_backfill_leave_no_error(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    history = await stack.watch(order_id)
    caplog.set_level(logging.ERROR)
    open_before = REGISTRY.get_sample_value("dexec_ws_connections")

    for target in (order_id, "no-such-order"):
        for _ in range(10):
            ws = await websockets.connect(f"{stack.ws_url}/ws/orders/{target}")
            ws.transport.abort()
        for _ in range(10):
            ws = await websockets.connect(f"{stack.ws_url}/ws/orders/{target}")
            await ws.close()

    async def all_closed() -> bool:
        return REGISTRY.get_sample_value("dexec_ws_connections") == open_before

    await eventually(all_closed, 10, "the server to close every socket")
    assert await stack.watch(order_id) == history  # a whole session after theirs
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_multiplexed_socket_gets_live_events_of_every_subscribed_order(start) -> None:
    stack: Stack = await start(latency_mode="realistic", slot_ms=100)
    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(5)]
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
        frames = [orjson.loads(await ws.recv()) for _ in range(5 * len(LIFECYCLE))]

    for order_id in ids:
        mine = [f for f in frames if f["orderId"] == order_id]
        assert [f["event"] for f in mine] == LIFECYCLE
        assert [f["seq"] for f in mine] == sorted({f["seq"] for f in mine})


async def test_the_assignment_path_serves_websocket_upgrades(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    messages = []
    async with websockets.connect(f"{stack.ws_url}/api/orders/execute?orderId={order_id}") as ws:
        async for raw in ws:
            messages.append(orjson.loads(raw))
    assert [m["event"] for m in messages] == LIFECYCLE


async def test_single_order_sockets_can_stay_open_after_the_end(start) -> None:
    stack: Stack = await start(ws_close_on_terminal=False)
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    async with websockets.connect(f"{stack.ws_url}/ws/orders/{order_id}") as ws:
        frames = [orjson.loads(await ws.recv()) for _ in LIFECYCLE]
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)  # the socket is still open and answering
    assert frames[-1]["event"] == "confirmed"


async def test_batched_frames_carry_the_cached_backfills_of_one_command_together(start) -> None:
    stack: Stack = await start(ws_backfill_cache_ttl_seconds=600)
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(3)]
    for order_id in ids:
        await stack.watch(order_id)  # finished, and in the notifier's cache

    async with websockets.connect(f"{stack.ws_url}/ws?batch=true") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": [*ids, "missing"]}))
        backfill = orjson.loads(await ws.recv())
        error = orjson.loads(await ws.recv())

    assert [(e["orderId"], e["event"]) for e in backfill] == [
        (order_id, event) for order_id in ids for event in LIFECYCLE
    ]
    assert error["error"]["orderId"] == "missing"


async def test_a_large_batched_backfill_comes_in_frames_of_bounded_size(start) -> None:
    stack: Stack = await start(ws_backfill_cache_ttl_seconds=600)
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(50)]
    await asyncio.gather(*(stack.watch(order_id) for order_id in ids))  # all in the cache

    frames: list[list[dict]] = []
    async with websockets.connect(f"{stack.ws_url}/ws?batch=true") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
        async with asyncio.timeout(30):
            while sum(map(len, frames)) < len(ids) * len(LIFECYCLE):
                frames.append(orjson.loads(await ws.recv()))

    # 300 events: one frame of the most a frame holds, then the rest, in order.
    assert [len(frame) for frame in frames] == [MAX_EVENTS_PER_FRAME, 300 - MAX_EVENTS_PER_FRAME]
    assert [(e["orderId"], e["event"]) for frame in frames for e in frame] == [
        (order_id, event) for order_id in ids for event in LIFECYCLE
    ]


async def test_a_backfill_read_from_the_stream_ends_a_batched_frame(start) -> None:
    stack: Stack = await start(ws_backfill_cache_bytes=0)  # every backfill is a stream read
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(3)]
    for order_id in ids:
        await stack.watch(order_id)

    async with websockets.connect(f"{stack.ws_url}/ws?batch=true") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
        frames = [orjson.loads(await ws.recv()) for _ in ids]

    assert [[(e["orderId"], e["event"]) for e in frame] for frame in frames] == [
        [(order_id, event) for event in LIFECYCLE] for order_id in ids
    ]


async def test_batched_live_frames_bring_every_event_once_in_order(start) -> None:
    stack: Stack = await start(latency_mode="realistic", slot_ms=100)
    events: list[dict] = []
    async with websockets.connect(f"{stack.ws_url}/ws?batch=true") as ws:
        ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(5)]
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
        async with asyncio.timeout(30):
            while sum(e["event"] == "confirmed" for e in events) < len(ids):
                frame = orjson.loads(await ws.recv())
                assert isinstance(frame, list) and frame
                events += frame

    for order_id in ids:
        mine = [e for e in events if e["orderId"] == order_id]
        assert [e["event"] for e in mine] == LIFECYCLE
        assert [e["seq"] for e in mine] == sorted({e["seq"] for e in mine})


async def test_a_single_order_socket_can_take_its_events_batched(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    finished = await stack.watch(order_id)

    async with websockets.connect(f"{stack.ws_url}/ws/orders/{order_id}?batch=true") as ws:
        frames = [orjson.loads(raw) async for raw in ws]
        assert ws.close_code == 1000
    assert frames == [finished]


async def test_an_unsubscribed_order_gets_no_more_events_on_that_socket(start) -> None:
    stack: Stack = await start(latency_mode="realistic")  # orders stay in flight for a while
    async with websockets.connect(f"{stack.ws_url}/ws") as ws:
        dropped, kept = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(2)]
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": [dropped, kept]}))
        frames = [orjson.loads(await ws.recv())]
        while frames[-1]["orderId"] != dropped:
            frames.append(orjson.loads(await ws.recv()))
        await ws.send(orjson.dumps({"op": "unsubscribe", "orderIds": [dropped]}))
        # Commands are applied in order: once the marker's error arrives, so has the unsubscribe.
        await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ["marker"]}))
        while "error" not in frames[-1]:
            frames.append(orjson.loads(await ws.recv()))
        after = []
        async with asyncio.timeout(30):
            while not after or after[-1]["event"] not in ("confirmed", "failed"):
                after.append(orjson.loads(await ws.recv()))

    assert frames[-1]["error"]["orderId"] == "marker"
    assert {f["orderId"] for f in after} == {kept}
    seen = max(f["seq"] for f in frames if f.get("orderId") == dropped)
    everything = await stack.watch(dropped)
    assert everything[-1]["seq"] > seen  # it went on after the unsubscribe, unseen here
