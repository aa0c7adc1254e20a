"""Top-ups: more credit on the same key, paid like an order, on the key's own account.

    awaiting_payment ──paid──▶ paid ──cap raised──▶ applied
          ├─declined/expired──▶ cancelled ──late payment (room on the key's account)──▶ paid
          └─────────────── paid, but no room, too late or the key is gone ──▶ refunded
                                                         (failed, if the refund fails)
    paid (x402: authorized, not settled) ──did not settle, cap set back──▶ cancelled

An x402 top-up (``provider`` x402) is *paid* when the facilitator verified the authorization
(:func:`payment_authorized`: the credit is sold, nothing charged yet); the cap is raised, then
the authorization settled (:func:`payment_settled`: the money is in), then it is applied. If
it does not settle, :func:`not_settled` gives the claim and the credit back and the refund job
sets Venice's cap back down; with no money to return it ends *cancelled*.

The credit is reserved on the key's account when the top-up is placed (a key draws on one
account), sold when it is paid, and added to the key's cap with ``PATCH /api_keys``. The new
cap is claimed in the database first (``order.key_credit_cents`` grows in the same transaction
that marks the top-up as being applied), and the worker then sets Venice's cap to whatever the
database holds, checking again after each call: two top-ups racing each other, or a top-up
racing the key's own spending, can never lose an update, and a repeated call sets the same cap.

Every function takes the caller's session and ``now``; none commits, none calls out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cheaptokens import inventory, jobs, ledger
from cheaptokens.errors import Conflict, IdempotencyMismatch, InvalidInput, SoldOut
from cheaptokens.models import Order, Quote, Topup
from cheaptokens.orders import state as st
from cheaptokens.orders.ids import new_topup_id
from cheaptokens.orders.quotes import create_quote
from cheaptokens.orders.rules import X402_PROVIDER, ShopRules
from cheaptokens.payments import Checkout, PaymentEvent
from cheaptokens.times import day_end, next_midnight

AWAITING_PAYMENT = "awaiting_payment"
CANCELLED = "cancelled"
PAID = "paid"
APPLIED = "applied"
REFUNDED = "refunded"
FAILED = "failed"

ALLOWED: dict[str, frozenset[str]] = {
    AWAITING_PAYMENT: frozenset({PAID, CANCELLED}),
    CANCELLED: frozenset({PAID}),
    PAID: frozenset({APPLIED, REFUNDED, FAILED, CANCELLED}),  # cancelled: x402, never charged
    APPLIED: frozenset({REFUNDED, FAILED}),  # the whole order refunded (operator, pro rata)
    FAILED: frozenset({REFUNDED}),
    REFUNDED: frozenset(),
}


class NoRoomOnKeyAccount(Conflict):
    code = "no_room_on_key_account"


def _set_status(topup: Topup, new: str, now: datetime) -> None:
    if new not in ALLOWED.get(topup.status, frozenset()):
        raise Conflict(f"a top-up cannot go from {topup.status} to {new}")
    topup.status = new
    topup.updated_at = now


def _drop_hold(session: Session, topup: Topup) -> None:
    if topup.holds == "reserved":
        inventory.release(
            session, account=topup.account, day=topup.day, credit_cents=topup.credit_cents
        )
    elif topup.holds == "sold":
        inventory.unsell(
            session, account=topup.account, day=topup.day, credit_cents=topup.credit_cents
        )
    topup.holds = "none"


# ----------------------------------------------------------------------------- placed
@dataclass(frozen=True, slots=True)
class PlacedTopup:
    topup: Topup
    created: bool


def place_topup(
    session: Session,
    *,
    order: Order,
    rules: ShopRules,
    credit_cents: int,
    provider: str,
    now: datetime,
    idempotency_key: str | None = None,
    client: str | None = None,
    hold_until: datetime | None = None,
) -> PlacedTopup:
    """Reserve ``credit_cents`` more on the key's own account, at the current price, until
    ``hold_until`` (default: a checkout's time)."""
    fingerprint = hashlib.sha256(f"topup|{credit_cents}".encode()).hexdigest()
    if idempotency_key is not None:
        existing = session.scalars(
            select(Topup).where(
                Topup.order_id == order.id, Topup.idempotency_key == idempotency_key
            )
        ).first()
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was used with a different top-up",
                    field="Idempotency-Key",
                )
            return PlacedTopup(existing, created=False)
    if order.status != st.FULFILLED or order.key_id is None or order.key_deleted_at is not None:
        raise InvalidInput(
            f"only a live key can be topped up (this order is {order.status})", field="status"
        )
    if order.day != now.date():
        raise InvalidInput(
            "this key expires at 00:00 UTC and today's credit is another day's: buy a new key",
            field="status",
        )
    try:
        quote = create_quote(
            session,
            rules=rules,
            credit_cents=credit_cents,
            now=now,
            client=client,
            account=order.account,
        )
    except SoldOut as exc:
        room = dict(inventory.supply(session, day=now.date()).rooms).get(order.account, 0)
        raise NoRoomOnKeyAccount(
            f"the Venice account your key lives on has {max(0, room)} cents of credit left "
            f"today, not {credit_cents}: top up by less, or buy a new key (POST /api/orders, "
            "or POST /api/buy with x402)"
            + (f"; {exc.available_cents} cents are for sale on other accounts"),
            field="credit_cents",
        ) from None
    session.execute(
        update(Quote).where(Quote.id == quote.id, Quote.status == "open").values(status="ordered")
    )
    topup = Topup(
        id=new_topup_id(),
        order_id=order.id,
        quote_id=quote.id,
        account=quote.account,
        day=quote.day,
        credit_cents=credit_cents,
        price_cents=quote.price_cents,
        currency=rules.currency,
        status=AWAITING_PAYMENT,
        holds="reserved",
        created_at=now,
        updated_at=now,
        checkout_expires_at=min(hold_until or now + rules.checkout_ttl, next_midnight(now)),
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        client=client,
        payment_provider=provider,
    )
    session.add(topup)
    ledger.record(
        session,
        kind="topup_placed",
        now=now,
        order_id=order.id,
        quote_id=quote.id,
        account=quote.account,
        day=quote.day,
        credit_cents=credit_cents,
        detail={"topup_id": topup.id, "price_cents": quote.price_cents},
    )
    return PlacedTopup(topup, created=True)


