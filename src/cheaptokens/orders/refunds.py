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
from cheaptokens.models import Order, StrayPayment
from cheaptokens.orders import state as st
from cheaptokens.orders import transitions


@dataclass(frozen=True, slots=True)
class RefundPlan:
    order_id: str
    account: str
    key_id: str | None
    payment_ref: str | None
    amount_cents: int
    #: a key may exist in Venice (an attempt was started and no deletion recorded)
    delete_keys_first: bool


def refund_plan(session: Session, *, order_id: str) -> RefundPlan | None:
    """What a refund of ``order_id`` must do; None if there is nothing to refund."""
    order = session.get(Order, order_id)
    if order is None or order.status in (st.REFUNDED, st.AWAITING_PAYMENT, st.EXPIRED):
        return None
    return RefundPlan(
        order_id=order.id,
        account=order.account,
        key_id=order.key_id,
        payment_ref=order.payment_ref,
        amount_cents=transitions.refund_amount(order),
        # a key may be live: the order's own, or one a replacement attempt made
        delete_keys_first=(
            order.provision_started_at is not None
            and (order.key_deleted_at is None or order.status == st.REPLACING)
        ),
    )


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
