"""Sold keys while they live: what they spent, when they die, and which keys are the shop's.

The worker reads Venice and calls these in short transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens.inventory import pool
from cheaptokens.models import Order
from cheaptokens.orders import state as st
from cheaptokens.orders import transitions
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
    """Keys of fulfilled orders whose 00:00 UTC has passed (to delete, then expire)."""
    rows = session.execute(
        select(Order.id, Order.account, Order.key_id).where(
            Order.status == st.FULFILLED, Order.key_expires_at <= now
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

    A key whose order is still being provisioned (``paid``) is left to the provisioning
    job, which cleans up its own attempts.
    """
    if description.startswith(POOL_PREFIX):
        return "pool" if pool.owns(session, key_id=key_id) else None
    order_id = order_of_description(description)
    order = session.get(Order, order_id) if order_id and is_order_id(order_id) else None
    if order is not None and (
        order.status == st.PAID or (order.status == st.FULFILLED and order.key_id == key_id)
    ):
        return order.id
    return None
