"""A recorder running on a real stream, and the events it terminates, for integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from dexec.bus.publisher import MSG_ID_HEADER
from dexec.bus.subjects import RECORDER_CONSUMER, STREAM, event_subject
from dexec.db.engine import create_engine
from dexec.orders.events import OrderEvent
from dexec_notifier.recorder import Recorder
from dexec_notifier.settings import NotifierSettings


async def publish(js: JetStreamContext, event: OrderEvent, msg_id: str | None = None) -> int:
    """Put an event on the stream as the services do; its stream sequence."""
    subject = event_subject(event.event, event.order_id)
    headers = {MSG_ID_HEADER: msg_id or event.msg_id}
    return (await js.publish(subject, event.to_json(), stream=STREAM, headers=headers)).seq


async def terminations(nats_url: str) -> tuple[nats.NATS, list[int]]:
    """A connection that collects the stream sequences of the recorder's `term`s, as JetStream
    announces them."""
    nc = await nats.connect(nats_url)
    terminated: list[int] = []

    async def noted(msg: Msg) -> None:
        terminated.append(orjson.loads(msg.data)["stream_seq"])

    subject = f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{STREAM}.{RECORDER_CONSUMER.durable}"
    await nc.subscribe(subject, cb=noted)
    await nc.flush()
    return nc, terminated


@contextlib.asynccontextmanager
async def recording(
    js: JetStreamContext, nats_url: str, database_url: str
) -> AsyncIterator[tuple[AsyncEngine, list[int]]]:
    """A recorder running on the stream: its engine, and the stream sequences it terminates
    (`terminations`); stopped, and all closed, at the end."""
    engine = create_engine(database_url, 2)
    recorder = Recorder(js, engine, NotifierSettings(nats_url=nats_url, database_url=database_url))
    nc, terminated = await terminations(nats_url)
    await recorder.start()
    try:
        yield engine, terminated
    finally:
        await recorder.stop()
        await engine.dispose()
        await nc.close()
