"""accounts: Venice's key counts as the watch last read them (the dashboard shows them)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("venice_live_keys", sa.Integer(), nullable=True))
    op.add_column("accounts", sa.Column("venice_keys_last_minute", sa.Integer(), nullable=True))
    op.add_column("accounts", sa.Column("keys_read_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("accounts", "keys_read_at")
    op.drop_column("accounts", "venice_keys_last_minute")
    op.drop_column("accounts", "venice_live_keys")
