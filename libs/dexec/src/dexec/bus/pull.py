"""A durable pull consumer that hands each message to a coroutine, many at a time.

Messages come from a continuous pull (`dexec.bus.pump`) that never asks for more than
`concurrency` messages beyond those being processed, so `concurrency` bounds both the work in
flight and the memory. On stop it lets go of its subscription, so draining the connection
afterwards does not wait on an outstanding pull request. It also samples its durable's
backlog for the metrics (`ConsumerSampler`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_consumer
from dexec.bus.pump import PullPump
from dexec.bus.subjects import STREAM, ConsumerSpec
from dexec.consumer_metrics import ConsumerSampler
from dexec.settings import CommonSettings


class PullLoop:
    def __init__(
        self,
        js: JetStreamContext,
        settings: CommonSettings,
        spec: ConsumerSpec,
        process: Callable[[Msg], Awaitable[None]],
        *,
        concurrency: int,
    ) -> None:
        self._js = js
        self._settings = settings
        self._spec = spec
        self._process = process
        self._concurrency = concurrency
        self._pump: PullPump | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sampler = ConsumerSampler(js, spec.durable)

    async def start(self) -> None:
        await ensure_consumer(self._js, self._spec, self._settings, self._concurrency * 4)
        self._pump = PullPump(
            self._js._nc,  # the context keeps its connection only privately
            STREAM,
            self._spec.durable,
            self._start_task,
            capacity=self._concurrency,
        )
        await self._pump.start()
        await self._sampler.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling and let in-flight work finish (unfinished messages are redelivered)."""
        await self._sampler.stop()
        if self._pump is not None:
            await self._pump.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    def _start_task(self, msg: Msg) -> None:
        task = asyncio.create_task(self._process(msg))
        self._tasks.add(task)
        task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pump is not None:
            self._pump.done()
