"""Crashes everywhere, and still every accepted order ends once, recorded once, streamed once.

A few thousand orders go through the real services running as separate processes, while the
router, executor and notifier are killed with SIGKILL and restarted at random moments, and
NATS and Postgres are each restarted once. Then DESIGN §5's promise is checked from the
outside: every accepted order is terminal, none executed twice on the chain, every event is
in Postgres exactly once, and no WebSocket client saw an event twice or out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import orjson
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dexec.bus.history import read_order_events
from dexec.bus.subjects import STREAM
from tests.support.chain import landed_outcomes
from tests.support.process_stack import WORKERS, ProcessStack, process_stack, remove
from tests.support.waiting import eventually

ORDERS = 2_000
CONCURRENCY = 40
WATCH_EVERY = 20  # one WebSocket client per this many orders
SEED = 20261121

SETTINGS = {
    "latency_mode": "realistic",
    "quote_latency_ms_min": "5",
    "quote_latency_ms_max": "30",
    "slot_ms": "100",
    "blockhash_valid_slots": "30",
    "chain_rate_limit_rate": "0.05",
    "chain_drop_rate": "0.02",
    "ack_wait_seconds": "3",
    "retry_backoff_base_seconds": "0.2",
    "rate_limit_per_second": "0",
    "log_level": "WARNING",
}
TERMINAL = ("confirmed", "failed")

pytestmark = pytest.mark.chaos


@pytest.fixture
def stack() -> Iterator[ProcessStack]:
    stack = process_stack(SETTINGS)
    try:
        stack.start()
        yield stack
    finally:
        with contextlib.suppress(Exception):
            stack.stop()
        remove(stack)


async def submit(http: httpx.AsyncClient, api_url: str, i: int) -> str | None:
    """Submit like a careful client: same Idempotency-Key on every retry, until accepted."""
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": f"0.{1 + i % 900:03d}"}
    headers = {"Idempotency-Key": f"chaos-{i}"}
    for attempt in range(60):
        try:
            response = await http.post(f"{api_url}/api/orders/execute", json=body, headers=headers)
            if response.status_code in (200, 202):
                return response.json()["orderId"]
            assert response.status_code in (429, 503), response.text
        except httpx.TransportError:
            pass
        await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
    return None


async def follow(ws_url: str, order_id: str, deadline: float) -> list[dict[str, Any]]:
    """Watch one order to its end, reconnecting after the last seq seen when the socket drops."""
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        after = seen[-1]["seq"] if seen else 0
        try:
            async with websockets.connect(f"{ws_url}/ws/orders/{order_id}?afterSeq={after}") as ws:
                async for raw in ws:
                    seen.append(orjson.loads(raw))
                if ws.close_code == 1000:
                    return seen
        except (OSError, websockets.WebSocketException):
            pass
        await asyncio.sleep(0.2)
    return seen


async def chaos(stack: ProcessStack, stop: asyncio.Event, rng: random.Random) -> list[str]:
    """Kill and restart services at random moments; restart NATS, then Postgres, once each."""
    done: list[str] = []
    started = time.monotonic()
    infra = [("nats", stack.nats), ("postgres", stack.postgres)]
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.4, 1.2))  # a random moment, not a synchronisation
        if infra and time.monotonic() - started > 4 * (3 - len(infra)):
            name, server = infra.pop(0)
            await asyncio.to_thread(server.restart)
            done.append(f"restart {name}")
            continue
        victim = rng.choice(WORKERS)
        await asyncio.to_thread(stack.crash, victim)
        await asyncio.sleep(rng.uniform(0.1, 0.8))
        await asyncio.to_thread(stack.revive, victim)
        done.append(f"kill -9 {victim}")
    return done


async def stream_truth(nats_url: str) -> dict[str, list[Any]]:
    """Every order in the stream with its events, read straight from JetStream."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM, subjects_filter="orders.pending.*")
        order_ids = [subject.rsplit(".", 1)[1] for subject in info.state.subjects or {}]
        return {oid: [s.event for s in await read_order_events(js, oid)] for oid in order_ids}
    finally:
        await nc.close()


