"""Apply a paid top-up to its key (``PATCH /api_keys``), or give the money back.

The decisions are :mod:`cheaptokens.orders.topups`'s; the steps that raise the cap are
:mod:`cheaptokens.orders.capraise`'s (an x402 top-up runs them inside its request). The cap a
key must have is the one the database holds (claims of every top-up included); this job sets
Venice's cap to it and checks the database again afterwards, so a top-up racing another one,
or a retry after a lost answer, always ends with Venice holding the latest cap.
"""

from __future__ import annotations

from collections.abc import Mapping

from cheaptokens.db import Database
from cheaptokens.jobs import Retry
from cheaptokens.orders import refunds, topups
from cheaptokens.orders.capraise import apply_topup, set_cap
from cheaptokens.payments import PaymentProvider
from cheaptokens.payments.errors import RefundFailed
from cheaptokens.payments.x402_refunds import X402Refunder
from cheaptokens.times import Clock
from cheaptokens.venice.types import VeniceGateway
from cheaptokens.worker.refund import pay_back

__all__ = ["apply_topup", "refund_topup", "set_cap"]


def refund_topup(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    payments: PaymentProvider,
    clock: Clock,
    topup_id: str,
    x402_refunds: X402Refunder | None = None,
) -> None:
    """Put the key's cap back to what the database holds (without this top-up), then refund."""
    now = clock()
    with db.read() as session:
        plan = topups.refund_plan(session, topup_id=topup_id)
        cap = topups.cap_of(session, order_id=plan.order_id) if plan else None
        payer = refunds.payer_of(session, payment_ref=plan.payment_ref) if plan else None
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
            ref = pay_back(
                db=db,
                payments=payments,
                x402_refunds=x402_refunds,
                clock=clock,
                order_id=plan.order_id,
                payment_ref=plan.payment_ref,
                payer=payer,
                amount_cents=plan.amount_cents,
                idempotency_key=f"refund-{topup_id}",
            )
        except RefundFailed as exc:
            with db.begin() as session:
                topups.refund_failed(session, topup_id=topup_id, reason=str(exc), now=now)
            return
    with db.begin() as session:
        topups.refunded(session, topup_id=topup_id, refund_ref=ref, now=now)