def attach_checkout(topup: Topup, *, checkout: Checkout, now: datetime) -> None:
    topup.payment_reference = checkout.reference
    topup.checkout_url = checkout.checkout_url
    topup.updated_at = now


def cancel(session: Session, *, topup: Topup, now: datetime, reason: str) -> None:
    """An unpaid top-up is given up: its credit goes back on sale."""
    if topup.status != AWAITING_PAYMENT:
        return
    _set_status(topup, CANCELLED, now)
    _drop_hold(session, topup)
    topup.failure_reason = reason
    ledger.record(
        session,
        kind="topup_cancelled",
        now=now,
        order_id=topup.order_id,
        account=topup.account,
        day=topup.day,
        credit_cents=-topup.credit_cents,
        detail={"topup_id": topup.id, "reason": reason},
    )


def sweep_expired(session: Session, *, now: datetime, limit: int = 500) -> int:
    due = session.scalars(
        select(Topup)
        .where(Topup.status == AWAITING_PAYMENT, Topup.checkout_expires_at <= now)
        .limit(limit)
    ).all()
    for topup in due:
        cancel(session, topup=topup, now=now, reason="checkout expired")
    return len(due)


# ----------------------------------------------------------------------------- paid
def mark_paid(session: Session, *, topup: Topup, event: PaymentEvent, now: datetime) -> None:
    """Money for a top-up arrived: sell its credit and queue the cap raise, or a refund."""
    if topup.status not in (AWAITING_PAYMENT, CANCELLED):
        ledger.record(
            session,
            kind="payment_duplicate",
            now=now,
            order_id=topup.order_id,
            detail={"event_id": event.event_id, "topup_id": topup.id, "status": topup.status},
        )
        return
    late = topup.status == CANCELLED
    _set_status(topup, PAID, now)
    topup.paid_at = now
    topup.paid_cents = event.amount_cents
    topup.payment_ref = event.payment_ref
    ledger.record(
        session,
        kind="payment_received",
        now=now,
        order_id=topup.order_id,
        money_cents=event.amount_cents,
        detail={"event_id": event.event_id, "topup_id": topup.id, "currency": event.currency},
    )
    problem = None
    if event.amount_cents != topup.price_cents or event.currency.lower() != topup.currency:
        problem = "paid amount or currency does not match the top-up"
    elif topup.day != now.date():
        problem = "payment arrived after the key's day ended"
    elif late:
        if inventory.sell_unreserved(
            session, account=topup.account, day=topup.day, credit_cents=topup.credit_cents
        ):
            topup.holds = "sold"
        else:
            problem = "payment arrived after the hold lapsed and the key's account is sold out"
    else:
        inventory.sell(
            session, account=topup.account, day=topup.day, credit_cents=topup.credit_cents
        )
        topup.holds = "sold"
    if problem is not None:
        refund_due(session, topup=topup, reason=problem, now=now)
        return
    ledger.record(
        session,
        kind="credit_sold",
        now=now,
        order_id=topup.order_id,
        account=topup.account,
        day=topup.day,
        credit_cents=topup.credit_cents,
        detail={"topup_id": topup.id},
    )
    jobs.enqueue(session, kind=jobs.APPLY_TOPUP, order_id=topup.id, now=now)


