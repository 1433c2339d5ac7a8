"""Webhooks: every event of an order that has a `webhookUrl` is POSTed to it, in order, signed.

The recorder queues these events in `webhook_deliveries` (an outbox) in the transaction that
records them, so only orders with a URL cost anything here: no consumer of the stream reads
every event to find the few that have somewhere to go. A dispatcher on every notifier replica
claims due rows with `FOR UPDATE SKIP LOCKED` and a lease (so two replicas never POST one
event at once, and a replica that dies mid-POST leaves the row to another when the lease
runs out), posts, then marks the row delivered or schedules a retry with exponential backoff.
At most `webhook_host_concurrency` of a replica's POSTs go to one host (the URL's host name)
at once: a claim takes for each host no more than its room, so a receiver that never answers
cannot hold every slot for its timeout.
A POST, from its connect to its answer's last byte, takes at most `webhook_timeout_seconds`
(else it failed, as any timeout), and starts only while that much of its lease is left (the
checks before it may have been slow), so none outlives its lease. Every write after the claim
requires the `lease_until` the claim set: a replica whose lease ran out while it checked (and
which another replica has claimed the row from since) changes nothing, so it can neither free
the row under the new holder (which would have it POSTed a third time, beside the second) nor
settle it. Per order only the earliest
undelivered event is due, so a receiver sees an order's events in order, each at least once.
An event still undelivered `webhook_give_up_seconds` after it happened is dropped and logged,
so one dead receiver cannot stall forever (nor for NATS being unreachable: see below). A
target the deployment refuses (`dexec.webhook_targets`: localhost, or a name or address that
is not public, unless `webhook_allow_private_targets`) is dropped at once, never retried; the
client checks it when it connects (`webhook_client`). So is a URL the client cannot parse
(or whose scheme it does not speak). Each POST of a sampled order is a span in
the order's trace.

"Earliest undelivered" sees only the events already recorded, and recorder replicas commit
their batches in any order: replica A's batch may hold an order's event at stream seq 2 while
B's, holding seq 3, commits first. So before it POSTs the event at stream seq N, a dispatcher
confirms that the order's events before it in the stream (the source of truth) are recorded,
and so queued ahead of it (`_earlier_recorded`), cheapest check first:
- an order's `pending` is its first event: nothing comes before it, nothing to check;
- every message at or below the `recorder` durable's ack floor has been recorded, or
  terminated as never recordable (nothing to wait for): with the floor read before the claim
  (one consumer info per dispatch round), an event at most one above it needs nothing more;
- above that, the order's history is read from the stream (one read for the delivery, of the
  few orders with a webhook), and each of its events between the floor and N must be in
  `order_events`, with no undelivered row ahead of N (it may have been queued since the claim).
An event not confirmed is put back, not counted as an attempt, for `webhook_poll_seconds`.
One whose earlier event is known unrecorded `webhook_give_up_seconds` after it happened is
dropped, like any other (and so is one whose history cannot be parsed). One that cannot be
checked because NATS is unreachable is held for as long as the outage lasts, never dropped for
its age: the outage is not the receiver's fault, and Postgres already holds the event.

The dispatcher wakes when this replica's recorder queued something, when one of its own POSTs
ends (the order's next event may be due), at its own earliest retry, and otherwise every
`webhook_poll_seconds` (rows other replicas queued, leases that ran out).

Every Postgres call gives up after `db_timeout_seconds` (`dexec.db.bounded`): a claim given
up on is tried on the next round, a delivery whose check or update is given up on is left on
its lease and claimed again when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import httpx
import nats.errors
import orjson
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Interval,
    TableClause,
    Text,
    Update,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dexec import tracing
from dexec.backoff import doubling_delay
from dexec.bus.history import read_order_events
from dexec.bus.recorded_floor import read_recorded_floor
from dexec.bus.subjects import RETIRED_WEBHOOK_BUCKET, RETIRED_WEBHOOK_DURABLE, STREAM
from dexec.db.bounded import DatabaseUnavailable, read_within, write_within
from dexec.db.models import OrderEventRow, WebhookDeliveryRow, WebhookState
from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType
from dexec.telemetry import ORDER_ID
from dexec.webhook_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from dexec.webhook_targets import RefusedTarget
from dexec_notifier.client_events import client_message
from dexec_notifier.metrics import DB_FAILURES, WEBHOOK_DELIVERIES, WEBHOOK_HOLDS
from dexec_notifier.settings import DEVELOPMENT_WEBHOOK_SECRET, NotifierSettings
from dexec_notifier.webhook_client import webhook_client

log = logging.getLogger(__name__)
T = TypeVar("T")

DELIVERED = WEBHOOK_DELIVERIES.labels("delivered")
DROPPED = WEBHOOK_DELIVERIES.labels("dropped")
REFUSED = WEBHOOK_DELIVERIES.labels("refused")
# Exported from the start (at 0), as a dashboard's rate of them needs a series.
GIVEN_UP = {call: DB_FAILURES.labels(call=call) for call in ("claim", "check", "update")}

WEBHOOKS = WebhookDeliveryRow.__table__
EVENTS = OrderEventRow.__table__
# How many of the earliest due rows a claim looks through to share out among hosts.
CLAIM_SCAN_ROWS = 2048


def _due(rows: TableClause) -> list[ColumnElement[bool]]:
    """Whether a row of `rows` (the outbox, or an alias of it) may be claimed now."""
    earlier = WEBHOOKS.alias()
    return [
        rows.c.state == WebhookState.PENDING,
        rows.c.next_attempt_at <= func.now(),
        or_(rows.c.lease_until.is_(None), rows.c.lease_until < func.now()),
        # The order's earlier events go first (in flight or waiting for a retry).
        ~exists().where(
            earlier.c.order_id == rows.c.order_id,
            earlier.c.state == WebhookState.PENDING,
            earlier.c.seq < rows.c.seq,
        ),
    ]


# Each host gets at most its room: `host_cap` less the POSTs this replica has under way to it
# (`posting_hosts`, `posting_counts`), its earliest rows first. Done here, not by handing
# back what a claim took beyond it: a host with a backlog would otherwise fill every claim
# with rows to hand back. The ranking sees the earliest CLAIM_SCAN_ROWS due rows (a window
# function cannot sit in the query that locks). Rows without a host have no limit.
_scan = WEBHOOKS.alias("scan")
_scanned = (
    select(_scan.c.msg_id, _scan.c.host, _scan.c.next_attempt_at, _scan.c.seq)
    .where(*_due(_scan))
    .order_by(_scan.c.next_attempt_at, _scan.c.seq)
    .limit(CLAIM_SCAN_ROWS)
    .subquery("scanned")
)
_ranked = select(
    _scanned.c.msg_id,
    _scanned.c.host,
    func.row_number()
    .over(partition_by=_scanned.c.host, order_by=(_scanned.c.next_attempt_at, _scanned.c.seq))
    .label("place"),
).subquery("ranked")
_posting = (
    func.unnest(
        bindparam("posting_hosts", type_=ARRAY(Text)),
        bindparam("posting_counts", type_=ARRAY(Integer)),
    )
    .table_valued("host", "posts")
    .render_derived(name="posting")
)
_room = bindparam("host_cap", type_=Integer) - func.coalesce(
    select(_posting.c.posts).where(_posting.c.host == _ranked.c.host).scalar_subquery(), 0
)
_within_room = select(_ranked.c.msg_id).where(
    or_(_ranked.c.host.is_(None), _ranked.c.place <= _room)
)
_claimable = (
    select(WEBHOOKS.c.msg_id)
    # Checked again on the row it locks: another replica may have claimed it meanwhile.
    .where(*_due(WEBHOOKS), WEBHOOKS.c.msg_id.in_(_within_room))
    .order_by(WEBHOOKS.c.next_attempt_at, WEBHOOKS.c.seq)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
    .cte("due")
)
# Take up to `limit` due rows for `lease`, with the events to send.
CLAIM = (
    update(WEBHOOKS)
    .where(WEBHOOKS.c.msg_id == _claimable.c.msg_id, EVENTS.c.msg_id == WEBHOOKS.c.msg_id)
    .values(
        lease_until=func.now() + bindparam("lease", type_=Interval),
        attempts=WEBHOOKS.c.attempts + 1,
    )
    .returning(
        WEBHOOKS.c.msg_id,
        WEBHOOKS.c.lease_until,
        WEBHOOKS.c.seq,
        WEBHOOKS.c.url,
        WEBHOOKS.c.host,
        WEBHOOKS.c.attempts,
        WEBHOOKS.c.traceparent,
        EVENTS.c.order_id,
        EVENTS.c.event,
        EVENTS.c.status,
        EVENTS.c.at,
        EVENTS.c.attempt,
        EVENTS.c.data,
    )
)


# Room left between a POST's deadline and its lease's end.
LEASE_MARGIN_SECONDS = 1.0
# Of a receiver's answer, at most this much is read (the status decides; the body is unused).
ANSWER_BYTES_READ = 64 * 1024


class Sent(StrEnum):
    """What became of one POST."""

    DELIVERED = "delivered"  # answered 2xx
    FAILED = "failed"  # no answer, or not 2xx: worth retrying
    REFUSED = "refused"  # a target this deployment does not POST to


@dataclass(frozen=True)
class Delivery:
    msg_id: str
    seq: int
    url: str
    host: str | None  # None: queued before hosts were kept, outside any host's limit
    attempts: int
    trace: Context | None
    event: OrderEvent
    # When the lease runs out at the latest (monotonic clock): taken before the claim was sent,
    # so never later than Postgres' own `lease_until`.
    lease_ends: float
    # Postgres' `lease_until` as this claim set it: every later write to the row requires it
    # (`_leased`), so a replica whose lease ran out, and was claimed again elsewhere, can
    # neither free the row under the new holder nor settle it.
    lease_token: datetime

    def may_post(self, now: float, post_seconds: float) -> bool:
        """Whether a POST taking up to `post_seconds` started `now` ends inside the lease: a
        POST outliving its lease could go out beside another replica's of the same event."""
        return now + post_seconds + LEASE_MARGIN_SECONDS <= self.lease_ends

    @classmethod
    def of(cls, row: Any, lease_ends: float) -> Delivery:
        event = OrderEvent(
            order_id=row.order_id,
            event=row.event,
            status=row.status,
            at=row.at,
            attempt=row.attempt,
            data=row.data,
        )
        trace = tracing.extract_sampled({tracing.TRACEPARENT: row.traceparent})
        return cls(
            row.msg_id,
            row.seq,
            row.url,
            row.host,
            row.attempts,
            trace,
            event,
            lease_ends,
            row.lease_until,
        )


