"""The decisions of replacing a key that cannot spend what it holds (making the buyer whole);
the worker's :mod:`cheaptokens.worker.replace` makes the Venice calls between them.

1. Delete the old key first (so at no moment are two of the order's keys live) and take its
   usage at that moment: the unspent rest is what the new key holds.
2. Sell that rest again on an account that can serve it — the same account if it still has
   credit, else the roomiest other — or, where none can, refund its share of the price.
3. Make the new key there and record it while the worker still holds the job's lease.

Past the deadline (the provisioning deadline after the replacement began, or the key's day
end) the rest is refunded pro rata instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens import jobs
from cheaptokens.inventory import supply
from cheaptokens.models import Account, Order
from cheaptokens.orders import state as st
from cheaptokens.orders import transitions
from cheaptokens.orders.fulfilment import Recorded
from cheaptokens.orders.rules import ShopRules
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import day_end


@dataclass(frozen=True, slots=True)
class DeleteOld:
    order_id: str
    account: str
    key_id: str | None


@dataclass(frozen=True, slots=True)
class CreateNew:
    order_id: str
    account: str
    credit_cents: int
    expires_at: datetime
    key_models: str


Step = DeleteOld | CreateNew


def drained_accounts(session: Session) -> set[str]:
    """Accounts whose live DIEM balance was at or below zero at the last reading."""
    return set(session.scalars(select(Account.name).where(Account.diem_balance_cents <= 0)).all())


def next_step(
    session: Session,
    *,
    order_id: str,
    rules: ShopRules,
    accounts: Sequence[str],
    now: datetime,
) -> Step | None:
    """What the replacement of ``order_id`` must do next; None when it is done or ended."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None or order.status != st.REPLACING:
        return None
    if order.key_deleted_at is None and order.key_id is not None:
        return DeleteOld(order.id, order.account, order.key_id)
    started = order.replace_started_at or now
    if now >= min(started + rules.provision_deadline, day_end(order.day)):
        transitions.refund_pro_rata(
            session, order=order, reason="no replacement key could be made in time", now=now
        )
        return None
    if order.key_cap_cents <= 0:  # nothing left to replace: the old key had spent it all
        transitions.refund_pro_rata(session, order=order, reason="no credit left", now=now)
        return None
    if order.provision_started_at is None and not _place(session, order, accounts, now):
        transitions.refund_pro_rata(
            session,
            order=order,
            reason="no account has the credit for a replacement key today",
            now=now,
        )
        return None
    return CreateNew(
        order.id, order.account, order.key_cap_cents, day_end(order.day), order.key_models
    )


def _place(session: Session, order: Order, accounts: Sequence[str], now: datetime) -> bool:
    """The same account while it still has credit (the unspent part is sold there already),
    else the roomiest other one with room for it."""
    drained = drained_accounts(session)
    rooms = dict(supply(session, day=order.day).rooms)
    candidates = [
        a
        for a in accounts
        if a not in drained and (a == order.account or rooms.get(a, 0) >= order.key_cap_cents)
    ]
    candidates.sort(key=lambda a: (a != order.account, -rooms.get(a, 0), a))
    return any(
        transitions.place_replacement(session, order=order, account=a, now=now) for a in candidates
    )


def old_key_gone(session: Session, *, order_id: str, used_cents: int | None, now: datetime) -> None:
    order = session.get(Order, order_id, with_for_update=True)
    if order is not None and order.status == st.REPLACING and order.key_deleted_at is None:
        transitions.old_key_gone(session, order=order, used_cents=used_cents, now=now)


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
    """The replacement key exists: store it, if this worker still holds the job."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None:
        return Recorded.LOST
    if order.status == st.REPLACING and jobs.holds_lease(session, lease, now):
        transitions.key_replaced(
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