def payment_authorized(
    session: Session, *, topup: Topup, payer: str, payment_ref: str, now: datetime
) -> None:
    """x402: the facilitator verified an authorization of the top-up's price. Its credit is
    sold and the cap may be raised; the money moves when it settles (:func:`payment_settled`),
    after the cap was raised. The caller queues (and holds) the ``apply_topup`` job."""
    _set_status(topup, PAID, now)
    topup.paid_at = now
    topup.payment_ref = payment_ref
    inventory.sell(session, account=topup.account, day=topup.day, credit_cents=topup.credit_cents)
    topup.holds = "sold"
    ledger.record(
        session,
        kind="payment_authorized",
        now=now,
        order_id=topup.order_id,
        detail={"topup_id": topup.id, "payer": payer, "amount_cents": topup.price_cents},
    )
    ledger.record(
        session,
        kind="credit_sold",
        now=now,
        order_id=topup.order_id,
        account=topup.account,
        day=topup.day,
        credit_cents=topup.credit_cents,
        detail={"topup_id": topup.id},
    )


def payment_settled(
    session: Session, *, topup: Topup, amount_cents: int, transaction: str | None, now: datetime
) -> None:
    """x402: the top-up's authorization was settled: the money is the operator's."""
    if topup.paid_cents is not None:
        return
    topup.paid_cents = amount_cents
    topup.updated_at = now
    ledger.record(
        session,
        kind="payment_received",
        now=now,
        order_id=topup.order_id,
        money_cents=amount_cents,
        detail={"topup_id": topup.id, "transaction": transaction, "currency": "usdc"},
    )


def not_settled(session: Session, *, topup_id: str, now: datetime) -> None:
    """x402: the authorization did not settle after the cap was raised: the claim and the
    credit go back, and the refund job sets Venice's cap back down (nothing to refund)."""
    topup = session.get(Topup, topup_id, with_for_update=True)
    if topup is None or topup.status != PAID or topup.paid_cents is not None:
        return
    order = session.get(Order, topup.order_id, with_for_update=True)
    refund_due(
        session,
        topup=topup,
        reason="the payment did not settle; nothing was charged",
        now=now,
        order=order,
    )


# ----------------------------------------------------------------------------- applied
@dataclass(frozen=True, slots=True)
class CapPlan:
    topup_id: str
    order_id: str
    account: str
    key_id: str
    #: an x402 authorization still to settle before the top-up counts as applied
    unsettled: bool = False


def begin_apply(
    session: Session, *, topup_id: str, rules: ShopRules, now: datetime
) -> CapPlan | None:
    """Claim the top-up's credit on the order's cap (once), or end it with a refund when the
    key can no longer take it. Raises :class:`jobs.Retry` while the key is being replaced."""
    topup = session.get(Topup, topup_id, with_for_update=True)
    if topup is None or topup.status != PAID:
        return None
    order = session.get(Order, topup.order_id, with_for_update=True)
    if order is not None and order.status == st.REPLACING:
        raise jobs.Retry("the key is being replaced; the top-up waits for the new key", 5.0)
    deadline = min((topup.paid_at or now) + rules.provision_deadline, day_end(topup.day))
    reason = None
    if order is None or order.status != st.FULFILLED or order.key_id is None:
        reason = "the key is no longer live"
    elif order.account != topup.account:
        reason = "the key moved to another Venice account"
    elif now >= deadline:
        reason = "the key's cap could not be raised in time"
    if reason is not None:
        refund_due(session, topup=topup, reason=reason, now=now, order=order)
        return None
    assert order is not None and order.key_id is not None
    if topup.raised_to_cents is None:
        order.key_credit_cents = order.key_cap_cents + topup.credit_cents
        order.updated_at = now
        topup.raised_to_cents = order.key_credit_cents
        ledger.record(
            session,
            kind="topup_claimed",
            now=now,
            order_id=order.id,
            account=order.account,
            credit_cents=topup.credit_cents,
            detail={"topup_id": topup.id, "cap_cents": order.key_credit_cents},
        )
    unsettled = topup.payment_provider == X402_PROVIDER and topup.paid_cents is None
    return CapPlan(topup.id, order.id, order.account, order.key_id, unsettled)


