"""What a publish conditioned on the whole order (`orders.*.<orderId>`) costs the NATS server.

An experiment for BENCHMARKS.md ("The executor's fence"), not part of the engine or its tests.
The executor publishes through a fence (`dexec.bus.fence`): `Nats-Expected-Last-Subject-
Sequence` with `Nats-Expected-Last-Subject-Sequence-Subject: orders.*.<orderId>`. A wildcard
*direct get* of an order makes the server scan file blocks (README, "Histories by literal
subject"); this measures whether the wildcard *condition* does too.

Method: a NATS server of its own (127.0.0.1, a random port, file storage), one stream like
the engine's, filled with `--orders` orders of six ~600 B events each (240,000 events by
default). Then, round after round, each variant publishes one more event (a `retrying`,
with a `Nats-Msg-Id`) to each of `--per-variant` orders (10,000), 64 publishes in flight,
every condition one that holds, so that every event is stored:

- `none`: no condition (the baseline);
- `literal`: the condition on the published subject, `orders.retrying.<orderId>`;
- `wildcard`: the condition on `orders.*.<orderId>`, at the order's last sequence;

each for the most recent orders and for the oldest. The server's CPU (user +
system, from /proc) per publish is the figure; variants alternate within each round, and the
summary gives each one's median over the rounds and its ratio to `none` of the same run.

    uv run --frozen python tools/experiments/fence_condition_cost.py --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nats
from nats.js import JetStreamContext

from dexec_tools.servers import NatsServer

EVENTS = ("pending", "routing", "routed", "building", "submitted", "confirmed")
PAYLOAD = b"x" * 600
IN_FLIGHT = 64
TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


Job = tuple[int, str, dict[str, str]]  # the order's number, the subject, the headers


async def publish_all(
    js: JetStreamContext, jobs: list[Job], on_ack: Callable[[int, int], None]
) -> None:
    """Publish every job, IN_FLIGHT at a time, calling on_ack(order, seq) for each."""
    queue = iter(jobs)

    async def worker() -> None:
        for n, subject, headers in queue:
            ack = await js.publish(subject, PAYLOAD, headers=headers)
            on_ack(n, ack.seq)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def run(orders: int, rounds: int, per_variant: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp)) as server:
        assert server.pid is not None
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        last_of_order: dict[int, int] = {}
        last_retry: dict[int, int] = {}

        def stored(n: int, seq: int) -> None:
            last_of_order[n] = max(last_of_order.get(n, 0), seq)

        fill = [
            (n, f"orders.{event}.o{n}", {"Nats-Msg-Id": f"o{n}:{event}"})
            for n in range(orders)
            for event in EVENTS
        ]
        started = time.perf_counter()
        await publish_all(js, fill, stored)
        print(f"filled {len(fill)} events in {time.perf_counter() - started:.0f} s")
        recent = list(range(orders - per_variant, orders))
        old = list(range(per_variant))
        figures: dict[str, list[float]] = {}
        attempt = 0
        for round_no in range(rounds):
            for age, chosen in (("recent", recent), ("old", old)):
                for variant in ("none", "literal", "wildcard"):
                    attempt += 1
                    jobs = []
                    for n in chosen:
                        headers = {"Nats-Msg-Id": f"o{n}:retrying:{attempt}"}
                        if variant == "literal":
                            headers["Nats-Expected-Last-Subject-Sequence"] = str(
                                last_retry.get(n, 0)
                            )
                        elif variant == "wildcard":
                            headers["Nats-Expected-Last-Subject-Sequence"] = str(last_of_order[n])
                            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = (
                                f"orders.*.o{n}"
                            )
                        jobs.append((n, f"orders.retrying.o{n}", headers))
                    acked: dict[int, int] = {}
                    before = server_cpu(server.pid)
                    await publish_all(js, jobs, acked.__setitem__)
                    spent = server_cpu(server.pid) - before
                    assert len(acked) == len(chosen)  # every condition held: all stored
                    last_retry.update(acked)
                    last_of_order.update(acked)
                    figures.setdefault(f"{age} {variant}", []).append(spent / len(chosen) * 1e6)
            print(f"round {round_no + 1}/{rounds} done")
        await nc.close()
    print(f"\nserver CPU per publish, median of {rounds} rounds ({orders * 6} events stored)")
    for age in ("recent", "old"):
        base = statistics.median(figures[f"{age} none"])
        for variant in ("none", "literal", "wildcard"):
            median = statistics.median(figures[f"{age} {variant}"])
            print(f"  {age:6s} {variant:8s} {median:7.1f} us  x{median / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-variant", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.rounds, args.per_variant))


if __name__ == "__main__":
    main()
