"""Buyers whose keys spend past their caps: the overshoot is on record, and a buyer with
too many strikes in a day is refused further sales that day (docs/money-safety.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from cheaptokens.models import LedgerEntry, Order, table_of

OVERSHOT = "key_overshot"


_LEDGER, _ORDERS = table_of(LedgerEntry), table_of(Order)
#: built once: every order runs it
_STRIKES = (
    select(func.count())
    .select_from(_LEDGER.join(_ORDERS, _ORDERS.c.id == _LEDGER.c.order_id))
    .where(
        _LEDGER.c.kind == OVERSHOT,
        _LEDGER.c.at >= bindparam("since"),
        _ORDERS.c.client == bindparam("client"),
    )
)


def strikes(session: Session, *, client: str, since: datetime) -> int:
    """Keys of ``client``'s orders that went past their cap since ``since``."""
    return int(session.scalar(_STRIKES, {"since": since, "client": client}) or 0)


def already_recorded(session: Session, *, order_id: str, key_id: str | None) -> bool:
    """Has this key's overshoot been recorded already (the watch looks every few seconds)?"""
    rows = session.scalars(
        select(LedgerEntry.detail).where(
            LedgerEntry.kind == OVERSHOT, LedgerEntry.order_id == order_id
        )
    ).all()
    return any((d or {}).get("key_id") == key_id for d in rows)
