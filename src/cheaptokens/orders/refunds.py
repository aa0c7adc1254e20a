"""The steps of a refund between the worker's calls: first make sure no key of the order
stays alive in Venice, then refund the payment, then record it (each step safe to repeat).

Extra payments for an order already paid (stray payments) are refunded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens import ledger
from cheaptokens.alerts import raise_alert
from cheaptokens.models import Alert, Order, StrayPayment, Topup, X402Payment
from cheaptokens.orders import state as st
from cheaptokens.orders import topups, transitions

#: how an x402 payment is referred to on an order or a top-up
X402_REF = "x402:"
#: the alert of an x402 refund waiting for the refund wallet's USDC
REFUND_WAITS = "refund_wallet_underfunded"


@dataclass(frozen=True, slots=True)
class TopupPart:
    """The part of a refund that goes back through a top-up's own payment."""

    topup_id: str
    payment_ref: str | None
    amount_cents: int
    #: the wallet that paid it (x402), where its refund goes
    payer: str | None = None


@dataclass(frozen=True, slots=True)
class RefundPlan:
    order_id: str
    account: str
    key_id: str | None
    payment_ref: str | None
    amount_cents: int
    #: a key may exist in Venice (an attempt was started and no deletion recorded)
    delete_keys_first: bool
    #: applied top-ups' payments, refunded after the order's
    topup_parts: tuple[TopupPart, ...] = ()
    #: the wallet that paid the order (x402), where its refund goes
    payer: str | None = None


def refund_plan(session: Session, *, order_id: str) -> RefundPlan | None:
    """What a refund of ``order_id`` must do; None if there is nothing to refund."""
    order = session.get(Order, order_id)
    if order is None or order.status in (st.REFUNDED, st.AWAITING_PAYMENT, st.EXPIRED):
        return None
    # The order's payment first, then each applied top-up's, up to what is due in all.
    first = transitions.refund_amount(order)
    due = None if order.refund_due_cents is None else order.refund_due_cents - first
    parts = []
    for t in topups.of_order(session, order_id=order.id):
        if t.status != topups.APPLIED:
            continue  # a top-up not applied yet ends on its own, refunded in full
        amount = t.paid_cents or 0 if due is None else min(t.paid_cents or 0, max(0, due))
        if due is not None:
            due -= amount
        parts.append(
            TopupPart(t.id, t.payment_ref, amount, payer_of(session, payment_ref=t.payment_ref))
        )
    return RefundPlan(
        order_id=order.id,
        account=order.account,
        key_id=order.key_id,
        payment_ref=order.payment_ref,
        amount_cents=first,
        topup_parts=tuple(parts),
        payer=payer_of(session, payment_ref=order.payment_ref),
        # a key may be live: the order's own, or one a replacement attempt made
        delete_keys_first=(
            order.provision_started_at is not None
            and (order.key_deleted_at is None or order.status == st.REPLACING)
        ),
    )


def payer_of(session: Session, *, payment_ref: str | None) -> str | None:
    """The wallet that paid an x402 payment (``x402:<payment id>``); None for any other."""
    if not payment_ref or not payment_ref.startswith(X402_REF):
        return None
    row = session.get(X402Payment, payment_ref.removeprefix(X402_REF))
    return None if row is None else row.payer


def refund_waits(session: Session, *, order_id: str, message: str, now: datetime) -> None:
    """An x402 refund waits for its refund wallet to be funded: one alert per order."""
    seen = session.scalar(
        select(Alert.id).where(Alert.kind == REFUND_WAITS, Alert.order_id == order_id).limit(1)
    )
    if seen is None:
        raise_alert(session, kind=REFUND_WAITS, order_id=order_id, message=message, now=now)


def keys_deleted(session: Session, *, order_id: str, now: datetime) -> None:
    order = session.get(Order, order_id, with_for_update=True)
    if order is not None:
        transitions.key_deleted(session, order=order, now=now, why="refund")


def refund_done(session: Session, *, order_id: str, refund_ref: str | None, now: datetime) -> None:
    order = session.get(Order, order_id, with_for_update=True)
    if order is None or order.status == st.REFUNDED:
        return
    transitions.refunded(session, order=order, refund_ref=refund_ref, now=now)


def refund_refused(session: Session, *, order_id: str, reason: str, now: datetime) -> None:
    """The provider will not refund: the order fails and the operator is alerted."""
    order = session.get(Order, order_id, with_for_update=True)
    if order is not None and order.status in (st.PAID, st.FULFILLED, st.REPLACING):
        transitions.refund_failed(session, order=order, reason=reason, now=now)
    raise_alert(session, kind="refund_failed", order_id=order_id, message=reason, now=now)


@dataclass(frozen=True, slots=True)
class StrayRefund:
    payment_ref: str
    amount_cents: int


def pending_strays(session: Session, *, order_id: str) -> list[StrayRefund]:
    """Extra payments for ``order_id`` not refunded yet."""
    rows = session.execute(
        select(StrayPayment.payment_ref, StrayPayment.amount_cents).where(
            StrayPayment.order_id == order_id, StrayPayment.refunded_at.is_(None)
        )
    ).all()
    return [StrayRefund(ref, amount) for ref, amount in rows]


def stray_refunded(
    session: Session, *, order_id: str, stray: StrayRefund, refund_ref: str, now: datetime
) -> None:
    row = session.get(StrayPayment, stray.payment_ref)
    if row is None or row.refunded_at is not None:
        return
    row.refunded_at, row.refund_ref = now, refund_ref
    ledger.record(
        session,
        kind="stray_payment_refunded",
        now=now,
        order_id=order_id,
        money_cents=-stray.amount_cents,
        detail={"refund_ref": refund_ref},
    )


def stray_refund_refused(session: Session, *, order_id: str, reason: str, now: datetime) -> None:
    raise_alert(session, kind="refund_failed", order_id=order_id, message=reason, now=now)


def topup_part_refunded(
    session: Session, *, part: TopupPart, refund_ref: str | None, now: datetime
) -> None:
    topup = session.get(Topup, part.topup_id, with_for_update=True)
    if topup is None or topup.status == topups.REFUNDED:
        return
    topups.refunded(
        session,
        topup_id=part.topup_id,
        refund_ref=refund_ref,
        now=now,
        amount_cents=part.amount_cents,
    )
