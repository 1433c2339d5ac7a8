"""Landings against a NATS server of its own, which the test restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from dexec.bus.connection import connect, ensure_key_value
from dexec.bus.subjects import CHAIN_BUCKET
from dexec.market.landings import Landings
from dexec.settings import CommonSettings
from dexec_tools.servers import NatsServer
from tests.support.waiting import eventually

OLD_RECORDS = 500


class SeenLandings(Landings):
    """Landings that note every write handed to them: (key, consumer that delivered it)."""

    def __init__(self, bucket: str) -> None:
        super().__init__(bucket)
        self.seen: list[tuple[str, str]] = []

    async def _on_msg(self, msg: Msg) -> None:
        self.seen.append((msg.subject.rsplit(".", 1)[-1], msg.metadata.consumer))
        await super()._on_msg(msg)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


async def test_landings_that_saw_nothing_yet_resume_after_the_bucket_after_a_nats_restart(
    nats_server: NatsServer,
) -> None:
    """nats-py recreates the ordered consumer after the restart (its ephemeral, in-memory
    consumer is gone): Landings had been handed nothing yet, and must not be sent the bucket's
    older records then (they would queue ahead of real landings), only the new write."""
    settings = CommonSettings(nats_url=nats_server.url)
    nc = await connect(settings, "test-landings")
    js = nc.jetstream()
    kv = await ensure_key_value(js, CHAIN_BUCKET, 1)
    await asyncio.gather(*(kv.create(f"old-{n}", b'{"slot": 1}') for n in range(OLD_RECORDS)))

    landings = SeenLandings(CHAIN_BUCKET)
    await landings.start(js, heartbeat_seconds=0.5)  # recreated after a second without them
    try:
        assert landings._sub is not None
        first_consumer = (await landings._sub.consumer_info()).name
        await asyncio.to_thread(nats_server.restart)

        async def reconnected() -> bool:
            return nc.is_connected

        await eventually(reconnected, what="the connection back")
        with landings.expect("new") as landing:
            await kv.create("new", b'{"slot": 2}')

            async def landed() -> bool:
                return landing.done()

            await eventually(
                landed,
                what="the new write handed to its waiter",
                explain=lambda: _summary(landings.seen),
            )
        assert landing.result() == b'{"slot": 2}'
    finally:
        await landings.stop()
        await nc.close()
    assert [key for key, _ in landings.seen] == ["new"], await _summary(landings.seen)
    # Delivered by the consumer nats-py recreated, so the reset is what this test exercised.
    assert landings.seen[0][1] != first_consumer


async def test_landings_on_an_empty_bucket_get_its_first_write(
    nats_server: NatsServer,
) -> None:
    settings = CommonSettings(nats_url=nats_server.url)
    nc = await connect(settings, "test-landings")
    js = nc.jetstream()
    kv = await ensure_key_value(js, CHAIN_BUCKET, 1)
    landings = SeenLandings(CHAIN_BUCKET)
    await landings.start(js)
    try:
        with landings.expect("first") as landing:
            await kv.create("first", b'{"slot": 1}')
            assert await asyncio.wait_for(landing, 10) == b'{"slot": 1}'
    finally:
        await landings.stop()
        await nc.close()
    assert [key for key, _ in landings.seen] == ["first"]


async def _summary(seen: list[tuple[str, str]]) -> str:
    old = sum(key.startswith("old-") for key, _ in seen)
    return f"{len(seen)} writes handed over, {old} of them old records"
