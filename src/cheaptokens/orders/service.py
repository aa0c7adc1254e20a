"""The order use cases: quote, place, pay, cancel, refund, receive — pure of web and SDKs.

Every function takes the session of the caller's transaction and the time (``now``);
none commits. Capacity moves through :mod:`cheaptokens.inventory`, every change of
money, capacity or key is appended to the ledger, and the state machine in
:mod:`cheaptokens.orders.state` guards every status change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cheaptokens import inventory
from cheaptokens.errors import (
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    QuoteExpired,
    SoldOut,
)
from cheaptokens.models import Order, Quote, StrayPayment, WebhookEvent
from cheaptokens.money import format_usd
from cheaptokens.orders import ledger, published
from cheaptokens.orders import state as st
from cheaptokens.orders.rules import ShopRules
from cheaptokens.payments import Checkout, PaymentEvent
from cheaptokens.pricing.curve import next_midnight, quote_price_cents
from cheaptokens.secretbox import hash_token, token_matches
from cheaptokens.worker import jobs


# ----------------------------------------------------------------------------- tokens
def order_token(order_id: str, *, token_key: bytes) -> str:
    """The bearer secret for an order: an HMAC of its id, so it can be re-shown on an
    idempotent replay without being stored (the table keeps only its hash)."""
    mac = hmac.new(token_key, b"order-token\x00" + order_id.encode(), hashlib.sha256).digest()
    return "ot_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def authorize(session: Session, *, order_id: str, token: str) -> Order:
    """The order if ``token`` is its bearer secret; NotFound otherwise (no hint which)."""
    order = session.get(Order, order_id)
    # Compare even when there is no such order, so timing tells nothing.
    stored = order.token_hash if order is not None else "0" * 64
    if not token_matches(token, stored) or order is None:
        raise NotFound("no order with that id and token")
    return order


# ----------------------------------------------------------------------------- supply
def open_day(session: Session, *, rules: ShopRules, now: datetime) -> inventory.Supply:
    """Today's supply, opening the day for every enabled account on its first request
    (an account enabled later in the day joins at the next 00:00 UTC)."""
    day = now.date()
    supply = inventory.supply(session, day=day)
    if supply.rooms:
        return supply
    inventory.ensure_day(
        session, day=day, sell_fraction=rules.sell_fraction, margin_cents=rules.margin_cents
    )
    return inventory.supply(session, day=day)


def _sold_out(now: datetime, remaining: int) -> SoldOut:
    back = next_midnight(now)
    return SoldOut(
        f"sold out for today: {remaining} cents ({format_usd(remaining)}) of credit left, "
        f"new credit at {back.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        available_cents=remaining,
        returns_at=back,
    )


# ----------------------------------------------------------------------------- quotes
def validate_amount(credit_cents: object, *, rules: ShopRules, field: str = "credit_cents") -> int:
    if isinstance(credit_cents, bool) or not isinstance(credit_cents, int):
        raise InvalidInput("credit_cents must be a whole number of cents", field=field)
    if credit_cents < rules.min_order_cents:
        low = rules.min_order_cents
        raise InvalidInput(f"credit_cents must be at least {low} ({format_usd(low)})", field=field)
    if credit_cents > rules.max_order_cents:
        high = rules.max_order_cents
        raise InvalidInput(f"credit_cents must be at most {high} ({format_usd(high)})", field=field)
    return credit_cents


def create_quote(session: Session, *, rules: ShopRules, credit_cents: int, now: datetime) -> Quote:
    """Lock a price for ``credit_cents`` for ``rules.quote_ttl`` and reserve the credit."""
    validate_amount(credit_cents, rules=rules)
    supply = open_day(session, rules=rules, now=now)
    remaining = supply.remaining_cents
    if remaining < credit_cents:
        raise _sold_out(now, remaining)
    params, digest = published.in_force(
        session, now=now, capacity_cents=supply.capacity_cents, rules=rules
    )
    account = inventory.reserve(session, day=now.date(), credit_cents=credit_cents, supply=supply)
    if account is None:
        raise _sold_out(now, inventory.supply(session, day=now.date()).remaining_cents)
    price = quote_price_cents(params, now=now, remaining_cents=remaining, credit_cents=credit_cents)
    valid_until = min(now + rules.quote_ttl, next_midnight(now))
    quote = Quote(
        id="q_" + uuid.uuid4().hex,
        created_at=now,
        valid_until=valid_until,
        day=now.date(),
        account=account,
        credit_cents=credit_cents,
        price_cents=price,
        remaining_cents=remaining,
        params_hash=digest,
        status="open",
    )
    session.add(quote)
    ledger.record(
        session,
        kind="quote_reserved",
        now=now,
        quote_id=quote.id,
        account=account,
        day=quote.day,
        credit_cents=credit_cents,
        detail={"price_cents": price, "remaining_cents": remaining, "params_hash": digest},
    )
    return quote


def release_quote(session: Session, *, quote: Quote, now: datetime) -> None:
    if quote.status != "open":
        return
    quote.status = "released"
    inventory.release(
        session, account=quote.account, day=quote.day, credit_cents=quote.credit_cents
    )
    ledger.record(
        session,
        kind="quote_released",
        now=now,
        quote_id=quote.id,
        account=quote.account,
        day=quote.day,
        credit_cents=-quote.credit_cents,
    )


# ----------------------------------------------------------------------------- orders
@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    token: str
    created: bool


def request_fingerprint(*, quote_id: str | None, credit_cents: int | None) -> str:
    return hashlib.sha256(f"{quote_id}|{credit_cents}".encode()).hexdigest()


def place_order(
    session: Session,
    *,
    rules: ShopRules,
    token_key: bytes,
    provider: str,
    now: datetime,
    quote_id: str | None = None,
    credit_cents: int | None = None,
    idempotency_key: str | None = None,
    client: str | None = None,
) -> Placed:
    """Turn a quote (or a fresh quote for ``credit_cents``) into an order awaiting payment."""
    fingerprint = request_fingerprint(quote_id=quote_id, credit_cents=credit_cents)
    if idempotency_key is not None:
        existing = session.scalars(
            select(Order).where(Order.idempotency_key == idempotency_key)
        ).first()
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was used with a different request",
                    field="Idempotency-Key",
                )
            return Placed(existing, order_token(existing.id, token_key=token_key), created=False)
    if (quote_id is None) == (credit_cents is None):
        raise InvalidInput("send exactly one of quote_id or credit_cents", field="quote_id")
    if quote_id is not None:
        quote = session.get(Quote, quote_id, with_for_update=True)
        if quote is None:
            raise NotFound("no such quote", field="quote_id")
        if quote.status != "open" or quote.valid_until <= now:
            raise QuoteExpired(
                "this quote has expired or was already used; ask for a new one", field="quote_id"
            )
    else:
        assert credit_cents is not None
        quote = create_quote(session, rules=rules, credit_cents=credit_cents, now=now)
    # Move the reservation from the quote to the order, atomically with the status change.
    claimed = session.execute(
        update(Quote).where(Quote.id == quote.id, Quote.status == "open").values(status="ordered")
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise QuoteExpired("this quote was already used; ask for a new one", field="quote_id")
    order_id = "ord_" + uuid.uuid4().hex
    token = order_token(order_id, token_key=token_key)
    order = Order(
        id=order_id,
        token_hash=hash_token(token),
        status=st.AWAITING_PAYMENT,
        quote_id=quote.id,
        day=quote.day,
        account=quote.account,
        credit_cents=quote.credit_cents,
        price_cents=quote.price_cents,
        currency=rules.currency,
        holds="reserved",
        created_at=now,
        updated_at=now,
        checkout_expires_at=min(now + rules.checkout_ttl, next_midnight(now)),
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        client=client,
        payment_provider=provider,
    )
    session.add(order)
    ledger.record(
        session,
        kind="order_placed",
        now=now,
        order_id=order_id,
        quote_id=quote.id,
        account=quote.account,
        day=quote.day,
        credit_cents=quote.credit_cents,
        detail={"price_cents": quote.price_cents},
    )
    return Placed(order, token, created=True)


def attach_checkout(session: Session, *, order: Order, checkout: Checkout, now: datetime) -> None:
    order.payment_reference = checkout.reference
    order.checkout_url = checkout.checkout_url
    order.updated_at = now


def _set_status(order: Order, new: str, now: datetime) -> None:
    st.check_transition(order.status, new)
    order.status = new
    order.updated_at = now


def _drop_hold(session: Session, order: Order) -> None:
    if order.holds == "reserved":
        inventory.release(
            session, account=order.account, day=order.day, credit_cents=order.credit_cents
        )
    elif order.holds == "sold":
        inventory.unsell(
            session, account=order.account, day=order.day, credit_cents=order.credit_cents
        )
    order.holds = "none"


def cancel(session: Session, *, order: Order, now: datetime, reason: str) -> None:
    """An unpaid order is given up (declined, or its checkout lapsed): free its credit."""
    if order.status != st.AWAITING_PAYMENT:
        return
    _set_status(order, st.CANCELLED, now)
    _drop_hold(session, order)
    order.failure_reason = reason
    ledger.record(
        session,
        kind="order_cancelled",
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=-order.credit_cents,
        detail={"reason": reason},
    )


# ----------------------------------------------------------------------------- payments
_ORDER_ID = re.compile(r"ord_[0-9a-f]{32}")


def record_payment_event(
    session: Session, *, event: PaymentEvent, provider: str, now: datetime
) -> Order | None:
    """Apply a verified provider event exactly once; returns the order it concerned.

    Duplicates (same ``event_id``) change nothing. A payment that does not match the
    order (amount or currency), or that arrives when its credit can no longer be had
    (the hold lapsed and the day sold out, or the day is over), is refunded.
    """
    if session.get(WebhookEvent, event.event_id) is not None:
        return None
    # Another integration on the same provider account may tag its sessions with an
    # ``order_id`` of its own (any length, any characters): it is no order of ours, and must
    # not reach a 40-character column or a PostgreSQL text (NUL) — that would answer 500 and
    # make the provider redeliver it forever.
    ours = _ORDER_ID.fullmatch(event.order_id) is not None
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
        mark_paid(session, order=order, event=event, now=now)
    elif event.kind in ("failed", "expired"):
        cancel(session, order=order, now=now, reason=f"payment {event.kind}")
    return order


def mark_paid(session: Session, *, order: Order, event: PaymentEvent, now: datetime) -> None:
    if order.status not in (st.AWAITING_PAYMENT, st.CANCELLED):
        if event.payment_ref and order.payment_ref and event.payment_ref != order.payment_ref:
            _refund_stray(session, order=order, event=event, now=now)
            return
        ledger.record(
            session,
            kind="payment_duplicate",
            now=now,
            order_id=order.id,
            money_cents=0,
            detail={"event_id": event.event_id, "status": order.status},
        )
        return
    late = order.status == st.CANCELLED
    _set_status(order, st.PAID, now)
    order.paid_at = now
    order.paid_cents = event.amount_cents
    order.payment_ref = event.payment_ref
    ledger.record(
        session,
        kind="payment_received",
        now=now,
        order_id=order.id,
        money_cents=event.amount_cents,
        detail={"event_id": event.event_id, "currency": event.currency},
    )
    problem = None
    if event.amount_cents != order.price_cents or event.currency.lower() != order.currency:
        problem = "paid amount or currency does not match the order"
    elif order.day != now.date():
        problem = "payment arrived after the credit's day ended"
    elif late and not _rehold_as_sold(session, order=order):
        problem = "payment arrived after the hold lapsed and the day sold out"
    if problem is None and not late:
        inventory.sell(
            session, account=order.account, day=order.day, credit_cents=order.credit_cents
        )
        order.holds = "sold"
    if problem is not None:
        _drop_hold(session, order)
        order.failure_reason = problem
        jobs.enqueue(session, kind=jobs.REFUND, order_id=order.id, now=now)
        return
    ledger.record(
        session,
        kind="credit_sold",
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=order.credit_cents,
    )
    jobs.enqueue(session, kind=jobs.PROVISION, order_id=order.id, now=now)


def _refund_stray(session: Session, *, order: Order, event: PaymentEvent, now: datetime) -> None:
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


def _rehold_as_sold(session: Session, *, order: Order) -> bool:
    if inventory.sell_unreserved(
        session, account=order.account, day=order.day, credit_cents=order.credit_cents
    ):
        order.holds = "sold"
        return True
    account = inventory.reserve(session, day=order.day, credit_cents=order.credit_cents)
    if account is None:
        return False
    inventory.sell(session, account=account, day=order.day, credit_cents=order.credit_cents)
    order.account = account
    order.holds = "sold"
    return True


def request_refund(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """Queue a refund (the worker deletes any live key first, then refunds the payment)."""
    if order.status not in (st.PAID, st.FULFILLED, st.FAILED):
        raise InvalidInput(f"an order that is {order.status} cannot be refunded", field="status")
    order.failure_reason = reason
    order.updated_at = now
    jobs.enqueue(session, kind=jobs.REFUND, order_id=order.id, now=now)
    ledger.record(
        session, kind="refund_requested", now=now, order_id=order.id, detail={"reason": reason}
    )


# ----------------------------------------------------------------------------- sweeping
def sweep_expired(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Release quotes and unpaid checkouts whose time is up. Returns how many."""
    count = 0
    quotes = session.scalars(
        select(Quote).where(Quote.status == "open", Quote.valid_until <= now).limit(limit)
    ).all()
    for quote in quotes:
        release_quote(session, quote=quote, now=now)
        count += 1
    orders = session.scalars(
        select(Order)
        .where(Order.status == st.AWAITING_PAYMENT, Order.checkout_expires_at <= now)
        .limit(limit)
    ).all()
    for order in orders:
        cancel(session, order=order, now=now, reason="checkout expired")
        count += 1
    return count


# ----------------------------------------------------------------------------- the key
def confirm_receipt(session: Session, *, order: Order, now: datetime) -> None:
    """The buyer has saved the key: the shop forgets the secret (only last6 stays)."""
    if order.key_secret is None:
        return
    order.key_secret = None
    order.key_received_at = now
    order.updated_at = now
    ledger.record(session, kind="key_received", now=now, order_id=order.id)
