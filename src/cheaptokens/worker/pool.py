"""The warm pool in Venice: make keys ahead of sales, delete them when their day is over.

A pool key is created with ``consumptionLimit {"diem": 0, "usd": 0}`` (it can spend
nothing), ``expiresAt`` the next 00:00 UTC and description ``cheaptokens:pool:<id>``; its
secret is stored sealed (:mod:`cheaptokens.inventory.pool` keeps the rows). Refills leave
``pool_creation_headroom`` of each minute's creation budget to direct creation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from cheaptokens.db import Database
from cheaptokens.inventory import keyroom, pool
from cheaptokens.orders.rules import KEY_MODELS, ShopRules, pool_key_description
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import Clock, next_midnight
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import ensure_deleted
from cheaptokens.venice.types import ConsumptionLimit, CreatedKey, VeniceGateway
from cheaptokens.worker.accounts import each_account

log = logging.getLogger(__name__)


def refill(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    box: SecretBox,
    rules: ShopRules,
    clock: Clock,
    limit: int | None = None,
    parallel: int = 1,
) -> int:
    """Top up each account's pool within its creation budget (``parallel`` accounts at once,
    at most ``limit`` keys in all); returns keys made."""
    if rules.pool_size <= 0:
        return 0
    budget = rules.creations_per_minute - rules.pool_creation_headroom
    db = db.one_writer()
    made = [0]
    lock = threading.Lock()

    def take_one() -> bool:
        with lock:
            if limit is not None and made[0] >= limit:
                return False
            made[0] += 1
            return True

    def give_back() -> None:
        with lock:
            made[0] -= 1

    def fill(account: str, gateway: VeniceGateway) -> None:
        # The key made last turn is stored in the same transaction as this turn's look: one
        # transaction per key made (plus the last look), not two.
        made_key: tuple[CreatedKey, datetime] | None = None
        while True:
            now = clock()
            with db.begin() as session:
                if made_key is not None:
                    _store(session, box, account, *made_key)
                    made_key = None
                if not take_one():
                    return
                ready = pool.ready_count(session, account=account, now=now)
                room = rules.max_active_keys - keyroom.live_order_keys(session, account, now)
                if (
                    ready >= rules.pool_size
                    or room - ready <= 0
                    or keyroom.creations_in_window(session, account, now) >= budget
                ):
                    give_back()
                    return
                keyroom.record_creation(session, account=account, now=now, pool=True)
            try:
                created = gateway.create_key(
                    description=pool_key_description(),
                    consumption_limit=ConsumptionLimit(diem=Decimal(0), usd=Decimal(0)),
                    limit_period="EPOCH",
                    expires_at=next_midnight(now),
                    model_privacy=KEY_MODELS["private"],  # a sale sets its order's models
                )
            except venice_errors.VeniceError as exc:
                give_back()
                log.info("pool refill on %s stopped: %s", account, type(exc).__name__)
                return
            made_key = (created, now)

    each_account(gateways, fill, parallel=parallel)
    return made[0]


def _store(
    session: Session, box: SecretBox, account: str, created: CreatedKey, now: datetime
) -> None:
    pool.add_ready(
        session,
        key_id=created.id,
        account=account,
        day=now.date(),
        secret=box.seal(created.api_key, context=created.id),
        last6=created.api_key[-6:],
        expires_at=created.expires_at or next_midnight(now),
        now=now,
    )


def expire(*, db: Database, gateways: Mapping[str, VeniceGateway], clock: Clock) -> int:
    """Delete pool keys whose day is over (Venice stops honouring them at 00:00 anyway)."""
    now = clock()
    with db.read() as session:
        due = pool.due_for_deletion(session, now=now)
    for key_id, account in due:
        gateway = gateways.get(account)
        if gateway is not None:
            try:
                ensure_deleted(gateway, key_id)
            except venice_errors.VeniceError:
                continue
        with db.begin() as session:
            pool.discard(session, key_id=key_id)
    return len(due)
