"""Make the Venice key for a paid order — exactly once, whatever crashes in between.

The steps, each safe to repeat:

1. Mark the order ``provision_started_at`` (committed) before the first create.
2. If it was already marked, an earlier attempt may have created a key whose secret
   never reached the database: list the account's keys and delete every one whose
   description names this order (the secret exists only in Venice's create response,
   so such a key is useless and must not stay alive).
3. Create the key: ``consumptionLimit {"diem": credit, "usd": 0}`` (a resold key can
   never spend the operator's USD), ``limitPeriod: EPOCH``, ``expiresAt`` the next
   00:00 UTC, description ``cheaptokens:<order id>``.
4. In one transaction, and only while this worker still holds the job's lease (a
   fencing check), store the key encrypted and mark the order fulfilled; otherwise
   delete the key just made.

Venice 429/5xx are retried by the client and then by rescheduling the job; past the
deadline (or the end of the key's day) the order is refunded instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cheaptokens import failpoints, inventory
from cheaptokens.db import dialect_name
from cheaptokens.models import AccountDay, Alert, Job, LedgerEntry, Order, PoolKey
from cheaptokens.money import cents_to_dollars
from cheaptokens.orders import ledger
from cheaptokens.orders import state as st
from cheaptokens.shop import Shop
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import delete_described, ensure_deleted
from cheaptokens.venice.types import ConsumptionLimit, CreatedKey, VeniceGateway
from cheaptokens.worker import jobs, pool

log = logging.getLogger(__name__)


CREATION_WINDOW = timedelta(seconds=60)


class Retry(Exception):
    """Try the job again after ``delay`` seconds."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: int
    worker: str


def day_end(order: Order) -> datetime:
    """00:00 UTC after the order's day: when its key expires and its credit is lost."""
    return datetime.combine(order.day, time(0), tzinfo=UTC) + timedelta(days=1)


def description_for(shop: Shop, order_id: str) -> str:
    return f"{shop.rules.key_prefix}{order_id}"


