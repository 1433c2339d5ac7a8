"""A durable consumer's backlog, in-flight and redelivered counts, sampled from JetStream.

JetStream knows these per consumer (consumer info); each service samples its own durables on
a timer and exports them as gauges labelled by consumer. Every replica samples the same
durable, so dashboards take `max by (consumer)`.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext

from dexec.bus.subjects import STREAM
from dexec.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING, CONSUMER_REDELIVERED
from dexec.periodic import Periodic

log = logging.getLogger(__name__)

# One consumer-info request per durable this often: a few requests a minute per replica.
SAMPLE_INTERVAL_SECONDS = 5.0


class ConsumerSampler:
    def __init__(
        self, js: JetStreamContext, durable: str, interval: float = SAMPLE_INTERVAL_SECONDS
    ) -> None:
        self._js = js
        self._durable = durable
        self._pending = CONSUMER_PENDING.labels(durable)
        self._ack_pending = CONSUMER_ACK_PENDING.labels(durable)
        self._redelivered = CONSUMER_REDELIVERED.labels(durable)
        self._timer = Periodic(self.sample, interval, f"sampling consumer {durable}")

    async def start(self) -> None:
        await self.sample()  # so the gauges have values from the first scrape on
        self._timer.start()

    async def stop(self) -> None:
        await self._timer.stop()

    async def sample(self) -> None:
        try:
            info = await self._js.consumer_info(STREAM, self._durable)
        except Exception as exc:  # NATS restarting: keep the last values, try again later
            log.debug("consumer info for %s failed: %r", self._durable, exc)
            return
        self._pending.set(info.num_pending or 0)
        self._ack_pending.set(info.num_ack_pending or 0)
        self._redelivered.set(info.num_redelivered or 0)
