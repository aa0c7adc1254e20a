"""the holds per client read an index of open quotes only: the nightly prune of released
quotes no longer deletes one entry per quote scattered across every client's history

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index(
        "ix_quotes_client_open",
        "quotes",
        ["client", "valid_until"],
        unique=False,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.drop_index("ix_quotes_client_status", table_name="quotes")


def downgrade() -> None:
    op.create_index("ix_quotes_client_status", "quotes", ["client", "status"], unique=False)
    op.drop_index("ix_quotes_client_open", table_name="quotes")
