"""money safety: live balances, withheld stock, key models, key replacement, pro-rata refunds,
idempotency keys scoped to the client, unpaid holds per client

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite has both natively): a batch copy of ``accounts`` would
    # drop a table that ``account_days`` references.
    op.add_column("accounts", sa.Column("diem_balance_cents", sa.BigInteger(), nullable=True))
    op.add_column(
        "account_days",
        sa.Column("withheld_cents", sa.BigInteger(), server_default="0", nullable=False),
    )
    # Keys sold before this revision could call every model.
    op.add_column(
        "orders", sa.Column("key_models", sa.String(length=8), server_default="all", nullable=False)
    )
    op.add_column("orders", sa.Column("key_credit_cents", sa.BigInteger(), nullable=True))
    op.add_column(
        "orders",
        sa.Column("spent_before_cents", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column("orders", sa.Column("replace_started_at", sa.DateTime(), nullable=True))
    op.add_column("orders", sa.Column("replace_reason", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("refund_due_cents", sa.BigInteger(), nullable=True))
    op.add_column("quotes", sa.Column("client", sa.String(length=64), nullable=True))
    op.create_index("ix_quotes_client_status", "quotes", ["client", "status"], unique=False)
    # An Idempotency-Key is the client's: another client's key never finds its order.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("uq_orders_idempotency_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_orders_client_idempotency_key", ["client", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("uq_orders_client_idempotency_key", type_="unique")
        batch_op.create_unique_constraint("uq_orders_idempotency_key", ["idempotency_key"])
    for column in (
        "refund_due_cents",
        "replace_reason",
        "replace_started_at",
        "spent_before_cents",
        "key_credit_cents",
        "key_models",
    ):
        op.drop_column("orders", column)
    op.drop_index("ix_quotes_client_status", table_name="quotes")
    op.drop_column("quotes", "client")
    op.drop_column("account_days", "withheld_cents")
    op.drop_column("accounts", "diem_balance_cents")
