"""The watch: every few seconds, one look at each Venice account — its live balance and all
its keys with their usage, two calls per account however many keys it holds — handed to
:func:`cheaptokens.orders.live_keys.observe_account`, which decides; keys past their cap are
deleted here at once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from cheaptokens.db import Database
from cheaptokens.inventory import record_allocation, record_key_counts
from cheaptokens.money import dollars_to_cents
from cheaptokens.orders import live_keys
from cheaptokens.orders.rules import ShopRules, reserve_cents
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.catalogue import ModelCatalogue
from cheaptokens.venice.keys import ensure_deleted
from cheaptokens.venice.limits import CREATION_WINDOW
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker.accounts import each_account

log = logging.getLogger(__name__)


@dataclass
class WatchReport:
    #: the overshoot reserve per key class ("private", "all") this look applied
    reserves: dict[str, int] = field(default_factory=dict)
    accounts: int = 0
    keys: int = 0
    deleted_past_cap: int = 0
    replacing: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    #: accounts with a key (whose buyer has a webhook) a few percent below a usage threshold:
    #: the worker looks at them again sooner (``watch_near`` timer)
    near: list[str] = field(default_factory=list)


def watch(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    rules: ShopRules,
    clock: Clock,
    catalogue: ModelCatalogue | None = None,
    parallel: int = 1,
    only: Collection[str] | None = None,
) -> WatchReport:
    """One look at every account (or the accounts in ``only``), ``parallel`` at once;
    ``catalogue`` (Venice's models) sizes the overshoot reserve."""
    models = catalogue.text_models() if catalogue is not None else None
    report = WatchReport(reserves=reserve_cents(rules, models))
    share = None if rules.overshoot_reserve_cents is not None else rules.overshoot_reserve_max_share
    db = db.one_writer()

    def one(account: str, gateway: VeniceGateway) -> _Look:
        return _look(db, account, gateway, clock, report.reserves, share)

    chosen = {a: g for a, g in gateways.items() if only is None or a in only}
    for account, look in sorted(each_account(chosen, one, parallel=parallel).items()):
        if look.unreachable:
            report.unreachable.append(account)
            continue
        report.accounts += 1
        report.keys += look.keys
        report.replacing += look.replacing
        report.deleted_past_cap += look.deleted_past_cap
        if look.near:
            report.near.append(account)
    return report


@dataclass
class _Look:
    unreachable: bool = False
    keys: int = 0
    replacing: list[str] = field(default_factory=list)
    deleted_past_cap: int = 0
    near: bool = False


def _look(
    db: Database,
    account: str,
    gateway: VeniceGateway,
    clock: Clock,
    reserves: dict[str, int],
    share: Decimal | None,
) -> _Look:
    listed_at = clock()
    try:
        keys = gateway.list_keys()
        balance = gateway.balance()
    except venice_errors.VeniceError as exc:
        log.info("watch: %s unreachable (%s)", account, type(exc).__name__)
        with db.begin() as session:
            record_allocation(
                session,
                account=account,
                allocation_cents=None,
                now=listed_at,
                error=f"{type(exc).__name__}: {exc}",
            )
        return _Look(unreachable=True)
    usage = {k.id: k.period_usage for k in keys}
    now = clock()
    with db.begin() as session:
        record_key_counts(
            session,
            account=account,
            live=sum(1 for k in keys if k.expires_at is None or k.expires_at > now),
            created_last_minute=sum(1 for k in keys if now - k.created_at < CREATION_WINDOW),
            now=now,
        )
        seen = live_keys.observe_account(
            session,
            account=account,
            balance_cents=dollars_to_cents(balance.diem or Decimal(0)),
            usage=usage,
            listed_at=listed_at,
            reserves=reserves,
            now=now,
            reserve_max_share=share,
        )
    look = _Look(keys=len(keys), replacing=list(seen.replacing), near=bool(seen.near))
    for order_id, key_id in seen.past_cap:
        try:
            ensure_deleted(gateway, key_id)
        except venice_errors.VeniceError:
            continue  # the next look tries again
        with db.begin() as session:
            live_keys.key_past_cap_deleted(session, order_id=order_id, now=clock())
        look.deleted_past_cap += 1
    return look
