"""Reading orders: Postgres for finished orders, the stream while the recorder catches up
or while Postgres is not answering."""

from __future__ import annotations

import base64
import contextlib
import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from sqlalchemy import Row, RowMapping, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dexec.bus.history import read_order_events
from dexec.bus.recorded_floor import RecordedFloor
from dexec.bus.subjects import is_order_id
from dexec.db.bounded import DatabaseUnavailable, read_within
from dexec.db.models import OrderEventRow, OrderRow
from dexec.db.projection import view_from_row
from dexec.market.tokens import format_units, resolve_token
from dexec.orders.projection import OrderView, fold
from dexec.orders.states import OrderStatus, is_terminal
from dexec_api.errors import ApiError

log = logging.getLogger(__name__)


def event_json(
    seq: int, event: str, status: str, at: datetime, attempt: int, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "seq": seq,
        "event": event,
        "status": status,
        "at": at.isoformat(),
        "attempt": attempt,
        "data": data,
    }


def order_json(view: OrderView, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec = view.spec or {}
    body: dict[str, Any] = {
        "orderId": view.order_id,
        "status": str(view.status),
        "type": spec.get("type", "market"),
        "tokenIn": spec.get("tokenIn"),
        "tokenOut": spec.get("tokenOut"),
        "amountIn": spec.get("amountIn"),
        "amount": None,
        "slippageBps": spec.get("slippageBps"),
        "createdAt": spec.get("createdAt")
        or (view.created_at.isoformat() if view.created_at else None),
        "updatedAt": view.updated_at.isoformat() if view.updated_at else None,
        "attempts": view.attempts,
        "route": view.route,
        "submission": view.submission,
        "execution": view.execution,
        "failure": view.failure,
        "lastRetry": view.last_retry,
    }
    if spec.get("tokenIn") and spec.get("amountIn"):
        body["amount"] = format_units(resolve_token(spec["tokenIn"]), int(spec["amountIn"]))
    if events is not None:
        body["events"] = events
    return body


def not_found(order_id: str) -> ApiError:
    return ApiError(404, "ORDER_NOT_FOUND", f"no order {order_id}")


async def get_order(
    engine: AsyncEngine,
    js: JetStreamContext,
    floor: RecordedFloor,
    order_id: str,
    tenant: str | None,
    db_timeout: float,
) -> dict[str, Any]:
    """The order; with API keys on, another tenant's order does not exist for the caller.

    Postgres answers for a finished order whose every event the recorder has finished
    (`floor`: recorder replicas commit their batches in any order, so a row can end before its
    earlier events are in). Any other order may be further along in the stream (the recorder
    writes in batches, behind it), and a client that saw an event on its WebSocket must not
    read an older state here: it is folded from the stream, the source of truth, which also
    finds an order the recorder has not written at all yet, or not its `pending` (whose spec
    says whose the order is).

    While the stream cannot be read (NATS down), an order in Postgres is answered from its row,
    which may be behind; one that is not there yet, or not with its `pending`, is
    `503 BUS_UNAVAILABLE`: it may exist, and be the caller's.

    While Postgres fails, or does not answer within `db_timeout` seconds, the order is folded
    from the stream too; one the stream does not have is `503 DATABASE_UNAVAILABLE`: it may be
    in Postgres only (older than the stream's retention).
    """
    if not is_order_id(order_id):
        raise not_found(order_id)  # before any query: such an id names no order
    try:
        row, events = await read_within(engine, partial(_recorded, order_id=order_id), db_timeout)
        if row is None or row["spec"] is None:
            return await _not_recorded_yet(js, order_id, tenant)
        if tenant is not None and row["tenant"] != tenant:
            raise not_found(order_id)
        if events is None or not await _all_recorded(floor, row["last_seq"]):
            with contextlib.suppress(NatsError):  # else the row, as far as it goes
                if current := await _from_stream(js, order_id):
                    return order_json(*current)
        if events is None:
            read_events = partial(_recorded_events, order_id=order_id)
            events = await read_within(engine, read_events, db_timeout)
        return order_json(view_from_row(row), events)
    except DatabaseUnavailable as exc:
        log.warning(
            "Postgres unavailable, the order is read from the stream: %s",
            exc,
            extra={"order_id": order_id},
        )
        return await _without_postgres(js, order_id, tenant)


async def _all_recorded(floor: RecordedFloor, last_seq: int) -> bool:
    """Whether the recorder has finished every event up to the row's last (False if NATS
    cannot tell: then the stream cannot be read either, and the row is what there is)."""
    try:
        return await floor.covers(last_seq)
    except NatsError:
        return False


async def _recorded(
    conn: AsyncConnection, order_id: str
) -> tuple[RowMapping | None, list[dict[str, Any]] | None]:
    """The order's row, and its recorded events if it is finished (else None: not needed yet)."""
    row = (await conn.execute(select(OrderRow).where(OrderRow.id == order_id))).first()
    if row is None:
        return None, None
    if not is_terminal(OrderStatus(row.status)):
        return row._mapping, None
    return row._mapping, await _recorded_events(conn, order_id)


async def _recorded_events(conn: AsyncConnection, order_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(OrderEventRow).where(OrderEventRow.order_id == order_id).order_by(OrderEventRow.seq)
    )
    return [event_json(e.seq, e.event, e.status, e.at, e.attempt, e.data) for e in rows]


async def _not_recorded_yet(
    js: JetStreamContext, order_id: str, tenant: str | None
) -> dict[str, Any]:
    """An order Postgres does not have: the recorder may not have written it yet."""
    unreadable = ApiError(
        503,
        "BUS_UNAVAILABLE",
        "the order is not recorded yet and the stream cannot be read now: retry",
        {"orderId": order_id},
        {"Retry-After": "1"},
    )
    return await _answer_from_stream(
        js, order_id, tenant, unreadable=unreadable, missing=not_found(order_id)
    )


async def _without_postgres(
    js: JetStreamContext, order_id: str, tenant: str | None
) -> dict[str, Any]:
    """The order from the stream alone, while Postgres cannot be read."""
    unreadable = database_unavailable(
        "Postgres is not answering and the stream cannot be read now: retry", order_id
    )
    # Not a 404 when the stream lacks it: an order older than its retention is in Postgres only.
    missing = database_unavailable(
        "Postgres is not answering and the stream does not hold this order: retry", order_id
    )
    return await _answer_from_stream(js, order_id, tenant, unreadable=unreadable, missing=missing)


async def _answer_from_stream(
    js: JetStreamContext,
    order_id: str,
    tenant: str | None,
    *,
    unreadable: ApiError,
    missing: ApiError,
) -> dict[str, Any]:
    """The order folded from the stream; `unreadable` if NATS cannot be read now, `missing` if
    the stream has no such order; another tenant's order is not found."""
    try:
        current = await _from_stream(js, order_id)
    except NatsError as exc:
        raise unreadable from exc
    if current is None:
        raise missing
    if not _visible(current[0], tenant):
        raise not_found(order_id)
    return order_json(*current)


def database_unavailable(message: str, order_id: str | None = None) -> ApiError:
    details = {"orderId": order_id} if order_id else None
    return ApiError(503, "DATABASE_UNAVAILABLE", message, details, {"Retry-After": "1"})


def _visible(view: OrderView, tenant: str | None) -> bool:
    return tenant is None or (view.spec or {}).get("tenant") == tenant


async def _from_stream(
    js: JetStreamContext, order_id: str
) -> tuple[OrderView, list[dict[str, Any]]] | None:
    """The order folded from its events in the stream, and the events; None if it has none."""
    stored = await read_order_events(js, order_id)
    if not stored:
        return None
    view = fold(order_id, [(s.seq, s.event) for s in stored])
    events = [
        event_json(s.seq, s.event.event, s.event.status, s.event.at, s.event.attempt, s.event.data)
        for s in stored
    ]
    return view, events


def encode_cursor(created_at: datetime, order_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{order_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        stamp = datetime.fromisoformat(created)
        if stamp.tzinfo is None or not is_order_id(order_id):
            raise ValueError("this API hands out aware times and real order ids only")
        # In UTC, so a time Postgres cannot hold (year 0 after its offset) fails here.
        return stamp.astimezone(UTC), order_id
    except (ValueError, OverflowError) as exc:
        raise ApiError(422, "INVALID_CURSOR", "cursor is not one this API returned") from exc


async def list_orders(
    engine: AsyncEngine,
    tenant: str | None,
    status: OrderStatus | None,
    limit: int,
    cursor: str | None,
    db_timeout: float,
) -> dict[str, Any]:
    query = (
        select(OrderRow)
        # A row recorded before its `pending` is left out until that comes: it has no spec
        # yet to show or to tell whose it is, and its `created_at` is not final.
        .where(func.jsonb_typeof(OrderRow.spec) == "object")
        .order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
    )
    if tenant is not None:
        query = query.where(OrderRow.tenant == tenant)
    if status is not None:
        query = query.where(OrderRow.status == str(status))
    if cursor is not None:  # `cursor=` too: no cursor this API handed out is empty
        created, order_id = decode_cursor(cursor)
        query = query.where(
            or_(
                OrderRow.created_at < created,
                and_(OrderRow.created_at == created, OrderRow.id < order_id),
            )
        )

    async def page_rows(conn: AsyncConnection) -> list[Row[Any]]:
        return list(await conn.execute(query.limit(limit + 1)))

    try:
        rows = await read_within(engine, page_rows, db_timeout)
    except DatabaseUnavailable as exc:
        # The stream cannot list orders (it has no index by time or tenant): no fallback.
        log.warning("orders cannot be listed: %s", exc)
        raise database_unavailable(
            "orders are listed from Postgres, which is not answering now: retry"
        ) from exc
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
    )
    orders = [order_json(view_from_row(r._mapping)) for r in page]
    return {"orders": orders, "nextCursor": next_cursor}
