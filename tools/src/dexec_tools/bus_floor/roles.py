"""The four services' NATS traffic for one order, and nothing else.

Each role is what its service does on the bus, with the engine's own helpers, stream and
consumers (`dexec.bus`), in a process of its own on uvloop, but with no HTTP, WebSocket,
Postgres, JSON parsing, route search or simulated chain:
- api: claim the idempotency key (KV create), publish `pending` and wait for its ack;
- router: consume `pending`; publish `routing` (ack awaited later) and `routed`; ack;
- executor: consume `routed`; read the order's latest submission and end (one batched direct
  get); publish `building` (ack awaited later) and `submitted`; record the landing (KV create);
  publish `confirmed`; ack;
- notifier: the recorder's batches (ack each event) and the live subscription to every
  event. (Webhooks go out from a Postgres outbox the recorder fills, not from the stream.)

Roles report on core subjects of the run's own: ready, then (the notifier) done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import nats
import orjson
import uvloop
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from dexec.bus.connection import ensure_consumer, ensure_stream
from dexec.bus.history import read_latest_events
from dexec.bus.publisher import MSG_ID_HEADER
from dexec.bus.pull import PullLoop
from dexec.bus.subjects import (
    ALL_EVENTS,
    CHAIN_BUCKET,
    EXECUTOR_CONSUMER,
    IDEMPOTENCY_BUCKET,
    RECORDER_CONSUMER,
    ROUTER_CONSUMER,
    STREAM,
    ConsumerSpec,
    event_subject,
    order_id_of,
)
from dexec.orders.states import TERMINAL_EVENTS, EventType
from dexec.settings import CommonSettings
from dexec_tools.bus_floor.payloads import SampleEvent, sample_events

READY_SUBJECT = "floor.ready"
GO_SUBJECT = "floor.go"
DONE_SUBJECT = "floor.done"
STOP_SUBJECT = "floor.stop"
EVENTS_PER_ORDER = 6
# The services' defaults (router, executor, recorder batch); a test holds them to the settings.
ROUTER_CONCURRENCY = 512
EXECUTOR_CONCURRENCY = 1024
RECORDER_BATCH = 500


@dataclass(frozen=True)
class RoleConfig:
    role: str
    nats_url: str
    orders: int
    # POSTs in flight at the api role (the load generator's default concurrency).
    concurrency: int = 64


def role_main(config: RoleConfig) -> None:
    """Process entry point (spawned)."""
    uvloop.run(_serve(config))


async def _serve(config: RoleConfig) -> None:
    nc = await nats.connect(config.nats_url, name=f"floor-{config.role}")
    js = nc.jetstream()
    stop = asyncio.Event()

    async def on_stop(_msg: Msg) -> None:
        stop.set()

    await nc.subscribe(STOP_SUBJECT, cb=on_stop)
    role = ROLES[config.role](nc, js, config)
    await role.start()
    await nc.publish(READY_SUBJECT, config.role.encode())
    await nc.flush()
    await stop.wait()
    await role.stop()
    await nc.drain()


async def _publish(
    js: JetStreamContext, order_id: str, event: EventType, sample: SampleEvent
) -> None:
    headers = {MSG_ID_HEADER: sample.msg_id(order_id)}
    await js.publish(event_subject(event, order_id), sample.body, stream=STREAM, headers=headers)


async def _publish_later(
    js: JetStreamContext, order_id: str, event: EventType, sample: SampleEvent
) -> asyncio.Future[object]:
    headers = {MSG_ID_HEADER: sample.msg_id(order_id)}
    return await js.publish_async(
        event_subject(event, order_id), sample.body, stream=STREAM, headers=headers
    )


class Role:
    def __init__(self, nc: Client, js: JetStreamContext, config: RoleConfig) -> None:
        self.nc = nc
        self.js = js
        self.config = config
        self.bodies = sample_events()
        self.settings = CommonSettings(nats_url=config.nats_url)
        self._loops: list[PullLoop] = []

    async def start(self) -> None:
        await ensure_stream(self.js, self.settings)

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()

    async def consume(
        self, spec: ConsumerSpec, process: Callable[[Msg], Awaitable[None]], concurrency: int
    ) -> None:
        loop = PullLoop(self.js, self.settings, spec, process, concurrency=concurrency)
        await loop.start()
        self._loops.append(loop)


class Api(Role):
    async def start(self) -> None:
        await super().start()
        self.kv = await _bucket(self.js, IDEMPOTENCY_BUCKET)
        await self.nc.subscribe(GO_SUBJECT, cb=self._go)
        self._run: asyncio.Task[None] | None = None  # held so the task is not collected

    async def _go(self, _msg: Msg) -> None:
        self._run = asyncio.create_task(self._submit_all())

    async def _submit_all(self) -> None:
        numbers = iter(range(self.config.orders))
        await asyncio.gather(*(self._submitter(numbers) for _ in range(self.config.concurrency)))

    async def _submitter(self, numbers: Iterator[int]) -> None:
        # The submitters share one iterator: each order number is taken once.
        for n in numbers:
            order_id = f"{n:032x}"
            await self.kv.create(f"key{n}", orjson.dumps({"orderId": order_id}))
            await _publish(self.js, order_id, EventType.PENDING, self.bodies[EventType.PENDING])


class Router(Role):
    async def start(self) -> None:
        await super().start()
        await self.consume(ROUTER_CONSUMER, self._handle, ROUTER_CONCURRENCY)

    async def _handle(self, msg: Msg) -> None:
        order_id = order_id_of(msg.subject)
        routing = await _publish_later(
            self.js, order_id, EventType.ROUTING, self.bodies[EventType.ROUTING]
        )
        await routing
        await _publish(self.js, order_id, EventType.ROUTED, self.bodies[EventType.ROUTED])
        await msg.ack()


class Executor(Role):
    async def start(self) -> None:
        await super().start()
        self.kv = await _bucket(self.js, CHAIN_BUCKET)
        await self.consume(EXECUTOR_CONSUMER, self._handle, EXECUTOR_CONCURRENCY)

    async def _handle(self, msg: Msg) -> None:
        order_id = order_id_of(msg.subject)
        await read_latest_events(self.js, order_id, TERMINAL_EVENTS | {EventType.SUBMITTED})
        building = await _publish_later(
            self.js, order_id, EventType.BUILDING, self.bodies[EventType.BUILDING]
        )
        await _publish(self.js, order_id, EventType.SUBMITTED, self.bodies[EventType.SUBMITTED])
        await building
        await self.kv.create(f"sig{order_id}", self.bodies[EventType.CONFIRMED].body)
        await _publish(self.js, order_id, EventType.CONFIRMED, self.bodies[EventType.CONFIRMED])
        await msg.ack()


class Notifier(Role):
    async def start(self) -> None:
        await super().start()
        self.recorded = self.live = self.finished = 0
        self._sent = False
        await ensure_consumer(self.js, RECORDER_CONSUMER, self.settings, RECORDER_BATCH * 4)
        self._recorder = await self.js.pull_subscribe_bind(RECORDER_CONSUMER.durable, stream=STREAM)
        self._recording = asyncio.create_task(self._record())
        await self.nc.subscribe(ALL_EVENTS, cb=self._on_live)

    async def stop(self) -> None:
        self._recording.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._recording
        await super().stop()

    async def _record(self) -> None:
        while True:
            try:
                msgs = await self._recorder.fetch(RECORDER_BATCH, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                await msg.ack()
            self.recorded += len(msgs)
            await self._check_done()

    async def _on_live(self, msg: Msg) -> None:
        self.live += 1
        if msg.subject.split(".", 2)[1] in TERMINAL_EVENTS:
            self.finished += 1
        await self._check_done()

    async def _check_done(self) -> None:
        events = self.config.orders * EVENTS_PER_ORDER
        done = self.finished >= self.config.orders
        if self._sent or not done or self.recorded < events:
            return
        self._sent = True
        counts = {
            "finished": self.finished,
            "live": self.live,
            "recorded": self.recorded,
        }
        await self.nc.publish(DONE_SUBJECT, orjson.dumps(counts))


async def _bucket(js: JetStreamContext, name: str) -> KeyValue:
    return await js.create_key_value(KeyValueConfig(bucket=name, history=1))


ROLES: dict[str, type[Role]] = {
    "api": Api,
    "router": Router,
    "executor": Executor,
    "notifier": Notifier,
}
