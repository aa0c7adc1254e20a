"""Refund a paid order: first make sure no key of it stays alive, then refund the payment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens import failpoints, inventory
from cheaptokens.models import Order, StrayPayment
from cheaptokens.orders import ledger
from cheaptokens.orders import state as st
from cheaptokens.payments.errors import PaymentProviderUnavailable, RefundFailed
from cheaptokens.shop import Shop
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import delete_described, ensure_deleted
from cheaptokens.worker.provision import Retry, alert, description_for


def refund(shop: Shop, *, order_id: str) -> None:
    now = shop.clock()
    with shop.sessions.begin() as session:
        order = session.get(Order, order_id)
        if order is None or order.status in (st.REFUNDED, st.AWAITING_PAYMENT, st.EXPIRED):
            return
        account, key_id, payment_ref = order.account, order.key_id, order.payment_ref
        amount = order.paid_cents or 0
        needs_key_check = order.provision_started_at is not None and order.key_deleted_at is None
    gateway = shop.gateways.get(account)
    if needs_key_check and gateway is not None:
        try:
            if key_id is not None:
                ensure_deleted(gateway, key_id)
            delete_described(gateway, description_for(shop, order_id))
            failpoints.hit("refund.after_key_delete")
        except venice_errors.VeniceError as exc:
            raise Retry(f"could not delete the key first ({type(exc).__name__})", 5.0) from exc
        with shop.sessions.begin() as session:
            o = session.get(Order, order_id)
            if o is not None and o.key_id is not None:
                o.key_deleted_at = now
                ledger.record(
                    session,
                    kind="key_deleted",
                    now=now,
                    order_id=order_id,
                    account=account,
                    detail={"key_id": o.key_id, "why": "refund"},
                )
    refund_ref: str | None = None
    if amount > 0 and payment_ref:
        try:
            result = shop.payments.refund(
                payment_ref=payment_ref, amount_cents=amount, idempotency_key=f"refund-{order_id}"
            )
            refund_ref = result.reference
            failpoints.hit("refund.after_refund_call")
        except PaymentProviderUnavailable as exc:
            raise Retry("payment provider unavailable", 10.0) from exc
        except RefundFailed as exc:
            with shop.sessions.begin() as session:
                o = session.get(Order, order_id, with_for_update=True)
                if o is not None and o.status == st.PAID:
                    _finish(session, o, st.FAILED, now)
            alert(shop, kind="refund_failed", order_id=order_id, message=str(exc))
            return
    with shop.sessions.begin() as session:
        o = session.get(Order, order_id, with_for_update=True)
        if o is None or o.status == st.REFUNDED:
            return
        o.refund_ref = refund_ref
        o.refunded_at = now
        _finish(session, o, st.REFUNDED, now)
        failpoints.hit("refund.before_commit")
        ledger.record(
            session,
            kind="refunded",
            now=now,
            order_id=order_id,
            money_cents=-amount,
            detail={"refund_ref": refund_ref},
        )


def _finish(session: Session, order: Order, status: str, now: datetime) -> None:
    st.check_transition(order.status, status)
    order.status = status
    order.updated_at = now
    if order.holds == "sold" and status == st.REFUNDED:
        # Credit that no key ever drew on goes back on sale; a deleted key may have
        # spent part of it, so its credit stays counted as sold (never oversell).
        if order.key_id is None:
            inventory.unsell(
                session, account=order.account, day=order.day, credit_cents=order.credit_cents
            )
            ledger.record(
                session,
                kind="credit_released",
                now=now,
                order_id=order.id,
                account=order.account,
                day=order.day,
                credit_cents=-order.credit_cents,
            )
        order.holds = "none"


def refund_stray(shop: Shop, *, order_id: str) -> None:
    """Refund every extra payment recorded for ``order_id`` (idempotent per payment)."""
    now = shop.clock()
    with shop.sessions() as session:
        pending = session.execute(
            select(StrayPayment.payment_ref, StrayPayment.amount_cents).where(
                StrayPayment.order_id == order_id, StrayPayment.refunded_at.is_(None)
            )
        ).all()
    for payment_ref, amount in pending:
        try:
            result = shop.payments.refund(
                payment_ref=payment_ref, amount_cents=amount, idempotency_key=f"stray-{payment_ref}"
            )
        except PaymentProviderUnavailable as exc:
            raise Retry("payment provider unavailable", 10.0) from exc
        except RefundFailed as exc:
            alert(shop, kind="refund_failed", order_id=order_id, message=str(exc))
            continue
        with shop.sessions.begin() as session:
            row = session.get(StrayPayment, payment_ref)
            if row is None or row.refunded_at is not None:
                continue
            row.refunded_at, row.refund_ref = now, result.reference
            ledger.record(
                session,
                kind="stray_payment_refunded",
                now=now,
                order_id=order_id,
                money_cents=-amount,
                detail={"refund_ref": result.reference},
            )
