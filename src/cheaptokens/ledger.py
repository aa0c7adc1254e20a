"""Append a row to the ledger (never updated, never deleted)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cheaptokens.models import LedgerEntry, table_of


def record(
    session: Session,
    *,
    kind: str,
    now: datetime,
    order_id: str | None = None,
    quote_id: str | None = None,
    account: str | None = None,
    day: date | None = None,
    credit_cents: int = 0,
    money_cents: int = 0,
    detail: dict[str, Any] | None = None,
) -> None:
    # One Core INSERT built once, not an ORM object nor an ORM-enabled insert: the ledger is
    # write-only here, and this skips the ORM's bookkeeping on every quote and sale.
    session.execute(
        _INSERT,
        {
            "at": now,
            "kind": kind,
            "order_id": order_id,
            "quote_id": quote_id,
            "account": account,
            "day": day,
            "credit_cents": credit_cents,
            "money_cents": money_cents,
            "detail": detail,
        },
    )


_INSERT = insert(table_of(LedgerEntry))
