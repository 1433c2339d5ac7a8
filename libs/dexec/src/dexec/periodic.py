"""Background work on a timer (sampling consumer info, reading a backlog) that stops reliably.

Stopping sets an event the loop checks, besides cancelling it: nats-py swallows a
CancelledError that arrives while it flushes a publish (`Client._flush_pending`), so a loop
stopped by cancellation alone could go on calling NATS forever, and whoever awaits it (a
service's shutdown) would wait forever too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, tick: Callable[[], Awaitable[None]], interval: float, what: str) -> None:
        self._tick = tick
        self._interval = interval
        self._what = what
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._what)

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._task is None:
            return
        self._task.cancel()
        # A swallowed cancellation still ends the loop once the tick in hand returns.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._task, timeout)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if self._stopping.is_set():
                return
            try:
                await self._tick()
            except Exception as exc:  # NATS restarting: keep the last reading, try again later
                log.warning("%s failed: %r", self._what, exc)