def _holds_lease(session: Session, lease: Lease, now: datetime) -> bool:
    stmt = select(Job).where(
        Job.id == lease.job_id, Job.locked_by == lease.worker, Job.locked_until > now
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first() is not None


def alert(
    shop: Shop, *, kind: str, message: str, order_id: str | None = None, account: str | None = None
) -> None:
    with shop.sessions.begin() as session:
        session.add(
            Alert(at=shop.clock(), kind=kind, order_id=order_id, account=account, message=message)
        )


def provision(shop: Shop, *, order_id: str, lease: Lease) -> None:
    """Run one attempt; raises :class:`Retry` to be called again later."""
    now = shop.clock()
    with shop.sessions.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        if order is None or order.status != st.PAID or order.key_id is not None:
            return  # done already, refunded, or never paid: nothing to do
        deadline = (
            min(order.paid_at + shop.rules.provision_deadline, day_end(order))
            if order.paid_at
            else day_end(order)
        )
        if now >= deadline:
            order.failure_reason = "no key could be made before the deadline"
            jobs.enqueue(session, kind=jobs.REFUND, order_id=order.id, now=now)
            ledger.record(session, kind="provision_gave_up", now=now, order_id=order.id)
            return
        recovering = order.provision_started_at is not None
        pooled = pool.claimed_for(session, order_id=order.id)
        if pooled is None and not recovering:
            pooled = pool.claim(session, account=order.account, order_id=order.id, now=now)
            if pooled is None:
                pooled = _claim_on_another_account(shop, session, order, now)
            if pooled is None and not _place_on_account_with_room(shop, session, order, now):
                wait = _budget_wait(session, order.account, now)
                raise Retry("no account has key-creation budget or key room now", wait)
            order.provision_started_at = now
        account, credit, expires = order.account, order.credit_cents, day_end(order)
        if pooled is not None:
            ledger.record(
                session,
                kind="pool_key_claimed",
                now=now,
                order_id=order.id,
                account=account,
                detail={"key_id": pooled.key_id},
            )
            pool_key: tuple[str, bytes, datetime] | None = (
                pooled.key_id,
                pooled.secret,
                pooled.expires_at,
            )
        else:
            pool_key = None
            ledger.record(
                session, kind="key_create_attempt", now=now, order_id=order.id, account=account
            )
        failpoints.hit("provision.before_mark_commit")
    failpoints.hit("provision.after_mark_commit")
    gateway = shop.gateways.get(account)
    if gateway is None:
        alert(
            shop,
            kind="account_missing",
            order_id=order_id,
            account=account,
            message=f"order {order_id} is on account {account}, which is not configured",
        )
        raise Retry("account not configured", 60)
    if pool_key is not None:
        _sell_pool_key(
            shop, order_id=order_id, credit=credit, pool_key=pool_key, gateway=gateway, lease=lease
        )
        return
    description = description_for(shop, order_id)
    try:
        if recovering:
            delete_described(gateway, description)
        created = gateway.create_key(
            description=description,
            consumption_limit=ConsumptionLimit(
                diem=cents_to_dollars(credit), usd=cents_to_dollars(0)
            ),
            limit_period="EPOCH",
            expires_at=expires,
        )
    except venice_errors.RateLimited as exc:
        raise Retry("venice rate limited", max(exc.retry_after or 0, 3.0)) from exc
    except venice_errors.Unavailable as exc:  # includes OutcomeUnknown: step 2 cleans up
        with shop.sessions.begin() as session:
            o = session.get(Order, order_id)
            if o is not None and o.provision_started_at is None:
                o.provision_started_at = now
        raise Retry(f"venice unavailable ({type(exc).__name__})", 2.0) from exc
    except venice_errors.VeniceError as exc:
        alert(
            shop,
            kind="provision_failed",
            order_id=order_id,
            account=account,
            message=f"Venice refused to create the key: {exc}",
        )
        raise Retry(f"venice error ({type(exc).__name__})", 30.0) from exc
    failpoints.hit("provision.after_create")
    _record_key(shop, order_id=order_id, created=created, gateway=gateway, lease=lease)


def creations_in_window(session: Session, account: str, now: datetime) -> int:
    """Key creations this shop started on ``account`` in the last minute (Venice allows 20)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(
                LedgerEntry.kind == "key_create_attempt",
                LedgerEntry.account == account,
                LedgerEntry.at > now - CREATION_WINDOW,
            )
        )
        or 0
    )


def active_keys(session: Session, account: str, now: datetime) -> int:
    """Live shop keys on ``account`` (expired keys do not count toward Venice's 500)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Order)
            .where(
                Order.account == account,
                Order.status == st.FULFILLED,
                Order.key_expires_at > now,
            )
        )
        or 0
    )


def _has_room(shop: Shop, session: Session, account: str, now: datetime) -> bool:
    rules = shop.rules
    return (
        creations_in_window(session, account, now) < rules.creations_per_minute
        and active_keys(session, account, now) < rules.max_active_keys
    )


def _move_sale(session: Session, order: Order, to: str, now: datetime) -> bool:
    """Move the order's sold credit to account ``to`` if it has the room (guarded UPDATE)."""
    if not inventory.sell_unreserved(
        session, account=to, day=order.day, credit_cents=order.credit_cents
    ):
        return False
    inventory.unsell(session, account=order.account, day=order.day, credit_cents=order.credit_cents)
    ledger.record(
        session,
        kind="sale_moved",
        now=now,
        order_id=order.id,
        account=to,
        day=order.day,
        credit_cents=order.credit_cents,
        detail={"from": order.account},
    )
    order.account = to
    return True


def _claim_on_another_account(
    shop: Shop, session: Session, order: Order, now: datetime
) -> PoolKey | None:
    """The order's account has no ready pool key: take one on an account that has one and
    the credit, moving the sale there — a PATCH beats waiting for a creation slot."""
    for other in sorted(shop.gateways):
        if other == order.account or pool.ready_count(session, account=other, now=now) == 0:
            continue
        claimed = pool.claim(session, account=other, order_id=order.id, now=now)
        if claimed is None:
            continue
        if _move_sale(session, order, other, now):
            return claimed
        pool.release(session, key=claimed)  # no credit there after all
    return None


