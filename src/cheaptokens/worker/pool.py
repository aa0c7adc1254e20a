"""The warm pool: keys made ahead of sales, so a burst is not held up by Venice's
20-creations-a-minute limit.

A pool key is created with ``consumptionLimit {"diem": 0, "usd": 0}`` (it can spend
nothing), ``expiresAt`` the next 00:00 UTC and description ``cheaptokens:pool:<id>``; its
secret is stored encrypted. It is never counted as sold capacity. At a sale the provisioning
job claims one on the order's account and raises its cap with ``PATCH /api_keys``, which is
idempotent, so a crash anywhere simply repeats the PATCH.

Refills leave ``pool_creation_headroom`` of each minute's creation budget to direct creation.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cheaptokens.db import dialect_name
from cheaptokens.models import PoolKey
from cheaptokens.orders import ledger
from cheaptokens.pricing.curve import next_midnight
from cheaptokens.shop import Shop
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import ensure_deleted
from cheaptokens.venice.types import ConsumptionLimit

log = logging.getLogger(__name__)

POOL_PREFIX = "pool:"


def pool_description(shop: Shop) -> str:
    return f"{shop.rules.key_prefix}{POOL_PREFIX}{uuid.uuid4().hex[:16]}"


def is_pool_description(shop: Shop, description: str) -> bool:
    return description.startswith(shop.rules.key_prefix + POOL_PREFIX)


def ready_count(session: Session, *, account: str, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(PoolKey)
            .where(
                PoolKey.account == account,
                PoolKey.day == now.date(),
                PoolKey.status == "ready",
            )
        )
        or 0
    )


def refill(shop: Shop, *, limit: int | None = None) -> int:
    """Top up each account's pool within its creation budget; returns keys made."""
    from cheaptokens.worker.provision import active_keys, creations_in_window

    rules = shop.rules
    if rules.pool_size <= 0:
        return 0
    made = 0
    for account, gateway in shop.gateways.items():
        while limit is None or made < limit:
            now = shop.clock()
            with shop.sessions.begin() as session:
                want = rules.pool_size - ready_count(session, account=account, now=now)
                budget = rules.creations_per_minute - rules.pool_creation_headroom
                room = (
                    rules.max_active_keys
                    - active_keys(session, account, now)
                    - (ready_count(session, account=account, now=now))
                )
                if want <= 0 or room <= 0 or creations_in_window(session, account, now) >= budget:
                    break
                ledger.record(
                    session,
                    kind="key_create_attempt",
                    now=now,
                    account=account,
                    detail={"pool": True},
                )
            try:
                created = gateway.create_key(
                    description=pool_description(shop),
                    consumption_limit=ConsumptionLimit(diem=Decimal(0), usd=Decimal(0)),
                    limit_period="EPOCH",
                    expires_at=next_midnight(now),
                )
            except venice_errors.VeniceError as exc:
                log.info("pool refill on %s stopped: %s", account, type(exc).__name__)
                break
            with shop.sessions.begin() as session:
                session.add(
                    PoolKey(
                        key_id=created.id,
                        account=account,
                        day=now.date(),
                        secret=shop.box.seal(created.api_key, context=created.id),
                        last6=created.api_key[-6:],
                        created_at=now,
                        expires_at=created.expires_at or next_midnight(now),
                        status="ready",
                    )
                )
            made += 1
    return made


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


def release(session: Session, *, key: PoolKey) -> None:
    """Undo a claim made in this transaction (the key goes back to the pool)."""
    key.status, key.order_id, key.claimed_at = "ready", None, None


def claimed_for(session: Session, *, order_id: str) -> PoolKey | None:
    return session.scalars(
        select(PoolKey).where(PoolKey.order_id == order_id, PoolKey.status == "claimed")
    ).first()


def discard(session: Session, *, key_id: str) -> None:
    session.execute(update(PoolKey).where(PoolKey.key_id == key_id).values(status="deleted"))


def expire(shop: Shop) -> int:
    """Delete pool keys whose day is over (Venice stops honouring them at 00:00 anyway)."""
    now = shop.clock()
    with shop.sessions() as session:
        due = session.execute(
            select(PoolKey.key_id, PoolKey.account).where(
                PoolKey.status == "ready", PoolKey.expires_at <= now
            )
        ).all()
    for key_id, account in due:
        gateway = shop.gateways.get(account)
        if gateway is not None:
            try:
                ensure_deleted(gateway, key_id)
            except venice_errors.VeniceError:
                continue
        with shop.sessions.begin() as session:
            discard(session, key_id=key_id)
    return len(due)


def owns(session: Session, *, key_id: str) -> bool:
    """Is this a pool key the shop still keeps (ready, or being sold)?"""
    row = session.get(PoolKey, key_id)
    return row is not None and row.status in ("ready", "claimed")
