"""`python -m dexec_tools.bench_recorder`: what recording an order costs, this process and
Postgres.

A fresh Postgres (migrated) receives the events of N orders through `record_batch`, the
recorder's whole transaction, in batches shaped like a saturated engine's: orders start in
waves, and each batch carries the next event of every order of several waves at once, so an
order's six events land in six different batches (its row is locked, folded and written back
six times) and a batch mixes new orders with finished ones. The events are the real ones'
bytes (`bus_floor.payloads`: a `routed` is 4.6 KB). The figure is CPU (user + system, from
/proc) per order of this process (the recorder's Python side) and of every Postgres process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from dexec.db.engine import create_engine
from dexec.db.migrate import upgrade
from dexec.orders.events import OrderEvent
from dexec_notifier.recorder import Recorded, record_batch
from dexec_tools.bus_floor.payloads import sample_events
from dexec_tools.loadgen.rss import cpu_seconds, tree_cpu_seconds
from dexec_tools.servers import PostgresServer

# Orders whose events share a batch: a wave of new orders joins each batch, and the
# six waves before it bring their next event, as in a pipeline that is six stages deep.
WAVE = 80


def batches(orders: int) -> list[list[Recorded]]:
    """Every order's events, in the pipelined batches the module describes."""
    samples = list(sample_events().items())
    ids = [uuid.uuid4().hex for _ in range(orders)]
    waves = [ids[i : i + WAVE] for i in range(0, orders, WAVE)]
    out: list[list[Recorded]] = []
    seq = 0
    for step in range(len(waves) + len(samples) - 1):
        batch = []
        for stage, (_, sample) in enumerate(samples):
            wave = step - stage
            if not 0 <= wave < len(waves):
                continue
            for order_id in waves[wave]:
                seq += 1
                body = sample.body.replace(b"0" * 32, order_id.encode(), 1)
                batch.append(Recorded(seq, OrderEvent.from_json(body)))
        out.append(batch)
    return out


async def measure(database_url: str, postmaster: int, orders: int) -> tuple[float, float]:
    """CPU per order (ms): this process, Postgres."""
    work = batches(orders)
    engine = create_engine(database_url, 2)
    me = psutil.Process()
    try:
        await record_batch(engine, work[0][:1])  # connect and prepare outside the measurement
        postgres = psutil.Process(postmaster)
        ours, theirs = cpu_seconds(me), tree_cpu_seconds(postgres)
        for batch in work:
            await record_batch(engine, batch)
        ours = cpu_seconds(me) - ours
        theirs = tree_cpu_seconds(postgres) - theirs
    finally:
        await engine.dispose()
    return ours / orders * 1000, theirs / orders * 1000


def run(orders: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as data, PostgresServer(Path(data) / "pg") as server:
        assert server.pid is not None
        figures = []
        for round_no in range(1, rounds + 1):
            database = f"bench{round_no}"
            server.create_database(database)
            url = server.url(database)
            upgrade(url)
            started = time.perf_counter()
            ours, postgres = asyncio.run(measure(url, server.pid, orders))
            figures.append((ours, postgres))
            print(
                f"round {round_no}: {orders} orders in {time.perf_counter() - started:.1f} s, "
                f"CPU per order: recorder {ours:.2f} ms, Postgres {postgres:.2f} ms",
                flush=True,
            )
        ours = statistics.median(f[0] for f in figures)
        postgres = statistics.median(f[1] for f in figures)
        print(
            f"median of {rounds}: recorder {ours:.2f} ms + Postgres {postgres:.2f} ms "
            f"= {ours + postgres:.2f} ms of CPU per order (pid {os.getpid()})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3, help="each on a fresh database")
    args = parser.parse_args()
    run(args.orders, args.rounds)


if __name__ == "__main__":
    main()
