"""x402 purchases: payments by authorization, sign-in-with-x nonces, standing orders

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "x402_payments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=66), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("standing_id", sa.String(length=40), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("valid_before", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("requirements", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("settle_attempts", sa.Integer(), nullable=False),
        sa.Column("settle_unknown", sa.Boolean(), nullable=False),
        sa.Column("transaction", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_x402_payments")),
    )
    op.create_index(op.f("ix_x402_payments_payer"), "x402_payments", ["payer"], unique=False)
    op.create_index(op.f("ix_x402_payments_order_id"), "x402_payments", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_x402_payments_standing_id"), "x402_payments", ["standing_id"], unique=False
    )
    op.create_table(
        "siwx_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_siwx_nonces")),
    )
    op.create_index(op.f("ix_siwx_nonces_expires_at"), "siwx_nonces", ["expires_at"], unique=False)
    op.create_table(
        "standing_orders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("max_price_cents", sa.String(length=32), nullable=True),
        sa.Column("min_discount_percent", sa.String(length=32), nullable=True),
        sa.Column("valid_until", sa.DateTime(), nullable=False),
        sa.Column("key_models", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standing_orders")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_standing_orders_payment_id")),
        sa.UniqueConstraint("order_id", name=op.f("uq_standing_orders_order_id")),
    )
    op.create_index(op.f("ix_standing_orders_wallet"), "standing_orders", ["wallet"], unique=False)
    op.create_index(
        "ix_standing_orders_open", "standing_orders", ["status", "valid_until"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_standing_orders_open", table_name="standing_orders")
    op.drop_index(op.f("ix_standing_orders_wallet"), table_name="standing_orders")
    op.drop_table("standing_orders")
    op.drop_index(op.f("ix_siwx_nonces_expires_at"), table_name="siwx_nonces")
    op.drop_table("siwx_nonces")
    op.drop_index(op.f("ix_x402_payments_standing_id"), table_name="x402_payments")
    op.drop_index(op.f("ix_x402_payments_order_id"), table_name="x402_payments")
    op.drop_index(op.f("ix_x402_payments_payer"), table_name="x402_payments")
    op.drop_table("x402_payments")
