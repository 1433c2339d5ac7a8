"""orders and order_events

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token_in", sa.String(16), nullable=True),
        sa.Column("token_out", sa.String(16), nullable=True),
        sa.Column("amount_in", sa.Numeric(40, 0), nullable=True),
        sa.Column("slippage_bps", sa.Integer, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", JSONB, nullable=True),
        sa.Column("route", JSONB, nullable=True),
        sa.Column("submission", JSONB, nullable=True),
        sa.Column("execution", JSONB, nullable=True),
        sa.Column("failure", JSONB, nullable=True),
        sa.Column("last_retry", JSONB, nullable=True),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_created_id", "orders", ["created_at", "id"])
    op.create_index("ix_orders_tenant_created_id", "orders", ["tenant", "created_at", "id"])
    op.create_table(
        "order_events",
        sa.Column("msg_id", sa.String(96), primary_key=True),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSONB, nullable=False),
    )
    op.create_index("ix_order_events_order_id", "order_events", ["order_id"])


def downgrade() -> None:
    op.drop_table("order_events")
    op.drop_table("orders")
