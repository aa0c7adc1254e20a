"""Room for one more key on an account: Venice allows 20 creations a minute and 500 active
keys per account (docs/venice-facts.md §1.7), so the shop counts its own.

Creations are counted from the ledger's ``key_create_attempt`` rows (one per attempt, made
before the call), live keys from the orders that hold one and the pool's ready keys.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from cheaptokens import ledger
from cheaptokens.models import LedgerEntry, Order
from cheaptokens.venice.limits import CREATION_WINDOW

CREATE_ATTEMPT = "key_create_attempt"


def record_creation(
    session: Session,
    *,
    account: str,
    now: datetime,
    order_id: str | None = None,
    pool: bool = False,
) -> None:
    """Count a key creation against ``account``'s budget (before Venice is called)."""
    ledger.record(
        session,
        kind=CREATE_ATTEMPT,
        now=now,
        order_id=order_id,
        account=account,
        detail={"pool": True} if pool else None,
    )


def creations_in_window(session: Session, account: str, now: datetime) -> int:
    """Key creations this shop started on ``account`` in the last minute."""
    since = now - CREATION_WINDOW
    return int(session.scalar(_CREATIONS, {"account": account, "since": since}) or 0)


def live_order_keys(session: Session, account: str, now: datetime) -> int:
    """Sold keys still alive on ``account`` (expired keys do not count toward Venice's 500)."""
    return int(session.scalar(_LIVE_ORDER_KEYS, {"account": account, "now": now}) or 0)


# Built once, bound by name: these run before every key creation (the pool's refill runs
# them for every key on every account), and building a statement costs more CPU than running it.
_CREATIONS = (
    select(func.count())
    .select_from(LedgerEntry)
    .where(
        LedgerEntry.kind == CREATE_ATTEMPT,
        LedgerEntry.account == bindparam("account"),
        LedgerEntry.at > bindparam("since"),
    )
)
_LIVE_ORDER_KEYS = (
    select(func.count())
    .select_from(Order)
    .where(
        Order.account == bindparam("account"),
        Order.key_id.is_not(None),
        Order.key_deleted_at.is_(None),
        Order.key_expires_at > bindparam("now"),
    )
)


def has_room(
    session: Session, account: str, now: datetime, *, per_minute: int, max_keys: int
) -> bool:
    """Can ``account`` take one more key creation now?"""
    return (
        creations_in_window(session, account, now) < per_minute
        and live_order_keys(session, account, now) < max_keys
    )


def budget_wait(session: Session, account: str, now: datetime) -> float:
    """Seconds until the oldest creation in the window leaves it (5 s if none is known)."""
    oldest = session.scalar(
        select(func.min(LedgerEntry.at)).where(
            LedgerEntry.kind == CREATE_ATTEMPT,
            LedgerEntry.account == account,
            LedgerEntry.at > now - CREATION_WINDOW,
        )
    )
    if oldest is None:
        return 5.0
    return max(1.0, (oldest + CREATION_WINDOW - now).total_seconds())
