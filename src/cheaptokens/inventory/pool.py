"""The warm pool's rows: keys made ahead of sales, so a burst is not held up by Venice's
20-creations-a-minute limit (the worker's :mod:`cheaptokens.worker.pool` makes and deletes
them in Venice).

A pool key is created with ``consumptionLimit {"diem": 0, "usd": 0}`` (it can spend
nothing) and expires at the next 00:00 UTC; its secret is stored sealed. It is never counted
as sold capacity. At a sale the order claims one and raises its cap with ``PATCH /api_keys``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from cheaptokens.db import dialect_name
from cheaptokens.models import PoolKey, table_of


def ready_count(session: Session, *, account: str, now: datetime) -> int:
    return int(session.scalar(_READY_COUNT, {"account": account, "day": now.date()}) or 0)


# The refill's statements are built once (bound by name): building one costs more CPU than
# running it, and the refill runs them for every key on every account.
_READY_COUNT = (
    select(func.count())
    .select_from(PoolKey)
    .where(
        PoolKey.account == bindparam("account"),
        PoolKey.day == bindparam("day"),
        PoolKey.status == "ready",
    )
)


def add_ready(
    session: Session,
    *,
    key_id: str,
    account: str,
    day: date,
    secret: bytes,
    last6: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    session.execute(
        _ADD_READY,
        {
            "key_id": key_id,
            "account": account,
            "day": day,
            "secret": secret,
            "last6": last6,
            "created_at": now,
            "expires_at": expires_at,
            "status": "ready",
        },
    )


_ADD_READY = insert(table_of(PoolKey))


def claim(session: Session, *, account: str, order_id: str, now: datetime) -> PoolKey | None:
    """Take one ready key of ``account`` for ``order_id`` (inside the caller's transaction)."""
    stmt = (
        select(PoolKey)
        .where(
            PoolKey.account == account,
            PoolKey.day == now.date(),
            PoolKey.status == "ready",
            PoolKey.expires_at > now,
        )
        .order_by(PoolKey.created_at)
        .limit(1)
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    row = session.scalars(stmt).first()
    if row is None:
        return None
    row.status = "claimed"
    row.order_id = order_id
    row.claimed_at = now
    return row


def release(key: PoolKey) -> None:
    """Undo a claim made in this transaction (the key goes back to the pool)."""
    key.status, key.order_id, key.claimed_at = "ready", None, None


def claimed_for(session: Session, *, order_id: str) -> PoolKey | None:
    return session.scalars(
        select(PoolKey).where(PoolKey.order_id == order_id, PoolKey.status == "claimed")
    ).first()


def discard(session: Session, *, key_id: str) -> None:
    session.execute(update(PoolKey).where(PoolKey.key_id == key_id).values(status="deleted"))


def due_for_deletion(session: Session, *, now: datetime) -> list[tuple[str, str]]:
    """(key id, account) of ready keys whose day is over."""
    rows = session.execute(
        select(PoolKey.key_id, PoolKey.account).where(
            PoolKey.status == "ready", PoolKey.expires_at <= now
        )
    ).all()
    return [(k, a) for k, a in rows]


def owns(session: Session, *, key_id: str) -> bool:
    """Is this a pool key the shop still keeps (ready, or being sold)?"""
    row = session.get(PoolKey, key_id)
    return row is not None and row.status in ("ready", "claimed")
