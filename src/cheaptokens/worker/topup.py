"""Apply a paid top-up to its key (``PATCH /api_keys``), or give the money back.

The decisions are :mod:`cheaptokens.orders.topups`'s. The cap a key must have is the one the
database holds (claims of every top-up included); this job sets Venice's cap to it and checks
the database again afterwards, so a top-up racing another one, or a retry after a lost answer,
always ends with Venice holding the latest cap.
"""

from __future__ import annotations

from collections.abc import Mapping

from cheaptokens.db import Database
from cheaptokens.jobs import Retry
from cheaptokens.orders import topups
from cheaptokens.orders.rules import ShopRules
from cheaptokens.payments import PaymentProvider
from cheaptokens.payments.errors import PaymentProviderUnavailable, RefundFailed
from cheaptokens.times import Clock
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker.provision import key_limit

#: PATCH, read the database, PATCH again if another top-up moved the cap meanwhile.
ROUNDS = 5


def apply_topup(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    rules: ShopRules,
    clock: Clock,
    topup_id: str,
) -> None:
    with db.begin() as session:
        plan = topups.begin_apply(session, topup_id=topup_id, rules=rules, now=clock())
    if plan is None:
        return
    gateway = gateways.get(plan.account)
    if gateway is None:
        raise Retry(f"account {plan.account} is not configured", 60)
    sent = None
    for _ in range(ROUNDS):
        with db.read() as session:
            cap = topups.cap_of(session, order_id=plan.order_id)
        if cap is None:
            return  # the key went away meanwhile: the next attempt refunds the top-up
        if cap == sent:
            break
        set_cap(gateway, plan.key_id, cap)
        sent = cap
    else:
        raise Retry("the key's cap kept moving", 1.0)
    with db.begin() as session:
        topups.applied(session, topup_id=topup_id, cap_cents=sent, now=clock())


def set_cap(gateway: VeniceGateway, key_id: str, cap_cents: int) -> None:
    """Set the key's DIEM cap (USD stays at 0); Venice errors become retries."""
    try:
        gateway.update_key(key_id, consumption_limit=key_limit(cap_cents))
    except venice_errors.NotFound:
        raise Retry("the key is gone in Venice; the watch will replace it", 10.0) from None
    except venice_errors.RateLimited as exc:
        raise Retry("venice rate limited", max(exc.retry_after or 0, 1.0)) from exc
    except venice_errors.VeniceError as exc:
        raise Retry(f"venice error on PATCH ({type(exc).__name__})", 2.0) from exc


def refund_topup(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    payments: PaymentProvider,
    clock: Clock,
    topup_id: str,
) -> None:
    """Put the key's cap back to what the database holds (without this top-up), then refund."""
    now = clock()
    with db.read() as session:
        plan = topups.refund_plan(session, topup_id=topup_id)
        cap = topups.cap_of(session, order_id=plan.order_id) if plan else None
    if plan is None:
        return
    gateway = gateways.get(plan.account)
    if plan.key_id is not None and cap is not None and gateway is not None:
        try:
            set_cap(gateway, plan.key_id, cap)
        except Retry as exc:
            if "gone" not in str(exc):
                raise
    ref: str | None = None
    if plan.amount_cents > 0 and plan.payment_ref:
        try:
            ref = payments.refund(
                payment_ref=plan.payment_ref,
                amount_cents=plan.amount_cents,
                idempotency_key=f"refund-{topup_id}",
            ).reference
        except PaymentProviderUnavailable as exc:
            raise Retry("payment provider unavailable", 10.0) from exc
        except RefundFailed as exc:
            with db.begin() as session:
                topups.refund_failed(session, topup_id=topup_id, reason=str(exc), now=now)
            return
    with db.begin() as session:
        topups.refunded(session, topup_id=topup_id, refund_ref=ref, now=now)
