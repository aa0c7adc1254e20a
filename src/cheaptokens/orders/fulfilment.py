"""The decisions of making a paid order's key; the worker does the Venice calls between them.

1. :func:`plan_key` (one transaction, before any call): is there still something to do, is
   the deadline past (then the order is given up and refunded), and which key to use — a
   warm pool key of the order's account, one of another account (the sale moves there), or
   a new key on an account with creation budget and key room (the sale moves if it must).
   The first attempt is marked, so that a retry knows to look for a key left in Venice.
2. :func:`record_key` (one transaction, after Venice made or re-capped the key): the order is
   fulfilled only while the worker still holds the job's lease (a fencing check); otherwise
   the caller must delete the key it made.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens import jobs, ledger
from cheaptokens.db import dialect_name
from cheaptokens.inventory import keyroom, pool
from cheaptokens.models import AccountDay, Order, PoolKey
from cheaptokens.orders import state as st
from cheaptokens.orders import transitions
from cheaptokens.orders.rules import X402_PROVIDER, ShopRules
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import day_end


@dataclass(frozen=True, slots=True)
class PooledKey:
    key_id: str
    sealed_secret: bytes
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class KeyPlan:
    order_id: str
    account: str
    credit_cents: int
    expires_at: datetime
    #: an earlier attempt may have left a key in Venice: delete it before creating another
    recovering: bool
    #: raise this pool key's cap instead of creating a key
    pooled: PooledKey | None
    #: which models the key may call: "private" or "all" (see rules.KEY_MODELS)
    key_models: str = "private"
    #: the payment is an authorization not settled yet (x402): settle it after the key is
    #: made and before it is recorded; if it does not settle, the key is deleted
    capture: bool = False


def deadline_of(order: Order, rules: ShopRules) -> datetime:
    """When the shop stops trying and refunds: the provisioning deadline, or the key's day end."""
    end = day_end(order.day)
    return min(order.paid_at + rules.provision_deadline, end) if order.paid_at else end


def plan_key(
    session: Session,
    *,
    order_id: str,
    rules: ShopRules,
    accounts: Sequence[str],
    now: datetime,
) -> KeyPlan | None:
    """What the next attempt should do for ``order_id``; None when there is nothing to do
    (done already, refunded, never paid, or given up now). Raises :class:`jobs.Retry` when
    no account can take a key at the moment."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None or order.status != st.PAID or order.key_id is not None:
        return None
    if now >= deadline_of(order, rules):
        transitions.give_up(session, order=order, now=now)
        return None
    recovering = order.provision_started_at is not None
    claimed = pool.claimed_for(session, order_id=order.id)
    if claimed is None and not recovering:
        claimed = pool.claim(session, account=order.account, order_id=order.id, now=now)
        if claimed is None:
            claimed = _claim_on_another_account(session, order, accounts, now)
        if claimed is None and not _place_on_account_with_room(
            session, order, accounts, rules, now
        ):
            wait = keyroom.budget_wait(session, order.account, now)
            raise jobs.Retry("no account has key-creation budget or key room now", wait)
        transitions.begin_provisioning(order, now=now)
    if claimed is not None:
        ledger.record(
            session,
            kind="pool_key_claimed",
            now=now,
            order_id=order.id,
            account=order.account,
            detail={"key_id": claimed.key_id},
        )
        pooled = PooledKey(claimed.key_id, claimed.secret, claimed.expires_at)
    else:
        pooled = None
        keyroom.record_creation(session, account=order.account, now=now, order_id=order.id)
    return KeyPlan(
        order_id=order.id,
        account=order.account,
        credit_cents=order.credit_cents,
        expires_at=day_end(order.day),
        recovering=recovering,
        pooled=pooled,
        key_models=order.key_models,
        capture=needs_capture(order),
    )


def needs_capture(order: Order) -> bool:
    """Is the order's payment an authorization that has not been settled (x402)?"""
    return order.payment_provider == X402_PROVIDER and order.paid_cents is None


def _claim_on_another_account(
    session: Session, order: Order, accounts: Sequence[str], now: datetime
) -> PoolKey | None:
    """The order's account has no ready pool key: take one on an account that has one and
    the credit, moving the sale there — a PATCH beats waiting for a creation slot."""
    for other in sorted(accounts):
        if other == order.account or pool.ready_count(session, account=other, now=now) == 0:
            continue
        claimed = pool.claim(session, account=other, order_id=order.id, now=now)
        if claimed is None:
            continue
        if transitions.move_sale(session, order=order, to=other, now=now):
            return claimed
        pool.release(claimed)  # no credit there after all
    return None


def _place_on_account_with_room(
    session: Session, order: Order, accounts: Sequence[str], rules: ShopRules, now: datetime
) -> bool:
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

    def room(account: str) -> bool:
        return keyroom.has_room(
            session,
            account,
            now,
            per_minute=rules.creations_per_minute,
            max_keys=rules.max_active_keys,
        )

    if room(order.account):
        return True
    for other in sorted(accounts):
        if other == order.account or not room(other):
            continue
        if transitions.move_sale(session, order=order, to=other, now=now):
            return True
    return False


def mark_attempt_started(session: Session, *, order_id: str, now: datetime) -> None:
    """A creation's outcome is unknown (timeout, lost answer): the next attempt must look
    for the key in Venice first."""
    order = session.get(Order, order_id)
    if order is not None:
        transitions.begin_provisioning(order, now=now)


def pool_key_vanished(session: Session, *, key_id: str) -> None:
    """The claimed pool key is gone in Venice: drop it; the next attempt creates a key."""
    pool.discard(session, key_id=key_id)


def payment_refused(session: Session, *, order_id: str, key_id: str, now: datetime) -> None:
    """The order's authorized payment will not settle: its key (deleted in Venice just now)
    is forgotten and the order is cancelled; nothing was charged."""
    order = session.get(Order, order_id, with_for_update=True)
    pool.discard(session, key_id=key_id)
    if order is not None and order.status == st.PAID and needs_capture(order):
        transitions.payment_not_settled(session, order=order, key_id=key_id, now=now)


class Recorded(enum.Enum):
    KEPT = "kept"  # the order is fulfilled with this key
    ALREADY = "already"  # another worker recorded this very (pool) key: nothing to undo
    LOST = "lost"  # the order was finished elsewhere or the lease lapsed: delete the key


def record_key(
    session: Session,
    *,
    order_id: str,
    key_id: str,
    api_key: str,
    expires_at: datetime | None,
    box: SecretBox,
    lease: jobs.Lease,
    now: datetime,
) -> Recorded:
    """Fulfil ``order_id`` with the key just made, if this worker still holds its job."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:
        return Recorded.LOST
    if order.status == st.PAID and order.key_id is None and jobs.holds_lease(session, lease, now):
        transitions.fulfil(
            session,
            order=order,
            key_id=key_id,
            api_key=api_key,
            expires_at=expires_at,
            box=box,
            now=now,
        )
        return Recorded.KEPT
    return Recorded.ALREADY if order.key_id == key_id else Recorded.LOST
