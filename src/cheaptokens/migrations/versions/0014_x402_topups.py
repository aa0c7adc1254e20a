"""x402 top-ups: an x402 payment may pay for a top-up

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("x402_payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topup_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_x402_payments_topup_id"), ["topup_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("x402_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_x402_payments_topup_id"))
        batch_op.drop_column("topup_id")
