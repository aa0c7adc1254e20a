"""Sold keys while they live: what they spent, when they die, and which keys are the shop's.

The worker reads Venice and calls these in short transactions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cheaptokens import inventory, jobs
from cheaptokens.alerts import raise_alert
from cheaptokens.inventory import pool
from cheaptokens.models import Account, Alert, Job, Order
from cheaptokens.money import dollars_to_cents, dollars_to_cents_up, format_usd
from cheaptokens.orders import events, transitions
from cheaptokens.orders import state as st
from cheaptokens.orders.ids import is_order_id
from cheaptokens.orders.rules import POOL_PREFIX, order_of_description


@dataclass(frozen=True, slots=True)
class LiveKey:
    order_id: str
    account: str
    key_id: str


def live(session: Session, *, now: datetime) -> list[LiveKey]:
    """Keys of fulfilled orders that have not reached their 00:00 UTC."""
    rows = session.execute(
        select(Order.id, Order.account, Order.key_id).where(
            Order.status == st.FULFILLED, Order.key_expires_at > now, Order.key_id.is_not(None)
        )
    ).all()
    return [LiveKey(o, a, k) for o, a, k in rows if k is not None]


def due_for_expiry(session: Session, *, now: datetime) -> list[LiveKey]:
    """Keys of fulfilled orders whose 00:00 UTC has passed (to delete, then expire).

    An order with a refund still queued is left to the refund job (it deletes the key and
    refunds): expiring it first would drop the refund.
    """
    refunding = select(Job.order_id).where(Job.kind == jobs.REFUND, Job.status == "queued")
    rows = session.execute(
        select(Order.id, Order.account, Order.key_id).where(
            Order.status == st.FULFILLED,
            Order.key_expires_at <= now,
            Order.id.not_in(refunding),
        )
    ).all()
    return [LiveKey(o, a, k or "") for o, a, k in rows]


def record_usage(session: Session, *, order_id: str, used_cents: int, now: datetime) -> None:
    order = session.get(Order, order_id)
    if order is not None:
        transitions.record_usage(order, used_cents=used_cents, now=now)


def expire(session: Session, *, order_id: str, now: datetime) -> bool:
    """Expire the order after its key was deleted; False if it was no longer fulfilled."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is None or order.status != st.FULFILLED:
        return False
    transitions.expire(session, order=order, now=now)
    return True


def owner_of(session: Session, *, key_id: str, description: str) -> str | None:
    """Who keeps a shop key found in Venice: ``"pool"``, the order id, or None (an orphan).

    A key whose order is still being provisioned (``paid``) or replaced (``replacing``) is
    left to that job, which cleans up its own attempts.
    """
    if description.startswith(POOL_PREFIX):
        return "pool" if pool.owns(session, key_id=key_id) else None
    order_id = order_of_description(description)
    order = session.get(Order, order_id) if order_id and is_order_id(order_id) else None
    if order is not None and (
        order.status in (st.PAID, st.REPLACING)
        or (order.status == st.FULFILLED and order.key_id == key_id)
    ):
        return order.id
    return None


# ----------------------------------------------------------------------------- the watch
GONE = "the key no longer exists in Venice"
DRAINED = "the Venice account behind the key ran out of credit"


@dataclass
class Watched:
    """What one look at an account found (the worker acts on ``past_cap`` in Venice)."""

    account: str
    liability_cents: int = 0
    reserve_cents: int = 0
    withheld_cents: int = 0
    #: (order id, key id) of keys that spent beyond their cap: to delete at once
    past_cap: list[tuple[str, str]] = field(default_factory=list)
    #: orders whose key can no longer spend what it holds: a replacement is queued
    replacing: list[str] = field(default_factory=list)
    #: a key with a webhook is a few percent below a usage threshold: look again soon
    near: bool = False


