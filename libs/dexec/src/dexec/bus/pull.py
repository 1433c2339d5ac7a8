"""A durable pull consumer that hands each message to a coroutine, many at a time.

It fetches in batches only as many messages as it has free slots for, so `concurrency` bounds
both the work in flight and the memory; and it lets go of its subscription on stop, so
draining the connection afterwards does not wait on an outstanding pull request. It also
samples its durable's backlog for the metrics (`ConsumerSampler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_consumer
from dexec.bus.subjects import STREAM, ConsumerSpec
from dexec.consumer_metrics import ConsumerSampler
from dexec.settings import CommonSettings

log = logging.getLogger(__name__)


class PullLoop:
    def __init__(
        self,
        js: JetStreamContext,
        settings: CommonSettings,
        spec: ConsumerSpec,
        process: Callable[[Msg], Awaitable[None]],
        *,
        concurrency: int,
        batch: int = 64,
    ) -> None:
        self._js = js
        self._settings = settings
        self._spec = spec
        self._process = process
        self._concurrency = concurrency
        self._batch = batch
        self._room = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._sampler = ConsumerSampler(js, spec.durable)

    async def start(self) -> None:
        await ensure_consumer(self._js, self._spec, self._settings, self._concurrency * 4)
        self._sub = await self._js.pull_subscribe_bind(self._spec.durable, stream=STREAM)
        self._loop = asyncio.create_task(self._fetch_loop())
        await self._sampler.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop fetching and let in-flight work finish (unfinished messages are redelivered)."""
        self._stopping.set()
        await self._sampler.stop()
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _fetch_loop(self) -> None:
        assert self._sub is not None
        while not self._stopping.is_set():
            free = self._concurrency - len(self._tasks)
            if free <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 1.0)
                continue
            try:
                msgs = await self._sub.fetch(min(self._batch, free), timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as exc:  # reconnecting, or the consumer is being recreated
                log.warning("fetch from %s failed: %s", self._spec.durable, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._process(msg))
                self._tasks.add(task)
                task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._room.set()
