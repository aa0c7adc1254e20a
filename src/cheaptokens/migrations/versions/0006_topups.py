"""top-ups: more credit for a sold key

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topups",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("quote_id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("credit_cents", sa.BigInteger(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("holds", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("checkout_expires_at", sa.DateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("payment_provider", sa.String(length=16), nullable=False),
        sa.Column("payment_reference", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("payment_ref", sa.String(length=255), nullable=True),
        sa.Column("paid_cents", sa.BigInteger(), nullable=True),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("raised_to_cents", sa.BigInteger(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("refund_ref", sa.String(length=255), nullable=True),
        sa.Column("refunded_at", sa.DateTime(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.name"], name=op.f("fk_topups_account_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_topups_quote_id_quotes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
        sa.UniqueConstraint(
            "order_id", "idempotency_key", name=op.f("uq_topups_order_id_idempotency_key")
        ),
        sa.UniqueConstraint("quote_id", name=op.f("uq_topups_quote_id")),
    )
    op.create_index(op.f("ix_topups_order_id"), "topups", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_topups_order_id"), table_name="topups")
    op.drop_table("topups")