def cap_of(session: Session, *, order_id: str) -> int | None:
    """The key's cap as the database holds it now (what Venice must be set to)."""
    order = session.get(Order, order_id)
    if order is None or order.key_deleted_at is not None or order.status != st.FULFILLED:
        return None
    return order.key_cap_cents


def applied(session: Session, *, topup_id: str, cap_cents: int, now: datetime) -> None:
    topup = session.get(Topup, topup_id, with_for_update=True)
    if topup is None or topup.status != PAID:
        return
    _set_status(topup, APPLIED, now)
    topup.applied_at = now
    ledger.record(
        session,
        kind="topup_applied",
        now=now,
        order_id=topup.order_id,
        account=topup.account,
        credit_cents=topup.credit_cents,
        detail={"topup_id": topup.id, "cap_cents": cap_cents},
    )


# ----------------------------------------------------------------------------- refunded
def refund_due(
    session: Session,
    *,
    topup: Topup,
    reason: str,
    now: datetime,
    order: Order | None = None,
) -> None:
    """The top-up cannot be applied: give its credit back (and its claim on the cap), and
    queue the refund of its payment."""
    if topup.raised_to_cents is not None and order is not None:
        # Give the claim back: the refund job sets Venice's cap to what is left first.
        order.key_credit_cents = max(0, order.key_cap_cents - topup.credit_cents)
        topup.raised_to_cents = None
    _drop_hold(session, topup)  # never applied: its credit is for sale again
    topup.failure_reason = reason
    topup.updated_at = now
    jobs.enqueue(session, kind=jobs.REFUND_TOPUP, order_id=topup.id, now=now)
    ledger.record(
        session,
        kind="refund_requested",
        now=now,
        order_id=topup.order_id,
        detail={"topup_id": topup.id, "reason": reason},
    )


@dataclass(frozen=True, slots=True)
class TopupRefund:
    topup_id: str
    order_id: str
    account: str
    key_id: str | None
    payment_ref: str | None
    amount_cents: int


def refund_plan(session: Session, *, topup_id: str) -> TopupRefund | None:
    topup = session.get(Topup, topup_id)
    if topup is None or topup.status not in (PAID, FAILED):
        return None
    order = session.get(Order, topup.order_id)
    key_id = order.key_id if order is not None and order.status == st.FULFILLED else None
    return TopupRefund(
        topup.id,
        topup.order_id,
        topup.account,
        key_id,
        topup.payment_ref,
        topup.paid_cents or 0,
    )


def refunded(
    session: Session,
    *,
    topup_id: str,
    refund_ref: str | None,
    now: datetime,
    amount_cents: int | None = None,
) -> None:
    """The top-up's payment went back (all of it, or ``amount_cents`` of it)."""
    topup = session.get(Topup, topup_id, with_for_update=True)
    if topup is None or topup.status in (REFUNDED, CANCELLED):
        return
    if topup.paid_cents is None and topup.payment_provider == X402_PROVIDER:
        # An x402 authorization that never settled: nothing came in, nothing goes back.
        _set_status(topup, CANCELLED, now)
        ledger.record(
            session,
            kind="topup_cancelled",
            now=now,
            order_id=topup.order_id,
            detail={"topup_id": topup.id, "reason": topup.failure_reason},
        )
        return
    _set_status(topup, REFUNDED, now)
    topup.refund_ref = refund_ref
    topup.refunded_at = now
    ledger.record(
        session,
        kind="refunded",
        now=now,
        order_id=topup.order_id,
        money_cents=-(topup.paid_cents or 0 if amount_cents is None else amount_cents),
        detail={"topup_id": topup.id, "refund_ref": refund_ref},
    )


def refund_failed(session: Session, *, topup_id: str, reason: str, now: datetime) -> None:
    topup = session.get(Topup, topup_id, with_for_update=True)
    if topup is not None and topup.status == PAID:
        _set_status(topup, FAILED, now)
        ledger.record(
            session,
            kind="refund_failed",
            now=now,
            order_id=topup.order_id,
            detail={"topup_id": topup.id, "reason": reason},
        )


# ----------------------------------------------------------------------------- views
def of_order(session: Session, *, order_id: str) -> list[Topup]:
    return list(
        session.scalars(
            select(Topup).where(Topup.order_id == order_id).order_by(Topup.created_at)
        ).all()
    )