class WebhookDispatcher:
    def __init__(
        self, engine: AsyncEngine, settings: NotifierSettings, js: JetStreamContext
    ) -> None:
        self._engine = engine
        self._js = js
        self._settings = settings
        self._http = webhook_client(
            settings.webhook_timeout_seconds,
            settings.webhook_allow_private_targets,
            settings.webhook_nameserver_list,
        )
        # A POST that outlived its lease could be sent twice: the lease outlasts the timeout,
        # which bounds each whole POST (`_send`), and a POST starts only while the rest of the
        # lease can hold it (`Delivery.may_post`), whatever the checks before it took.
        self._lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + 5)
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.Task[None] | None = None
        self._posting: set[asyncio.Task[None]] = set()
        self._per_host: Counter[str] = Counter()  # POSTs under way, by host

    async def start(self) -> None:
        if self._settings.webhook_secret == DEVELOPMENT_WEBHOOK_SECRET:
            # Receivers cannot trust such signatures: make a deployment that forgot it visible.
            log.warning(
                "webhooks are signed with the public development key: set DEXEC_WEBHOOK_SECRET"
            )
        self._loop = asyncio.create_task(self._dispatch_loop())

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; let POSTs under way finish (an unfinished one's lease runs out)."""
        if self._loop is not None:
            # Python 3.11's wait_for swallows a cancellation that lands as the wake does;
            # the flag ends the loop at its next turn even then.
            self._stopping = True
            self._loop.cancel()
            await asyncio.wait({self._loop})  # a cancellation of stop itself is not swallowed
        if self._posting:
            await asyncio.wait(self._posting, timeout=timeout)
        await self._http.aclose()

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            room = self._settings.webhook_concurrency - len(self._posting)
            claimed: list[Delivery] = []
            floor = 0
            if room > 0:
                # Read before the claim: what was recorded by then, the claim's check saw.
                floor = await self._recorded_floor()
                try:
                    claimed = await self._claim(room)
                except Exception as exc:  # Postgres restarting: try again on the next poll
                    log.warning("claiming webhook deliveries failed: %r", exc)
            for delivery in claimed:
                self._start(delivery, floor)
            if claimed and len(claimed) == room:
                continue  # there may be more due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.webhook_poll_seconds)

    def _start(self, delivery: Delivery, floor: int) -> None:
        task = asyncio.create_task(self._deliver(delivery, floor))
        self._posting.add(task)
        if delivery.host is not None:
            self._per_host[delivery.host] += 1
        task.add_done_callback(functools.partial(self._posted, delivery.host))

    def _posted(self, host: str | None, task: asyncio.Task[None]) -> None:
        self._posting.discard(task)
        if host is not None:
            self._per_host[host] -= 1
            if not self._per_host[host]:
                del self._per_host[host]
        self._wake.set()  # room for more, and the order's next event may be due

    async def _claim(self, limit: int) -> list[Delivery]:
        """Up to `limit` due rows, leased to this replica; to each host no more than its room
        under `webhook_host_concurrency`, counting the POSTs under way to it here."""
        lease_ends = time.monotonic() + self._lease.total_seconds()
        parameters = {
            "limit": limit,
            "lease": self._lease,
            "host_cap": self._settings.webhook_host_concurrency,
            "posting_hosts": list(self._per_host),
            "posting_counts": list(self._per_host.values()),
        }

        async def claim(conn: AsyncConnection) -> list[Delivery]:
            rows = await conn.execute(CLAIM, parameters)
            return [Delivery.of(row, lease_ends) for row in rows]

        return await self._in_postgres("claim", claim, write=True)

    async def _in_postgres(
        self, call: str, work: Callable[[AsyncConnection], Awaitable[T]], *, write: bool
    ) -> T:
        """`work` on a pooled connection (in a transaction if it writes), given up on after
        `db_timeout_seconds`; counted by `call` if it fails."""
        bounded = write_within if write else read_within
        try:
            return await bounded(self._engine, work, self._settings.db_timeout_seconds)
        except DatabaseUnavailable:
            GIVEN_UP[call].inc()
            raise

    async def _update(self, statement: Update) -> None:
        async def execute(conn: AsyncConnection) -> None:
            await conn.execute(statement)

        await self._in_postgres("update", execute, write=True)

    async def _recorded_floor(self) -> int:
        """The stream seq at and below which the recorder has finished every message (recorded
        it, or terminated it as never recordable): its durable's ack floor; 0 if unknown."""
        try:
            return await read_recorded_floor(self._js)
        except Exception as exc:  # NATS away, or no recorder yet: read the histories instead
            log.info("reading the recorder's ack floor failed: %r", exc)
            return 0

    async def _earlier_recorded(self, delivery: Delivery, floor: int) -> bool | None:
        """Whether the order's events before this one in the stream were all recorded (or
        terminated by the recorder) before the claim, None if NATS cannot be reached to tell;
        see the module's docstring.

        `floor` is the recorder's ack floor as read before the claim."""
        if delivery.event.event == EventType.PENDING or delivery.seq <= floor + 1:
            return True
        order_id = delivery.event.order_id
        try:
            stored = await read_order_events(self._js, order_id, after_seq=floor)
        except (nats.errors.Error, OSError) as exc:  # NATS away: cannot tell
            log.info("reading the events of order %s failed: %r", order_id, exc)
            return None
        except Exception as exc:  # an event no reader can parse: not confirmed
            log.warning("reading the events of order %s failed: %r", order_id, exc)
            return False
        earlier = {s.event.msg_id for s in stored if s.seq < delivery.seq}
        if not earlier:
            return True
        # One statement, so one snapshot: an earlier event recorded since the claim has its
        # row queued by now (in its batch, or in the `pending`'s, which came before this row),
        # and that row, undelivered, goes first.
        recorded = select(func.count()).where(EVENTS.c.msg_id.in_(earlier)).scalar_subquery()
        ahead = exists().where(
            WEBHOOKS.c.order_id == order_id,
            WEBHOOKS.c.state == WebhookState.PENDING,
            WEBHOOKS.c.seq < delivery.seq,
        )
        check = select((recorded == len(earlier)) & ~ahead)

        async def confirmed(conn: AsyncConnection) -> bool:
            return bool(await conn.scalar(check))

        return await self._in_postgres("check", confirmed, write=False)

    async def _deliver(self, delivery: Delivery, floor: int) -> None:
        event = delivery.event
        ORDER_ID.set(event.order_id)  # this task's logs name the order
        try:
            earlier = await self._earlier_recorded(delivery, floor)
            if not earlier:
                # Cannot tell (NATS away): wait out the outage, however long.
                if earlier is None or _age(event) < self._settings.webhook_give_up_seconds:
                    WEBHOOK_HOLDS.inc()
                    await self._hold(delivery)
                else:
                    DROPPED.inc()
                    log.error(
                        "webhook gave up on event %s (earlier ones unrecorded)", delivery.msg_id
                    )
                    await self._settle(delivery, state=WebhookState.DROPPED)
                return
            if not delivery.may_post(time.monotonic(), self._settings.webhook_timeout_seconds):
                # The checks took most of the lease (a slow Postgres or NATS): the next claim
                # after the lease runs out posts it, here or on another replica.
                log.warning("webhook for %s: too little of its lease left to POST", delivery.msg_id)
                return
            sent = await self._post(delivery)
            if sent is Sent.DELIVERED:
                DELIVERED.inc()
                await self._settle(delivery, state=WebhookState.DELIVERED)
            elif sent is Sent.REFUSED:  # no retry would change that
                REFUSED.inc()
                await self._settle(delivery, state=WebhookState.DROPPED)
            elif _age(event) < self._settings.webhook_give_up_seconds:
                await self._retry_later(delivery)
            else:
                DROPPED.inc()
                log.error("webhook gave up on event %s", delivery.msg_id)
                await self._settle(delivery, state=WebhookState.DROPPED)
        except Exception as exc:  # Postgres restarting: the lease runs out, the row comes back
            log.warning("webhook delivery failed: %r", exc)

    async def _settle(self, delivery: Delivery, state: str) -> None:
        values: dict[str, object] = {"state": state, "lease_until": None}
        if state == WebhookState.DELIVERED:
            values["delivered_at"] = func.now()
        await self._update(update(WEBHOOKS).where(_leased(delivery)).values(values))

    async def _hold(self, delivery: Delivery) -> None:
        """Put the row back until an earlier event of its order is recorded, or NATS can be
        reached to tell (not an attempt)."""
        delay = self._settings.webhook_poll_seconds
        log.debug("webhook for %s waits for earlier events of its order", delivery.msg_id)
        await self._update(
            update(WEBHOOKS)
            .where(_leased(delivery))
            .values(
                lease_until=None,
                attempts=delivery.attempts - 1,
                next_attempt_at=func.now() + timedelta(seconds=delay),
            )
        )
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _retry_later(self, delivery: Delivery) -> None:
        s = self._settings
        delay = doubling_delay(
            delivery.attempts, s.webhook_backoff_base_seconds, s.webhook_backoff_max_seconds
        )
        log.debug("webhook for %s in %.1f s", delivery.msg_id, delay)
        await self._update(
            update(WEBHOOKS)
            .where(_leased(delivery))
            .values(lease_until=None, next_attempt_at=func.now() + timedelta(seconds=delay))
        )
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _post(self, delivery: Delivery) -> Sent:
        if delivery.trace is None:
            return await self._send(delivery)
        event = delivery.event
        scope = tracing.tracer("dexec.notifier")
        with scope.start_as_current_span(
            f"webhook {event.event}", context=delivery.trace, kind=SpanKind.CLIENT
        ) as span:
            span.set_attributes({"dexec.order_id": event.order_id, "dexec.seq": delivery.seq})
            sent = await self._send(delivery)
            span.set_attributes(
                {
                    "dexec.webhook.delivered": sent is Sent.DELIVERED,
                    "dexec.webhook.sent": sent.value,
                }
            )
            return sent

    async def _send(self, delivery: Delivery) -> Sent:
        body = orjson.dumps(client_message(delivery.seq, delivery.event))
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Dexec-Event-Id": delivery.msg_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._settings.webhook_secret, timestamp, body),
        }
        limit = self._settings.webhook_timeout_seconds
        try:
            # httpx's timeout bounds each connect, write and read, not the request: a receiver
            # that trickles its answer a byte at a time would keep the POST alive past its
            # lease, and the row would be claimed and POSTed again alongside it. So the whole
            # POST, from the connect to the answer's last byte, gets the webhook timeout.
            async with (
                asyncio.timeout(limit),
                self._http.stream("POST", delivery.url, content=body, headers=headers) as answer,
            ):
                await _read_at_most(answer, ANSWER_BYTES_READ)
        except RefusedTarget as refusal:
            log.warning("webhook target refused, event %s dropped: %s", delivery.msg_id, refusal)
            return Sent.REFUSED
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as exc:
            # A URL the client cannot even parse (a host IDNA 2008 refuses, queued before the
            # API refused such hosts: httpx raises InvalidURL, or idna's own UnicodeError for
            # an `xn--` label), or whose scheme it does not speak, never will be sent:
            # retrying it would only hold the order's later events back until the give-up.
            # (InvalidURL is no HTTPError; UnsupportedProtocol is one, hence caught first.)
            log.warning("webhook URL unusable, event %s dropped: %s", delivery.msg_id, exc)
            return Sent.REFUSED
        except TimeoutError:
            log.info("webhook POST took longer than %.1f s in all", limit)
            return Sent.FAILED
        except httpx.HTTPError as exc:
            log.info("webhook POST failed: %r", exc)
            return Sent.FAILED
        except Exception:
            # Anything else is still this delivery's failure: it backs off and is dropped in
            # the end, instead of escaping and leaving the row to be claimed again forever.
            log.exception("webhook POST failed unexpectedly")
            return Sent.FAILED
        return Sent.DELIVERED if answer.is_success else Sent.FAILED


