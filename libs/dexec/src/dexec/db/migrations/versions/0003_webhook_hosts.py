"""webhook_deliveries.host: POSTs in flight are limited per host

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows queued before are sent as before, outside any host's limit.
    op.add_column("webhook_deliveries", sa.Column("host", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "host")
