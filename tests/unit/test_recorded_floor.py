"""When `RecordedFloor` asks NATS for the recorder's ack floor, and what it answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from dexec.bus.recorded_floor import RecordedFloor


class Durable:
    """A JetStream context whose recorder durable has the ack floor `floor`; counts reads."""

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.reads = 0

    async def consumer_info(self, stream: str, durable: str) -> Any:
        self.reads += 1
        return SimpleNamespace(ack_floor=SimpleNamespace(stream_seq=self.floor))


async def test_a_seq_at_or_below_the_floor_last_read_needs_no_read() -> None:
    durable = Durable(floor=10)
    floor = RecordedFloor(durable, min_interval=0)  # type: ignore[arg-type]

    assert await floor.covers(7)
    assert durable.reads == 1
    assert await floor.covers(10)  # covered by the last reading: NATS is not asked
    assert durable.reads == 1


async def test_a_seq_above_it_is_read_again_and_judged_by_the_new_floor() -> None:
    durable = Durable(floor=10)
    floor = RecordedFloor(durable, min_interval=0)  # type: ignore[arg-type]

    assert not await floor.covers(11)
    durable.floor = 12
    assert await floor.covers(11)
    assert not await floor.covers(13)
    assert durable.reads == 3


async def test_reads_are_spaced_and_meanwhile_a_seq_above_is_not_covered() -> None:
    durable = Durable(floor=10)
    floor = RecordedFloor(durable, min_interval=3600)  # type: ignore[arg-type]

    assert await floor.covers(10)
    durable.floor = 20
    assert not await floor.covers(15)  # asked too recently: the caller reads the stream
    assert durable.reads == 1
