"""indexes for the queries every request and upkeep tick makes, so cost stays flat with history

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 12:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_pricing_params_valid", "pricing_params", ["valid_from", "valid_until"]),
    ("ix_quotes_created_at", "quotes", ["created_at"]),
    ("ix_orders_created_at", "orders", ["created_at"]),
    ("ix_orders_client_status", "orders", ["client", "status"]),
    ("ix_orders_account_status", "orders", ["account", "status"]),
    ("ix_pool_keys_due", "pool_keys", ["status", "expires_at"]),
    ("ix_account_days_day", "account_days", ["day"]),
    ("ix_ledger_kind_account_at", "ledger", ["kind", "account", "at"]),
    ("ix_alerts_kind_account_at", "alerts", ["kind", "account", "at"]),
    ("ix_topups_status_expires", "topups", ["status", "checkout_expires_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