async def test_every_order_survives_crashes_exactly_once(stack: ProcessStack) -> None:
    rng = random.Random(SEED)
    stop_chaos = asyncio.Event()
    chaos_task = asyncio.create_task(chaos(stack, stop_chaos, rng))
    limits = httpx.Limits(max_connections=CONCURRENCY)
    slots = asyncio.Semaphore(CONCURRENCY)
    watchers: list[asyncio.Task[list[dict[str, Any]]]] = []
    deadline = time.monotonic() + 240

    try:
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:

            async def one(i: int) -> str | None:
                async with slots:
                    order_id = await submit(http, stack.api_url, i)
                if order_id and i % WATCH_EVERY == 0:
                    watchers.append(asyncio.create_task(follow(stack.ws_url, order_id, deadline)))
                return order_id

            submitted = await asyncio.gather(*(one(i) for i in range(ORDERS)))
    except BaseException:
        for watcher in watchers:
            watcher.cancel()
        raise
    finally:
        # Chaos ends here, pass or fail: it must not kill or revive anything after teardown.
        stop_chaos.set()
        events_done = await chaos_task
    assert "restart nats" in events_done and "restart postgres" in events_done
    assert sum(e.startswith("kill") for e in events_done) >= 5, events_done
    # Whatever is down at this moment is up again (chaos always revives what it kills).
    await asyncio.to_thread(stack.wait_ready)

    accepted = {order_id for order_id in submitted if order_id}
    assert len(accepted) == ORDERS, "a client gave up on an order"
    db = create_async_engine(stack.postgres.url())
    try:

        async def all_terminal() -> bool:
            async with db.connect() as conn:
                done = await conn.scalar(
                    text("select count(*) from orders where status in ('confirmed', 'failed')")
                )
            return done == ORDERS

        await eventually(all_terminal, timeout=180, what=f"{ORDERS} terminal orders in Postgres")
        async with db.connect() as conn:
            rows = (await conn.execute(text("select id, status, execution from orders"))).all()
            recorded = Counter(
                (r.order_id, r.msg_id)
                for r in await conn.execute(text("select order_id, msg_id from order_events"))
            )
    finally:
        await db.dispose()

    # The stream holds exactly the accepted orders, each transition once.
    truth = await stream_truth(stack.nats.url)
    assert set(truth) == accepted
    for order_id, events in truth.items():
        ids = Counter(e.msg_id for e in events)
        assert max(ids.values()) == 1, (order_id, ids)
        kinds = Counter(str(e.event) for e in events)
        assert kinds["pending"] == 1 and kinds["confirmed"] + kinds["failed"] == 1, kinds
    # Postgres recorded every event of the stream, once.
    assert recorded == Counter((oid, e.msg_id) for oid, events in truth.items() for e in events)
    # Executed at most once: one landed transaction per confirmed order, and it is the one the
    # order reports; a failed order moved no funds (its transaction, if one landed, failed).
    outcomes = await landed_outcomes(stack.nats.url)
    landed = Counter(o.order_id for o in outcomes)
    executed = {o.order_id: o.signature for o in outcomes if o.ok}
    statuses = {r.id: r.status for r in rows}
    assert set(statuses) == accepted and set(statuses.values()) <= set(TERMINAL)
    assert max(landed.values()) == 1
    for r in rows:
        if r.status == "confirmed":
            assert landed[r.id] == 1
            assert executed.get(r.id) == r.execution["txHash"]
        else:
            assert r.id not in executed, f"failed order {r.id} executed on the chain"
    # Every WebSocket client saw each event once, in order, to the end.
    streams = await asyncio.gather(*watchers)
    assert len(streams) == ORDERS // WATCH_EVERY
    for seen in streams:
        seqs = [m["seq"] for m in seen]
        assert seqs == sorted(set(seqs)), seqs
        assert seen and seen[-1]["status"] in TERMINAL
