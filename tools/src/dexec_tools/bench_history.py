"""`python -m dexec_tools.bench_history`: what one order's history read costs the NATS server as
the stream grows.

A fresh NATS server and `ORDERS` stream are filled with orders of six events each (stage by
stage, so an order's events lie close together, as in the engine). At each size, random orders
are read, recent ones (the last 2,000, like the executor's) and any; the figure is the server's
CPU (user + system, from /proc) per read, and the reader's wall time per read. Reads:

- `wildcard`: one batched direct get filtered by `orders.*.<orderId>` (the reader before),
- `history`: `read_order_events` (subject counts, then literal subjects),
- `latest`: `read_latest_events` for the executor's three kinds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_stream
from dexec.bus.history import read_latest_events, read_order_events
from dexec.bus.publisher import publish_event
from dexec.bus.subjects import STREAM, order_subjects
from dexec.orders.events import OrderEvent
from dexec.orders.states import FIRST_TRY_EVENTS, EventType, with_statuses
from dexec.settings import CommonSettings
from dexec_tools.servers import NatsServer

STAGES = with_statuses(FIRST_TRY_EVENTS)
EXECUTOR_KINDS = [EventType.SUBMITTED, EventType.CONFIRMED, EventType.FAILED]
# Orders started together, each stage published for all of them before the next.
WAVE = 500
RECENT = 2_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wildcard_read(nc: Client, order_id: str) -> int:
    """The previous reader's request: one batch filtered by the order's wildcard."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    request = {"seq": 1, "next_by_subj": order_subjects(order_id), "batch": 64}
    await nc.publish(f"$JS.API.DIRECT.GET.{STREAM}", orjson.dumps(request), reply=inbox)
    count = 0
    try:
        while True:  # the events, then a status: end of batch (or not found)
            msg = await sub.next_msg(timeout=10)
            if (msg.headers or {}).get("Status"):
                return count
            count += 1
    finally:
        await sub.unsubscribe()


async def fill(js: JetStreamContext, orders: list[str], target: int) -> None:
    payload = {"note": "x" * 300}  # events of a few hundred bytes, like the engine's
    while len(orders) < target:
        wave = [str(uuid.uuid4()) for _ in range(WAVE)]
        orders.extend(wave)
        for event, status in STAGES:
            await asyncio.gather(
                *(
                    publish_event(
                        js, OrderEvent(order_id=o, event=event, status=status, data=payload)
                    )
                    for o in wave
                )
            )


async def measure(
    pid: int, reads: int, pool: list[str], read: Callable[[str], Awaitable[object]]
) -> tuple[float, float]:
    started_cpu, started = cpu_seconds(pid), time.perf_counter()
    for _ in range(reads):
        await read(random.choice(pool))
    wall = (time.perf_counter() - started) / reads
    return (cpu_seconds(pid) - started_cpu) / reads, wall


async def run(sizes: list[int], reads: int) -> None:
    with tempfile.TemporaryDirectory() as data, NatsServer(Path(data)) as server:
        assert server.pid is not None
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js, CommonSettings())
        readers: dict[str, Callable[[str], Awaitable[object]]] = {
            "wildcard": lambda o: wildcard_read(nc, o),
            "history": lambda o: read_order_events(js, o),
            "latest": lambda o: read_latest_events(js, o, EXECUTOR_KINDS),
        }
        orders: list[str] = []
        print("| events in stream | read | orders read | server CPU per read | wall per read |")
        print("|---|---|---|---|---|")
        for size in sizes:
            await fill(js, orders, size)
            for name, read in readers.items():
                for which, pool in (("recent", orders[-RECENT:]), ("any", orders)):
                    server_cpu, wall = await measure(server.pid, reads, pool, read)
                    print(
                        f"| {len(orders) * len(STAGES):,} | {name} | {which} "
                        f"| {server_cpu * 1e3:.2f} ms | {wall * 1e3:.2f} ms |",
                        flush=True,
                    )
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", default="2000,10000,30000", help="stream sizes, in orders")
    parser.add_argument("--reads", type=int, default=1000, help="reads per figure")
    args = parser.parse_args()
    asyncio.run(run([int(size) for size in args.orders.split(",")], args.reads))


if __name__ == "__main__":
    main()
