"""How far the recorder has got: the stream sequence at and below which it has finished every
message (recorded it in Postgres, or terminated it as never recordable).

That is the ack floor of its durable. Recorder replicas take disjoint batches and commit them
in any order, so Postgres can hold an order's later events before its earlier ones; what is at
or below the floor has no such gap. The webhooks and the API's reads both rely on it.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from dexec.bus.subjects import RECORDER_CONSUMER, STREAM


async def read_recorded_floor(js: JetStreamContext) -> int:
    """The recorder's ack floor now; raises NATS' errors (`NotFoundError`: no recorder yet)."""
    info = await js.consumer_info(STREAM, RECORDER_CONSUMER.durable)
    return info.ack_floor.stream_seq if info.ack_floor else 0


class RecordedFloor:
    """The floor as last read, for a reader that asks often.

    The floor only rises, so a sequence at or below the last reading is covered without asking
    NATS. Above it, NATS is asked again, by one caller at a time and at most every
    `min_interval` seconds; a caller told "not covered" meanwhile reads the stream instead,
    which is always right, only dearer.
    """

    def __init__(self, js: JetStreamContext, min_interval: float = 0.1) -> None:
        self._js = js
        self._min_interval = min_interval
        self._floor = 0
        self._read_at: float | None = None
        self._reading = asyncio.Lock()

    async def covers(self, seq: int) -> bool:
        """Whether every message up to `seq` is finished by the recorder; raises NATS' errors."""
        if seq <= self._floor:
            return True
        if self._reading.locked() or not self._due():
            return False
        async with self._reading:
            self._read_at = asyncio.get_running_loop().time()
            self._floor = max(self._floor, await read_recorded_floor(self._js))
        return seq <= self._floor

    def _due(self) -> bool:
        now = asyncio.get_running_loop().time()
        return self._read_at is None or now - self._read_at >= self._min_interval
