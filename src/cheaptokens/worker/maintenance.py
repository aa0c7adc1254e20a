"""Periodic upkeep: account balances, key usage, midnight expiry and reconciliation."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from cheaptokens.models import Account, Order
from cheaptokens.money import dollars_to_cents, dollars_to_cents_up
from cheaptokens.orders import ledger
from cheaptokens.orders import state as st
from cheaptokens.shop import Shop
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import ensure_deleted
from cheaptokens.worker import pool
from cheaptokens.worker.provision import alert

POOL_GRACE = timedelta(minutes=5)

log = logging.getLogger(__name__)


def refresh_accounts(shop: Shop) -> int:
    """Read each account's DIEM allocation from ``/billing/balance``; returns how many answered.

    A Venice outage leaves the last known allocation in place (pricing stays up).
    """
    ok = 0
    for name, gateway in shop.gateways.items():
        now = shop.clock()
        try:
            balance = gateway.balance()
        except venice_errors.VeniceError as exc:
            with shop.sessions.begin() as session:
                acct = session.get(Account, name) or Account(name=name, diem_allocation_cents=0)
                acct.last_error = f"{type(exc).__name__}: {exc}"[:500]
                session.add(acct)
            continue
        with shop.sessions.begin() as session:
            acct = session.get(Account, name) or Account(name=name, enabled=True)
            acct.diem_allocation_cents = dollars_to_cents(balance.diem_epoch_allocation)
            acct.balance_checked_at = now
            acct.last_error = None
            session.add(acct)
        ok += 1
    return ok


def record_usage(shop: Shop, *, now: datetime | None = None) -> int:
    """Read each live key's spend (it becomes unreadable once the key expires)."""
    now = now or shop.clock()
    with shop.sessions() as session:
        live = session.execute(
            select(Order.id, Order.account, Order.key_id).where(
                Order.status == st.FULFILLED, Order.key_expires_at > now, Order.key_id.is_not(None)
            )
        ).all()
    done = 0
    for order_id, account, key_id in live:
        gateway = shop.gateways.get(account)
        if gateway is None or key_id is None:
            continue
        try:
            key = gateway.get_key(key_id)
        except venice_errors.VeniceError:
            continue
        used = dollars_to_cents_up(key.period_usage)
        with shop.sessions.begin() as session:
            order = session.get(Order, order_id)
            if order is not None:
                order.used_cents = used
                order.usage_checked_at = now
        done += 1
    return done


def expire_keys(shop: Shop) -> int:
    """After a key's 00:00 UTC: mark its order expired, delete the key, forget the secret."""
    now = shop.clock()
    with shop.sessions() as session:
        due = session.execute(
            select(Order.id, Order.account, Order.key_id).where(
                Order.status == st.FULFILLED, Order.key_expires_at <= now
            )
        ).all()
    for order_id, account, key_id in due:
        gateway = shop.gateways.get(account)
        if gateway is not None and key_id:
            try:
                ensure_deleted(gateway, key_id)
            except venice_errors.VeniceError:
                continue  # try again next round
        with shop.sessions.begin() as session:
            order = session.get(Order, order_id, with_for_update=True)
            if order is None or order.status != st.FULFILLED:
                continue
            order.status = st.EXPIRED
            order.updated_at = now
            order.key_secret = None
            order.key_deleted_at = now
            ledger.record(
                session,
                kind="key_expired",
                now=now,
                order_id=order_id,
                account=account,
                detail={"key_id": key_id, "used_cents": order.used_cents},
            )
    return len(due)


def reconcile(shop: Shop) -> list[str]:
    """Delete shop keys in Venice that no fulfilled order owns; returns their ids.

    A key whose order is still being provisioned (status ``paid``) is left to the
    provisioning job, which cleans up its own attempts.
    """
    removed: list[str] = []
    prefix = shop.rules.key_prefix
    for name, gateway in shop.gateways.items():
        try:
            keys = gateway.list_keys()
        except venice_errors.VeniceError:
            continue
        for key in keys:
            if not key.description.startswith(prefix):
                continue
            now = shop.clock()
            with shop.sessions() as session:
                if pool.is_pool_description(shop, key.description):
                    # A refill records its key just after Venice made it: give it a moment.
                    owned = pool.owns(session, key_id=key.id) or (now - key.created_at < POOL_GRACE)
                    order_id = None
                else:
                    order_id = key.description[len(prefix) :]
                    order = session.get(Order, order_id)
                    owned = order is not None and (
                        order.status == st.PAID
                        or (order.status == st.FULFILLED and order.key_id == key.id)
                    )
            if owned:
                continue
            try:
                ensure_deleted(gateway, key.id)
            except venice_errors.VeniceError:
                continue
            removed.append(key.id)
            alert(
                shop,
                kind="reconcile",
                account=name,
                order_id=order_id,
                message=f"deleted key {key.id} in Venice with no matching fulfilled order",
            )
    return removed
