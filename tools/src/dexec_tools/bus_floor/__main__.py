"""`python -m dexec_tools.bus_floor`: what the engine's NATS traffic alone costs per order.

Starts a NATS server of its own (free ports, a temporary folder), one process per role
(`dexec_tools.bus_floor.roles`), and runs N orders through them as fast as they go; then
reports the CPU each process and the server used per order. The difference between these
figures and a `make bench` run's is what the services' own work costs (HTTP, WebSockets,
Postgres, JSON, routing, the simulated chain): the floor bounds how far optimising that work
can take the engine on this bus and client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nats
import psutil
from nats.aio.msg import Msg

from dexec_tools.bus_floor.roles import (
    DONE_SUBJECT,
    GO_SUBJECT,
    READY_SUBJECT,
    ROLES,
    STOP_SUBJECT,
    RoleConfig,
    role_main,
)
from dexec_tools.loadgen.rss import cpu_seconds
from dexec_tools.servers import NatsServer

START_TIMEOUT_SECONDS = 60.0
# CPU time of two cores in a second, in ms: what bounds orders/s on this machine.
TWO_CORES_MS = 2_000


@dataclass(frozen=True)
class FloorReport:
    orders: int
    seconds: float
    orders_per_second: float
    cpu_ms_per_order: dict[str, float]  # per role and "nats"
    total_cpu_ms_per_order: float
    # Orders/s two cores could carry if nothing but this traffic used them.
    two_core_ceiling: int
    counts: dict[str, int]  # what the notifier role saw: orders finished, events live, recorded

    def text(self) -> str:
        lines = [
            f"bus floor: {self.orders} orders in {self.seconds:.1f} s "
            f"({self.orders_per_second:.0f} orders/s)",
            "CPU per order (ms): "
            + "  ".join(f"{name} {ms:.2f}" for name, ms in self.cpu_ms_per_order.items()),
            f"total {self.total_cpu_ms_per_order:.2f} ms per order: two cores carry at most "
            f"~{self.two_core_ceiling:.0f} orders/s of this traffic alone",
            "notifier saw: " + "  ".join(f"{k} {v}" for k, v in self.counts.items()),
        ]
        return "\n".join(lines)


def run_floor(orders: int, concurrency: int, timeout: float) -> FloorReport:
    with (
        tempfile.TemporaryDirectory(prefix="dexec-floor-") as data,
        NatsServer(Path(data)) as server,
    ):
        return asyncio.run(_measure(server, orders, concurrency, timeout))


async def _measure(
    server: NatsServer, orders: int, concurrency: int, timeout: float
) -> FloorReport:
    nc = await nats.connect(server.url, name="floor-driver")
    ready: asyncio.Queue[str] = asyncio.Queue()
    done: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()

    async def on_ready(msg: Msg) -> None:
        ready.put_nowait(msg.data.decode())

    async def on_done(msg: Msg) -> None:
        if not done.done():
            done.set_result(json.loads(msg.data))

    await nc.subscribe(READY_SUBJECT, cb=on_ready)
    await nc.subscribe(DONE_SUBJECT, cb=on_done)
    await nc.flush()
    spawn = multiprocessing.get_context("spawn")
    processes = {
        role: spawn.Process(
            target=role_main,
            args=(RoleConfig(role, server.url, orders, concurrency),),
            name=f"floor-{role}",
        )
        for role in ROLES
    }
    for process in processes.values():
        process.start()
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            for _ in processes:
                await ready.get()
        watched = {role: psutil.Process(p.pid) for role, p in processes.items()}
        assert server.pid is not None
        watched["nats"] = psutil.Process(server.pid)
        before, started = _cpu(watched), time.monotonic()
        await nc.publish(GO_SUBJECT, b"")
        counts = await asyncio.wait_for(done, timeout)
        after, seconds = _cpu(watched), time.monotonic() - started
    finally:
        await nc.publish(STOP_SUBJECT, b"")
        await nc.drain()
        for process in processes.values():
            process.join(10)
            if process.is_alive():
                process.kill()
    per_order = {name: round((after[name] - before[name]) * 1000 / orders, 3) for name in after}
    total = round(sum(per_order.values()), 3)
    return FloorReport(
        orders=orders,
        seconds=round(seconds, 2),
        orders_per_second=round(orders / seconds, 1),
        cpu_ms_per_order=per_order,
        total_cpu_ms_per_order=total,
        two_core_ceiling=round(TWO_CORES_MS / total),
        counts=counts,
    )


def _cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: cpu_seconds(process) for name, process in processes.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dexec_tools.bus_floor", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--orders", type=int, default=6000)
    parser.add_argument(
        "--concurrency", type=int, default=64, help="orders the api role has in flight"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the run")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.orders <= 0 or args.concurrency <= 0:
        parser.error("--orders and --concurrency must be positive")
    report = run_floor(args.orders, args.concurrency, args.timeout)
    print(report.text())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