async def _read_at_most(answer: httpx.Response, limit: int) -> None:
    """Read a short answer to its end, so its connection can serve the next POST; stop at
    `limit` bytes (closing the connection), since the status is all that counts and a
    receiver's answer of any size would otherwise be held in memory."""
    read = 0
    async for chunk in answer.aiter_raw():
        read += len(chunk)
        if read >= limit:
            return


def _leased(delivery: Delivery) -> ColumnElement[bool]:
    """The delivery's row, while the lease its claim took still holds it."""
    return and_(
        WEBHOOKS.c.msg_id == delivery.msg_id, WEBHOOKS.c.lease_until == delivery.lease_token
    )


async def retire_webhook_consumer(js: JetStreamContext) -> None:
    """Remove the webhooks durable and bucket of releases before the outbox, if still there."""
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(STREAM, RETIRED_WEBHOOK_DURABLE)
        log.info("deleted the retired %r consumer", RETIRED_WEBHOOK_DURABLE)
    with contextlib.suppress(NotFoundError, BucketNotFoundError):
        await js.delete_key_value(RETIRED_WEBHOOK_BUCKET)
        log.info("deleted the retired %r bucket", RETIRED_WEBHOOK_BUCKET)


def _age(event: OrderEvent) -> float:
    return (datetime.now(UTC) - event.at).total_seconds()
