"""Webhooks: every event of an order that has a `webhookUrl` is POSTed to it, in order, signed.

A durable consumer (`webhooks`) sees every event. Whether its order has a URL is known from the
subject (`orders.<event>.<orderId>`) and a per-order cache filled from the order's `pending`
event, so the events of the (many) orders without one are acked without being parsed. Per order
it delivers in stream order: an event waits (is redelivered later) until its predecessor was
delivered, and the last delivered sequence per order lives in a NATS KV bucket, so it holds
across notifier replicas and restarts. A failed POST is retried with exponential backoff; an
event still undelivered after `webhook_give_up_seconds` is dropped and logged, so one dead
receiver cannot stall forever. Each POST of a sampled order is a span in the order's trace.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime

import httpx
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from dexec import tracing
from dexec.bus.history import read_order_events
from dexec.bus.pull import PullLoop
from dexec.bus.subjects import (
    STREAM,
    WEBHOOK_BUCKET,
    WEBHOOK_CONSUMER,
    event_subject,
    parse_event_subject,
)
from dexec.metrics import EVENTS_CONSUMED, Children
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType
from dexec.telemetry import ORDER_ID
from dexec.webhook_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from dexec_notifier.client_events import client_message
from dexec_notifier.metrics import WEBHOOK_DELIVERIES
from dexec_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

URL_CACHE_SIZE = 100_000
CONSUMED = Children(EVENTS_CONSUMED, WEBHOOK_CONSUMER.durable).bind(EventType)
DELIVERED = WEBHOOK_DELIVERIES.labels("delivered")
DROPPED = WEBHOOK_DELIVERIES.labels("dropped")


class WebhookDispatcher:
    def __init__(self, js: JetStreamContext, settings: NotifierSettings) -> None:
        self._js = js
        self._settings = settings
        self._pull = PullLoop(
            js, settings, WEBHOOK_CONSUMER, self._process, concurrency=settings.webhook_concurrency
        )
        self._http = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)
        self._kv: KeyValue | None = None
        # order id -> its webhook URL (or None): looked up once from the order's `pending`.
        self._urls: OrderedDict[str, str | None] = OrderedDict()

    async def start(self) -> None:
        try:
            self._kv = await self._js.key_value(WEBHOOK_BUCKET)
        except BucketNotFoundError:
            ttl = float(self._settings.stream_max_age_seconds)
            self._kv = await self._js.create_key_value(bucket=WEBHOOK_BUCKET, history=1, ttl=ttl)
        await self._pull.start()

    async def stop(self) -> None:
        await self._pull.stop()
        await self._http.aclose()

    async def _process(self, msg: Msg) -> None:
        named = parse_event_subject(msg.subject)
        # A later event of an order known to have no URL is acked unparsed. The `pending`
        # event, the order's first, is parsed (it is small) and fills the cache itself.
        if named is not None and named[0] != EventType.PENDING:
            event_type, order_id = named
            ORDER_ID.set(order_id)  # this task's logs name the order
            try:
                if await self._url_of(order_id) is None:
                    CONSUMED[event_type].inc()
                    await msg.ack()
                    return
            except Exception as exc:  # NATS restarting: the message comes back after ack_wait
                log.warning("webhook handling failed: %r", exc, extra={"order_id": order_id})
                return
        try:
            event = OrderEvent.from_json(msg.data)
        except ValidationError:
            await msg.term()
            return
        CONSUMED[event.event].inc()
        ORDER_ID.set(event.order_id)
        if event.event == EventType.PENDING:
            self._remember(event.order_id, event.data.get("webhookUrl"))
        try:
            await self._handle(msg, event)
        except Exception as exc:  # NATS restarting: the message comes back after ack_wait
            log.warning("webhook handling failed: %r", exc, extra={"order_id": event.order_id})

    async def _handle(self, msg: Msg, event: OrderEvent) -> None:
        url = await self._url_of(event.order_id)
        seq = msg.metadata.sequence.stream
        if url is None:
            await msg.ack()
            return
        delivered, revision = await self._delivered(event.order_id)
        if seq <= delivered:
            await msg.ack()  # a redelivery of what the receiver already has
            return
        if await self._predecessor(event.order_id, seq) > delivered:
            await self._later(msg, event, "waiting for the previous event")
            return
        if await self._post(url, seq, event, tracing.extract_sampled(msg.headers)):
            DELIVERED.inc()
        elif self._age(event) < self._settings.webhook_give_up_seconds:
            await self._later(msg, event, "the receiver failed")
            return
        else:
            DROPPED.inc()
            log.error(
                "webhook gave up on event %s", event.msg_id, extra={"order_id": event.order_id}
            )
        await self._mark_delivered(event.order_id, seq, revision)
        await msg.ack()

    async def _url_of(self, order_id: str) -> str | None:
        if order_id in self._urls:
            self._urls.move_to_end(order_id)
            return self._urls[order_id]
        # Not seen here yet (another replica got its `pending`, or a restart): read it.
        try:
            subject = event_subject(EventType.PENDING, order_id)
            raw = await self._js.get_last_msg(STREAM, subject, direct=True)
            url = OrderEvent.from_json(raw.data or b"").data.get("webhookUrl")
        except NotFoundError:
            url = None
        self._remember(order_id, url)
        return url

    def _remember(self, order_id: str, url: str | None) -> None:
        self._urls[order_id] = url
        self._urls.move_to_end(order_id)
        if len(self._urls) > URL_CACHE_SIZE:
            self._urls.popitem(last=False)

    async def _delivered(self, order_id: str) -> tuple[int, int]:
        """The last delivered sequence for the order and its KV revision (0, 0 if none)."""
        assert self._kv is not None
        try:
            entry = await self._kv.get(order_id)
        except KeyNotFoundError:
            return 0, 0
        return int(entry.value or b"0"), entry.revision or 0

    async def _mark_delivered(self, order_id: str, seq: int, revision: int) -> None:
        assert self._kv is not None
        if revision:
            await self._kv.update(order_id, str(seq).encode(), last=revision)
        else:
            await self._kv.create(order_id, str(seq).encode())

    async def _predecessor(self, order_id: str, seq: int) -> int:
        """The stream sequence of the order's event just before `seq` (0 if it is the first)."""
        earlier = [s.seq for s in await read_order_events(self._js, order_id) if s.seq < seq]
        return max(earlier, default=0)

    async def _post(self, url: str, seq: int, event: OrderEvent, trace: Context | None) -> bool:
        if trace is None:
            return await self._send(url, seq, event)
        span_name = f"webhook {event.event}"
        scope = tracing.tracer("dexec.notifier")
        with scope.start_as_current_span(span_name, context=trace, kind=SpanKind.CLIENT) as span:
            span.set_attributes({"dexec.order_id": event.order_id, "dexec.seq": seq})
            delivered = await self._send(url, seq, event)
            span.set_attribute("dexec.webhook.delivered", delivered)
            return delivered

    async def _send(self, url: str, seq: int, event: OrderEvent) -> bool:
        body = orjson.dumps(client_message(seq, event))
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Dexec-Event-Id": event.msg_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._settings.webhook_secret, timestamp, body),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.info("webhook POST failed: %r", exc, extra={"order_id": event.order_id})
            return False
        return response.is_success

    async def _later(self, msg: Msg, event: OrderEvent, why: str) -> None:
        s = self._settings
        attempt = msg.metadata.num_delivered
        delay = min(
            s.webhook_backoff_base_seconds * 2 ** (attempt - 1), s.webhook_backoff_max_seconds
        )
        log.debug(
            "webhook for %s later (%s)", event.msg_id, why, extra={"order_id": event.order_id}
        )
        await msg.nak(delay=delay)

    @staticmethod
    def _age(event: OrderEvent) -> float:
        return (datetime.now(UTC) - event.at).total_seconds()
