"""Verified payment-provider events, applied to orders exactly once.

Duplicates (same ``event_id``) change nothing. A ``paid`` event moves its order through
:func:`~cheaptokens.orders.transitions.mark_paid`; a second, *different* payment for an order
already paid is recorded as a stray payment and refunded in full; ``failed``/``expired``
cancel an unpaid order and never undo a sale.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cheaptokens import jobs, ledger
from cheaptokens.models import Order, StrayPayment, Topup, WebhookEvent
from cheaptokens.orders import state as st
from cheaptokens.orders import topups, transitions
from cheaptokens.orders.ids import is_order_id, is_topup_id
from cheaptokens.payments import PaymentEvent


def record_payment_event(
    session: Session, *, event: PaymentEvent, provider: str, now: datetime
) -> Order | None:
    """Apply a verified provider event exactly once; returns the order it concerned."""
    if session.get(WebhookEvent, event.event_id) is not None:
        return None
    # Another integration on the same provider account may tag its sessions with an
    # ``order_id`` of its own (any length, any characters): it is no order of ours, and must
    # not reach a 40-character column or a PostgreSQL text (NUL) — that would answer 500 and
    # make the provider redeliver it forever.
    if is_topup_id(event.order_id):
        _topup_event(session, event=event, provider=provider, now=now)
        return None
    ours = is_order_id(event.order_id)
    session.add(
        WebhookEvent(
            event_id=event.event_id,
            provider=provider,
            order_id=event.order_id if ours else None,
            received_at=now,
        )
    )
    order = session.get(Order, event.order_id, with_for_update=True) if ours else None
    if order is None:
        ledger.record(
            session,
            kind="event_unknown_order",
            now=now,
            detail={"event_id": event.event_id, "kind": event.kind, "ours": ours},
        )
        return None
    if event.kind == "paid":
        _paid(session, order=order, event=event, now=now)
    elif event.kind in ("failed", "expired"):
        transitions.cancel(session, order=order, now=now, reason=f"payment {event.kind}")
    return order


def _paid(session: Session, *, order: Order, event: PaymentEvent, now: datetime) -> None:
    if order.status in (st.AWAITING_PAYMENT, st.CANCELLED):
        transitions.mark_paid(session, order=order, event=event, now=now)
    elif event.payment_ref and order.payment_ref and event.payment_ref != order.payment_ref:
        _record_stray(session, order=order, event=event, now=now)
    else:
        ledger.record(
            session,
            kind="payment_duplicate",
            now=now,
            order_id=order.id,
            money_cents=0,
            detail={"event_id": event.event_id, "status": order.status},
        )


def _record_stray(session: Session, *, order: Order, event: PaymentEvent, now: datetime) -> None:
    """Money arrived twice for one order (a second, different payment): give it back."""
    assert event.payment_ref is not None
    if session.get(StrayPayment, event.payment_ref) is not None:
        return
    session.add(
        StrayPayment(
            payment_ref=event.payment_ref,
            order_id=order.id,
            amount_cents=event.amount_cents,
            currency=event.currency.lower(),
            received_at=now,
        )
    )
    ledger.record(
        session,
        kind="stray_payment_received",
        now=now,
        order_id=order.id,
        money_cents=event.amount_cents,
        detail={"event_id": event.event_id},
    )
    jobs.enqueue(session, kind=jobs.REFUND_STRAY, order_id=order.id, now=now)


def _topup_event(session: Session, *, event: PaymentEvent, provider: str, now: datetime) -> None:
    session.add(
        WebhookEvent(
            event_id=event.event_id, provider=provider, order_id=event.order_id, received_at=now
        )
    )
    topup = session.get(Topup, event.order_id, with_for_update=True)
    if topup is None:
        ledger.record(
            session,
            kind="event_unknown_order",
            now=now,
            detail={"event_id": event.event_id, "kind": event.kind, "ours": True},
        )
        return
    if event.kind == "paid":
        if (
            topup.status not in (topups.AWAITING_PAYMENT, topups.CANCELLED)
            and event.payment_ref
            and topup.payment_ref
            and event.payment_ref != topup.payment_ref
        ):
            order = session.get(Order, topup.order_id)
            assert order is not None
            _record_stray(session, order=order, event=event, now=now)
            return
        topups.mark_paid(session, topup=topup, event=event, now=now)
    elif event.kind in ("failed", "expired"):
        topups.cancel(session, topup=topup, now=now, reason=f"payment {event.kind}")