def observe_account(
    session: Session,
    *,
    account: str,
    balance_cents: int,
    usage: Mapping[str, Decimal],
    listed_at: datetime,
    reserves: Mapping[str, int],
    now: datetime,
    reserve_max_share: Decimal | None = None,
) -> Watched:
    """Apply one reading of an account: its live DIEM balance and each listed key's usage
    (in dollars, as Venice reports it).

    Every live key of the account is checked: a key missing from Venice's list (and made
    before the list was read), or a key with credit left on an account whose balance is
    spent, cannot spend what it holds — the buyer is made whole. A key past its cap is put on
    record, and a key whose buyer has a webhook gets its usage thresholds' events. Then the
    account's sellable stock is re-derived from the balance (see
    :func:`cheaptokens.inventory.follow_balance`) and an alert raised if the balance no
    longer covers what the live keys may still spend.
    """
    inventory.record_balance(session, account=account, diem_cents=balance_cents, now=now)
    seen = Watched(account)
    orders = session.scalars(
        select(Order)
        .where(
            Order.account == account,
            Order.status == st.FULFILLED,
            Order.key_id.is_not(None),
            Order.key_deleted_at.is_(None),
            Order.key_expires_at > now,
        )
        .with_for_update()
    ).all()
    hooked = events.has_webhook(session, order_ids=[o.id for o in orders])
    for order in orders:
        cap, key_id = order.key_cap_cents, order.key_id
        assert key_id is not None
        spent = usage.get(key_id)
        if spent is None:
            made = order.fulfilled_at or now
            if made <= listed_at:
                _replace(session, order, GONE, now, seen)
            else:  # recorded after the list was read: look again next time
                seen.liability_cents += max(0, cap - (order.used_cents or 0))
            continue
        # Shown to the buyer rounded up (never overstate what is left); counted as the shop's
        # liability rounded down (never understate what the keys may still spend).
        used, used_down = dollars_to_cents_up(spent), dollars_to_cents(spent)
        transitions.record_usage(order, used_cents=used, now=now)
        if order.id in hooked:  # credit.low / credit.exhausted, once per threshold
            events.usage_seen(session, order=order, now=now)
            seen.near = seen.near or events.near_threshold(order)
        if used > cap:
            transitions.record_overshoot(session, order=order, used_cents=used, now=now)
            seen.past_cap.append((order.id, key_id))
            continue
        if balance_cents <= 0 and used < cap:
            _replace(session, order, DRAINED, now, seen)
            continue
        seen.liability_cents += cap - used_down
    # The reserve for the costliest key class the account hosts (private keys are always sold).
    reserve = max(reserves.get(c, 0) for c in {o.key_models for o in orders} | {"private"})
    acct = session.get(Account, account)
    if reserve_max_share is not None and acct is not None:
        share = Decimal(acct.diem_allocation_cents) * reserve_max_share
        reserve = min(reserve, int(share.to_integral_value(rounding=ROUND_DOWN)))
    seen.reserve_cents = reserve
    seen.withheld_cents = inventory.follow_balance(
        session,
        account=account,
        day=now.date(),
        balance_cents=balance_cents,
        liability_cents=seen.liability_cents,
        reserve_cents=reserve,
    )
    if balance_cents - reserve < seen.liability_cents or balance_cents <= 0:
        _alert_once(
            session,
            kind="account_short",
            account=account,
            now=now,
            message=(
                f"account {account} has {format_usd(balance_cents)} of DIEM left for "
                f"{format_usd(seen.liability_cents)} its live keys may still spend (reserve "
                f"{format_usd(reserve)}): nothing more is sold on it"
            ),
        )
    return seen


def _replace(session: Session, order: Order, reason: str, now: datetime, seen: Watched) -> None:
    transitions.begin_replacement(session, order=order, reason=reason, now=now)
    seen.replacing.append(order.id)
    raise_alert(
        session,
        kind="make_whole",
        order_id=order.id,
        account=order.account,
        now=now,
        message=f"order {order.id}: {reason}; its unspent credit moves to a new key "
        "(or is refunded pro rata)",
    )


def _alert_once(session: Session, *, kind: str, account: str, now: datetime, message: str) -> None:
    """One alert of ``kind`` per account and day (the watch looks every few seconds)."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    seen = session.scalar(
        select(func.count())
        .select_from(Alert)
        .where(Alert.kind == kind, Alert.account == account, Alert.at >= start)
    )
    if not seen:
        raise_alert(session, kind=kind, account=account, message=message, now=now)


def key_past_cap_deleted(session: Session, *, order_id: str, now: datetime) -> None:
    order = session.get(Order, order_id, with_for_update=True)
    if order is not None:
        transitions.key_deleted(session, order=order, now=now, why="spent past its cap")
