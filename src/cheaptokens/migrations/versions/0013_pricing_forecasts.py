"""learned demand forecasts (nightly refit), with their data and the operator's pin

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-26 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pricing_forecasts",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fitted_at", sa.DateTime(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("pinned_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_pricing_forecasts")),
    )
    op.create_index(
        op.f("ix_pricing_forecasts_window_end"),
        "pricing_forecasts",
        ["window_end"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pricing_forecasts_window_end"), table_name="pricing_forecasts")
    op.drop_table("pricing_forecasts")