def _place_on_account_with_room(shop: Shop, session: Session, order: Order, now: datetime) -> bool:
    """Keep the order's account if it can take one more key now, else move the sale to one
    that can (it must also have the credit: the move is a guarded UPDATE). False if none can.

    The account's capacity row is locked first, so workers racing on one account count
    its creation budget one after another.
    """
    lock = select(AccountDay).where(
        AccountDay.account == order.account, AccountDay.day == order.day
    )
    if dialect_name(session) == "postgresql":
        lock = lock.with_for_update()
    session.execute(lock)
    if _has_room(shop, session, order.account, now):
        return True
    for other in sorted(shop.gateways):
        if other == order.account or not _has_room(shop, session, other, now):
            continue
        if _move_sale(session, order, other, now):
            return True
    return False


def _budget_wait(session: Session, account: str, now: datetime) -> float:
    oldest = session.scalar(
        select(func.min(LedgerEntry.at)).where(
            LedgerEntry.kind == "key_create_attempt",
            LedgerEntry.account == account,
            LedgerEntry.at > now - CREATION_WINDOW,
        )
    )
    if oldest is None:
        return 5.0
    return max(1.0, (oldest + CREATION_WINDOW - now).total_seconds())


def _sell_pool_key(
    shop: Shop,
    *,
    order_id: str,
    credit: int,
    pool_key: tuple[str, bytes, datetime],
    gateway: VeniceGateway,
    lease: Lease,
) -> None:
    """Raise a claimed pool key's cap to the order's credit and hand it over (idempotent)."""
    key_id, sealed, expires_at = pool_key
    description = description_for(shop, order_id)
    limit = ConsumptionLimit(diem=cents_to_dollars(credit), usd=cents_to_dollars(0))
    try:
        gateway.update_key(key_id, description=description, consumption_limit=limit)
    except venice_errors.NotFound:
        # The pool key is gone (deleted or expired): fall back to creating one.
        with shop.sessions.begin() as session:
            pool.discard(session, key_id=key_id)
        raise Retry("pool key vanished; creating a key instead", 0.1) from None
    except venice_errors.RateLimited as exc:
        raise Retry("venice rate limited", max(exc.retry_after or 0, 1.0)) from exc
    except venice_errors.VeniceError as exc:
        raise Retry(f"venice error on PATCH ({type(exc).__name__})", 1.0) from exc
    failpoints.hit("provision.after_pool_patch")
    created = CreatedKey(
        id=key_id,
        api_key=shop.box.open(sealed, context=key_id),
        api_key_type="INFERENCE",
        description=description,
        expires_at=expires_at,
        consumption_limits=limit,
        limit_period="EPOCH",
    )
    _record_key(shop, order_id=order_id, created=created, gateway=gateway, lease=lease)


def _record_key(
    shop: Shop, *, order_id: str, created: CreatedKey, gateway: VeniceGateway, lease: Lease
) -> None:
    now = shop.clock()
    with shop.sessions.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        keep = (
            order is not None
            and order.status == st.PAID
            and order.key_id is None
            and _holds_lease(session, lease, now)
        )
        if keep:
            assert order is not None
            st.check_transition(order.status, st.FULFILLED)
            order.status = st.FULFILLED
            order.key_id = created.id
            order.key_last6 = created.api_key[-6:]
            order.key_secret = shop.box.seal(created.api_key, context=order.id)
            order.key_expires_at = created.expires_at or day_end(order)
            order.fulfilled_at = now
            order.updated_at = now
            ledger.record(
                session,
                kind="key_created",
                now=now,
                order_id=order.id,
                account=order.account,
                day=order.day,
                credit_cents=order.credit_cents,
                detail={"key_id": created.id},
            )
            session.execute(
                update(PoolKey).where(PoolKey.key_id == created.id).values(status="sold")
            )
            failpoints.hit("provision.before_record_commit")
        owner = order.key_id if order is not None else None
    if keep:
        failpoints.hit("provision.after_record_commit")
        return
    if owner == created.id:
        return  # another worker recorded this very (pool) key: it is the order's key
    # Someone else finished (or refunded) the order, or our lease lapsed: undo our key.
    ensure_deleted(gateway, created.id)
    raise Retry("lost the lease while creating the key", 0.5)
