"""indexes so cost stays flat with history: the dashboard's sold orders per day (it read every
sold order ever made through the status index) and the nightly prune of applied webhook
events (it scanned the table)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_status_day", "orders", ["status", "day"], unique=False)
    op.create_index(
        "ix_webhook_events_received_at", "webhook_events", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_received_at", table_name="webhook_events")
    op.drop_index("ix_orders_status_day", table_name="orders")
