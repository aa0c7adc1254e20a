"""Periodic upkeep: account balances, key usage, midnight expiry and reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from cheaptokens import inventory
from cheaptokens.alerts import raise_alert
from cheaptokens.db import Database
from cheaptokens.money import dollars_to_cents
from cheaptokens.orders import live_keys
from cheaptokens.orders.rules import KEY_PREFIX, POOL_PREFIX, order_of_description
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import ensure_deleted
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker.accounts import each_account

#: A refill records its pool key just after Venice made it: reconciliation gives it this long.
POOL_GRACE = timedelta(minutes=5)

log = logging.getLogger(__name__)


def refresh_accounts(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    clock: Clock,
    parallel: int = 1,
) -> int:
    """Read each account's DIEM allocation from ``/billing/balance``; returns how many answered.

    A Venice outage leaves the last known allocation in place (pricing stays up).
    """
    db = db.one_writer()

    def one(name: str, gateway: VeniceGateway) -> bool:
        now = clock()
        try:
            balance = gateway.balance()
        except venice_errors.VeniceError as exc:
            with db.begin() as session:
                inventory.record_allocation(
                    session,
                    account=name,
                    allocation_cents=None,
                    now=now,
                    error=f"{type(exc).__name__}: {exc}",
                )
            return False
        with db.begin() as session:
            inventory.record_allocation(
                session,
                account=name,
                allocation_cents=dollars_to_cents(balance.diem_epoch_allocation),
                now=now,
            )
        return True

    return sum(each_account(gateways, one, parallel=parallel).values())


def expire_keys(*, db: Database, gateways: Mapping[str, VeniceGateway], clock: Clock) -> int:
    """After a key's 00:00 UTC: delete the key, then mark its order expired."""
    now = clock()
    with db.read() as session:
        due = live_keys.due_for_expiry(session, now=now)
    for key in due:
        gateway = gateways.get(key.account)
        if gateway is not None and key.key_id:
            try:
                ensure_deleted(gateway, key.key_id)
            except venice_errors.VeniceError:
                continue  # try again next round
        with db.begin() as session:
            live_keys.expire(session, order_id=key.order_id, now=now)
    return len(due)


def reconcile(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    clock: Clock,
    parallel: int = 1,
) -> list[str]:
    """Delete shop keys in Venice that no order (or the pool) keeps; returns their ids."""
    db = db.one_writer()
    found = each_account(
        gateways, lambda name, gw: _reconcile_account(db, name, gw, clock), parallel=parallel
    )
    return [key_id for name in sorted(found) for key_id in found[name]]


def _reconcile_account(db: Database, name: str, gateway: VeniceGateway, clock: Clock) -> list[str]:
    removed: list[str] = []
    try:
        keys = gateway.list_keys()
    except venice_errors.VeniceError:
        return removed
    for key in keys:
        if not key.description.startswith(KEY_PREFIX):
            continue
        now = clock()
        if key.description.startswith(POOL_PREFIX) and now - key.created_at < POOL_GRACE:
            continue
        with db.read() as session:
            owner = live_keys.owner_of(session, key_id=key.id, description=key.description)
        if owner is not None:
            continue
        try:
            ensure_deleted(gateway, key.id)
        except venice_errors.VeniceError:
            continue
        removed.append(key.id)
        order_id = order_of_description(key.description)
        with db.begin() as session:
            raise_alert(
                session,
                kind="reconcile",
                account=name,
                # the column holds 40 characters; the message names the key whatever it says
                order_id=order_id if order_id and len(order_id) <= 40 else None,
                message=f"deleted key {key.id} ({key.description!r}) in Venice with no "
                "matching fulfilled order",
                now=now,
            )
    return removed
