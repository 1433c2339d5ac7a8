"""Postgres tables: `orders` (current state), `order_events` (one row per stream event) and
`webhook_deliveries` (the webhook outbox: one row per event of an order with a webhook)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Numeric, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dexec.auth import TENANT_MAX_LENGTH


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_created_id", "created_at", "id"),
        Index("ix_orders_tenant_created_id", "tenant", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant: str | None = Field(default=None, max_length=TENANT_MAX_LENGTH)
    status: str = Field(max_length=16, index=True)
    token_in: str | None = Field(default=None, max_length=16)
    token_out: str | None = Field(default=None, max_length=16)
    amount_in: Decimal | None = Field(default=None, sa_column=Column(Numeric(40, 0)))
    slippage_bps: int | None = None
    attempts: int = 1
    last_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    spec: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    route: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    submission: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    execution: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    failure: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    last_retry: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))


class OrderEventRow(SQLModel, table=True):
    __tablename__ = "order_events"

    # The event's Nats-Msg-Id: recording the same event twice is a no-op.
    msg_id: str = Field(primary_key=True, max_length=96)
    order_id: str = Field(max_length=40, index=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    event: str = Field(max_length=16)
    status: str = Field(max_length=16)
    attempt: int
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class WebhookState:
    PENDING = "pending"
    DELIVERED = "delivered"
    DROPPED = "dropped"


class WebhookDeliveryRow(SQLModel, table=True):
    """One event to POST to its order's webhook, written by the recorder with the event.

    Per order only the earliest pending row is due, so an order's events arrive in order; a
    dispatcher holds a row by its lease while the POST is under way.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_order_seq", "order_id", "seq"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    # The event's message id, as in `order_events`: an event is queued once.
    msg_id: str = Field(primary_key=True, max_length=96)
    order_id: str = Field(max_length=40)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    url: str = Field(sa_column=Column(Text, nullable=False))
    # The URL's host (`dexec.webhook_targets.webhook_host`): POSTs in flight are limited per
    # host. None in rows queued before it was kept.
    host: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    state: str = Field(default=WebhookState.PENDING, max_length=16)
    attempts: int = 0
    # Set by the database's clock, as every comparison with it is: no skew between replicas.
    next_attempt_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The order's W3C trace context when its trace is sampled: the POST is a span in it.
    traceparent: str | None = Field(default=None, max_length=64)
