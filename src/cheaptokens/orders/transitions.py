"""Every change of an order's life, each through the state machine and with its ledger row.

This module is the one place that writes an order's status (see :func:`_set_status`), so
"where does an order become X?" has one answer: the function named after X below.

    place_order        (quote)            -> awaiting_payment
    cancel             awaiting_payment   -> cancelled         credit released
    mark_paid          awaiting_payment,
                       cancelled          -> paid              credit sold, key queued
    payment_authorized awaiting_payment   -> paid              x402: credit sold, not settled
    payment_settled    paid                                    x402: the money moved
    payment_not_settled paid              -> cancelled         x402: it did not: credit back
                                                               (its standing order: failed)
    begin_provisioning paid                                    the first key attempt is marked
    move_sale          paid                                    the sale moves to another account
    give_up            paid                                    no key by the deadline: refund queued
    fulfil             paid               -> fulfilled         the key is stored, sealed
    confirm_receipt    fulfilled, expired                      the shop forgets the key
    request_refund     paid, fulfilled,
                       failed                                  refund queued
    key_deleted        (any)                                   the order's key is gone in Venice
    refunded           paid, fulfilled,
                       failed             -> refunded          money back
    refund_failed      paid, fulfilled,
                       replacing          -> failed            the provider refused the refund
    expire             fulfilled          -> expired           00:00 UTC passed
    record_overshoot   fulfilled                               the key spent beyond its cap
    begin_replacement  fulfilled          -> replacing         the key cannot spend what it holds
    old_key_gone       replacing                               the old key is deleted first
    place_replacement  replacing                               the unspent credit is sold again
    key_replaced       replacing          -> fulfilled         the new key is stored, sealed
    refund_pro_rata    replacing                               no stock for it: refund the rest

Every function takes the session of the caller's transaction and ``now``; none commits and
none calls Venice or a payment provider (the worker and :mod:`cheaptokens.orders.flows` do).
Those a buyer's webhook hears of record the event in the same transaction
(:mod:`cheaptokens.orders.events`): fulfil (key.ready), begin_replacement, key_replaced and
refund_pro_rata (key.replaced, stage started / done / refunded).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from cheaptokens import inventory, jobs, ledger
from cheaptokens.errors import (
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    QuoteExpired,
    Refused,
)
from cheaptokens.models import Order, PoolKey, Quote, StandingOrder, table_of
from cheaptokens.orders import abuse, events, topups
from cheaptokens.orders import state as st
from cheaptokens.orders.ids import new_order_id, order_token
from cheaptokens.orders.quotes import create_quote, release_quote
from cheaptokens.orders.rules import KEY_MODELS, ShopRules
from cheaptokens.payments import Checkout, PaymentEvent
from cheaptokens.secretbox import SecretBox, hash_token
from cheaptokens.times import day_end, day_start, next_midnight


def _set_status(order: Order, new: str, now: datetime) -> None:
    """The only assignment of ``Order.status`` in the code base."""
    st.check_transition(order.status, new)
    order.status = new
    order.updated_at = now


def _drop_hold(session: Session, order: Order) -> None:
    """Give back the capacity the order holds (its reservation, or its unspent sale)."""
    if order.holds == "reserved":
        inventory.release(
            session, account=order.account, day=order.day, credit_cents=order.credit_cents
        )
    elif order.holds == "sold":
        inventory.unsell(
            session, account=order.account, day=order.day, credit_cents=order.credit_cents
        )
    order.holds = "none"


# ----------------------------------------------------------------------------- placed
@dataclass(frozen=True, slots=True)
class Placed:
    #: a plain value (the order is inserted as a Core statement, not tracked by the session):
    #: load the row (``session.get(Order, placed.order.id, with_for_update=True)``) to change it
    order: Order
    token: str
    created: bool
    #: the order's webhook signing secret, in the response that registered it (shown once)
    webhook_secret: str | None = None


def request_fingerprint(
    *, quote_id: str | None, credit_cents: int | None, key_models: str = "private"
) -> str:
    extra = "" if key_models == "private" else f"|{key_models}"
    return hashlib.sha256(f"{quote_id}|{credit_cents}{extra}".encode()).hexdigest()


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
    key_models: str = "private",
) -> Placed:
    """Turn a quote (or a fresh quote for ``credit_cents``) into an order awaiting payment.

    ``key_models``: "private" (the key may call private models only) or, where the operator
    sells them and the order is large enough, "all" (docs/money-safety.md)."""
    fingerprint = request_fingerprint(
        quote_id=quote_id, credit_cents=credit_cents, key_models=key_models
    )
    if idempotency_key is not None:
        # Scoped to the client: another client's key never finds this client's order.
        existing = session.scalars(
            select(Order).where(
                Order.idempotency_key == idempotency_key,
                Order.client.is_(None) if client is None else Order.client == client,
            )
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
    if key_models not in KEY_MODELS:
        raise InvalidInput('models must be "private" or "all"', field="models")
    if key_models == "all" and not rules.allow_all_models:
        raise InvalidInput(
            'this shop sells keys for private models only: send "models": "private"',
            field="models",
        )
    if client is not None and (
        abuse.strikes(session, client=client, since=day_start(now)) >= rules.overshoot_strikes
    ):
        raise Refused(
            "keys bought from this address spent past their limits more than once today; "
            "no more sales to it until 00:00 UTC"
        )
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
        quote = create_quote(
            session, rules=rules, credit_cents=credit_cents, now=now, client=client
        )
    if key_models == "all" and quote.credit_cents < rules.all_models_min_order_cents:
        raise InvalidInput(
            f"a key for all models needs an order of at least "
            f"{rules.all_models_min_order_cents} cents",
            field="models",
        )
    # Move the reservation from the quote to the order, atomically with the status change.
    claimed = session.execute(_CLAIM_QUOTE, {"quote_id": quote.id})
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise QuoteExpired("this quote was already used; ask for a new one", field="quote_id")
    set_committed_value(quote, "status", "ordered")  # what the UPDATE wrote (not dirty)
    order_id = new_order_id()
    token = order_token(order_id, token_key=token_key)
    row = {
        "id": order_id,
        "token_hash": hash_token(token),
        "status": st.AWAITING_PAYMENT,
        "quote_id": quote.id,
        "day": quote.day,
        "account": quote.account,
        "credit_cents": quote.credit_cents,
        "price_cents": quote.price_cents,
        "currency": rules.currency,
        "holds": "reserved",
        "created_at": now,
        "updated_at": now,
        "checkout_expires_at": min(now + rules.checkout_ttl, next_midnight(now)),
        "idempotency_key": idempotency_key,
        "request_hash": fingerprint,
        "client": client,
        "payment_provider": provider,
        "key_models": key_models,
        "spent_before_cents": 0,
    }
    # A Core INSERT, as for the quote: the returned Order is a plain value, not tracked by
    # this session; every later change loads the order and goes through this module.
    session.execute(_INSERT_ORDER, row)
    order = Order(**row)
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


def attach_checkout(session: Session, order: Order, *, checkout: Checkout, now: datetime) -> None:
    """The provider's checkout for a placed order (``order``, as :func:`place_order` gave
    it, is kept in step)."""
    values = {
        "payment_reference": checkout.reference,
        "checkout_url": checkout.checkout_url,
        "updated_at": now,
    }
    session.execute(_ATTACH_CHECKOUT, {"order_id": order.id, **values})
    for name, value in values.items():
        set_committed_value(order, name, value)


# Built once: every order runs them.
_QUOTES = table_of(Quote).c
_CLAIM_QUOTE = (
    update(table_of(Quote))
    .where(_QUOTES.id == bindparam("quote_id"), _QUOTES.status == "open")
    .values(status="ordered")
)
_INSERT_ORDER = insert(table_of(Order))
_ATTACH_CHECKOUT = update(table_of(Order)).where(table_of(Order).c.id == bindparam("order_id"))


# ----------------------------------------------------------------------------- cancelled
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


# ----------------------------------------------------------------------------- paid
def mark_paid(session: Session, *, order: Order, event: PaymentEvent, now: datetime) -> None:
    """Money for an unpaid (or lapsed) order arrived: sell its credit and queue its key —
    or, when the payment does not match or its credit cannot be had, queue a refund."""
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


def payment_authorized(
    session: Session, *, order: Order, payer: str, payment_ref: str, now: datetime
) -> None:
    """x402: the facilitator verified a signed authorization of the order's price. The credit
    is sold and the key may be made; the money moves only when the authorization is settled
    (:func:`payment_settled`), after the key exists and before anyone sees it. The caller
    queues (and holds) the provisioning job."""
    _set_status(order, st.PAID, now)
    order.paid_at = now
    order.payment_ref = payment_ref
    inventory.sell(session, account=order.account, day=order.day, credit_cents=order.credit_cents)
    order.holds = "sold"
    ledger.record(
        session,
        kind="payment_authorized",
        now=now,
        order_id=order.id,
        detail={"payer": payer, "amount_cents": order.price_cents},
    )
    ledger.record(
        session,
        kind="credit_sold",
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=order.credit_cents,
    )


def payment_settled(
    session: Session, *, order: Order, amount_cents: int, transaction: str | None, now: datetime
) -> None:
    """x402: the authorization was settled: the money is the operator's."""
    if order.paid_cents is not None:
        return
    order.paid_cents = amount_cents
    order.updated_at = now
    ledger.record(
        session,
        kind="payment_received",
        now=now,
        order_id=order.id,
        money_cents=amount_cents,
        detail={"transaction": transaction, "currency": "usdc"},
    )


def payment_not_settled(
    session: Session, *, order: Order, key_id: str | None, now: datetime
) -> None:
    """x402: the authorization did not settle (the wallet was emptied, the authorization
    expired or was used elsewhere): the key made for it is already deleted; the credit goes
    back on sale and nothing was charged."""
    _set_status(order, st.CANCELLED, now)
    _drop_hold(session, order)
    order.failure_reason = "the payment did not settle; nothing was charged"
    # A standing order that placed this order ends failed with it (no key, nothing charged).
    session.execute(
        update(StandingOrder)
        .where(StandingOrder.order_id == order.id, StandingOrder.status == "fired")
        .values(status="failed", reason="the authorization did not settle", updated_at=now)
    )
    ledger.record(
        session,
        kind="payment_not_settled",
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=-order.credit_cents,
        detail={"key_id": key_id},
    )


def _rehold_as_sold(session: Session, *, order: Order) -> bool:
    """A late payment: sell the credit again if its account (or any other) still has room."""
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


# ----------------------------------------------------------------------------- fulfilment
def begin_provisioning(order: Order, *, now: datetime) -> None:
    """Mark the first key attempt: from now on a retry must look for a key left in Venice."""
    if order.provision_started_at is None:
        order.provision_started_at = now


def move_sale(session: Session, *, order: Order, to: str, now: datetime) -> bool:
    """Move the order's sold credit to account ``to`` if it has the room (guarded UPDATE)."""
    if not inventory.sell_unreserved(
        session, account=to, day=order.day, credit_cents=order.credit_cents
    ):
        return False
    inventory.unsell(session, account=order.account, day=order.day, credit_cents=order.credit_cents)
    ledger.record(
        session,
        kind="sale_moved",
        now=now,
        order_id=order.id,
        account=to,
        day=order.day,
        credit_cents=order.credit_cents,
        detail={"from": order.account},
    )
    order.account = to
    return True


def give_up(session: Session, *, order: Order, now: datetime) -> None:
    """No key could be made before the deadline: the buyer gets the money back."""
    order.failure_reason = "no key could be made before the deadline"
    order.updated_at = now
    jobs.enqueue(session, kind=jobs.REFUND, order_id=order.id, now=now)
    ledger.record(session, kind="provision_gave_up", now=now, order_id=order.id)


def fulfil(
    session: Session,
    *,
    order: Order,
    key_id: str,
    api_key: str,
    expires_at: datetime | None,
    box: SecretBox,
    now: datetime,
) -> None:
    """The order's key exists in Venice: store it (sealed, bound to the order) until the
    buyer confirms receipt. A pool key that was sold is marked so."""
    _set_status(order, st.FULFILLED, now)
    order.key_id = key_id
    order.key_last6 = api_key[-6:]
    order.key_secret = box.seal(api_key, context=order.id)
    order.key_expires_at = expires_at or day_end(order.day)
    order.fulfilled_at = now
    ledger.record(
        session,
        kind="key_created",
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=order.credit_cents,
        detail={"key_id": key_id},
    )
    session.execute(update(PoolKey).where(PoolKey.key_id == key_id).values(status="sold"))
    events.key_ready(session, order=order, now=now)


def confirm_receipt(session: Session, *, order: Order, now: datetime) -> None:
    """The buyer has saved the key: the shop forgets the secret (only last6 stays)."""
    if order.status not in (st.FULFILLED, st.EXPIRED):
        raise InvalidInput("the key is not ready yet", field="status")
    if order.key_secret is None:
        return
    order.key_secret = None
    order.key_received_at = now
    order.updated_at = now
    ledger.record(session, kind="key_received", now=now, order_id=order.id)


def record_usage(order: Order, *, used_cents: int, now: datetime) -> None:
    """What the order's key has spent, as Venice last reported it."""
    order.used_cents = used_cents
    order.usage_checked_at = now


# ----------------------------------------------------------------------------- refunds
REFUNDABLE = frozenset({st.PAID, st.FULFILLED, st.FAILED})


def request_refund(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """Queue a refund (the worker deletes any live key first, then refunds the payment)."""
    if order.status not in REFUNDABLE:
        raise InvalidInput(f"an order that is {order.status} cannot be refunded", field="status")
    order.failure_reason = reason
    order.updated_at = now
    jobs.enqueue(session, kind=jobs.REFUND, order_id=order.id, now=now)
    ledger.record(
        session, kind="refund_requested", now=now, order_id=order.id, detail={"reason": reason}
    )


def key_deleted(session: Session, *, order: Order, now: datetime, why: str) -> None:
    """The order's key no longer exists in Venice (deleted by the shop)."""
    if order.key_id is None or order.key_deleted_at is not None:
        return
    order.key_deleted_at = now
    order.key_secret = None
    ledger.record(
        session,
        kind="key_deleted",
        now=now,
        order_id=order.id,
        account=order.account,
        detail={"key_id": order.key_id, "why": why},
    )


def refunded(session: Session, *, order: Order, refund_ref: str | None, now: datetime) -> None:
    """The payment (or, pro rata, its unusable part) went back to the buyer. Credit that no
    key ever drew on goes back on sale; a key may have spent part of it, so its credit stays
    sold (never oversell)."""
    _set_status(order, st.REFUNDED, now)
    order.refund_ref = refund_ref
    order.refunded_at = now
    if order.holds == "sold":
        if order.fulfilled_at is None:
            _drop_hold(session, order)
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
    ledger.record(
        session,
        kind="refunded",
        now=now,
        order_id=order.id,
        money_cents=-refund_amount(order),
        detail={"refund_ref": refund_ref},
    )


def refund_failed(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """The provider refused the refund: the operator must look (an alert says so)."""
    if order.status == st.FAILED:
        return
    _set_status(order, st.FAILED, now)
    ledger.record(
        session, kind="refund_failed", now=now, order_id=order.id, detail={"reason": reason}
    )


def refund_amount(order: Order) -> int:
    """What a refund of ``order`` pays back: everything paid, or the pro-rata part due."""
    paid = order.paid_cents or 0
    return paid if order.refund_due_cents is None else min(paid, order.refund_due_cents)


# ----------------------------------------------------------------------------- expired
def expire(session: Session, *, order: Order, now: datetime) -> None:
    """00:00 UTC passed: the key is dead (and deleted); the shop forgets its secret."""
    _set_status(order, st.EXPIRED, now)
    order.key_secret = None
    order.key_deleted_at = order.key_deleted_at or now
    ledger.record(
        session,
        kind="key_expired",
        now=now,
        order_id=order.id,
        account=order.account,
        detail={"key_id": order.key_id, "used_cents": order.used_cents},
    )


# ----------------------------------------------------------------------------- overshoot
def record_overshoot(session: Session, *, order: Order, used_cents: int, now: datetime) -> None:
    """The key spent beyond its cap (Venice bills a call after admitting it): the overshoot
    is on the record against the buyer (their further orders may be refused)."""
    if abuse.already_recorded(session, order_id=order.id, key_id=order.key_id):
        return
    cap = order.key_cap_cents
    ledger.record(
        session,
        kind=abuse.OVERSHOT,
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=used_cents - cap,
        detail={"key_id": order.key_id, "used_cents": used_cents, "cap_cents": cap},
    )


# ----------------------------------------------------------------------------- replacement
def begin_replacement(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """The order's key can no longer spend what it holds (its account ran dry, or the key is
    gone in Venice): the buyer gets a new key for the unspent credit, or a pro-rata refund.
    The worker deletes the old key first, so at no moment are two of the order's keys live."""
    _set_status(order, st.REPLACING, now)
    order.replace_started_at = now
    order.replace_reason = reason
    order.provision_started_at = None  # no attempt at the new key yet
    jobs.enqueue(session, kind=jobs.REPLACE_KEY, order_id=order.id, now=now)
    ledger.record(
        session,
        kind="replacement_started",
        now=now,
        order_id=order.id,
        account=order.account,
        detail={"reason": reason, "key_id": order.key_id, "used_cents": order.used_cents},
    )
    events.replacement_started(session, order=order, reason=reason, now=now)


def old_key_gone(session: Session, *, order: Order, used_cents: int | None, now: datetime) -> None:
    """The old key is deleted: what it left unspent is what the new key will hold."""
    cap = order.key_cap_cents
    used = min(cap, max(0, used_cents if used_cents is not None else (order.used_cents or 0)))
    key_deleted(session, order=order, now=now, why="replacement")
    order.spent_before_cents += used
    order.key_credit_cents = cap - used
    order.used_cents = used


def place_replacement(session: Session, *, order: Order, account: str, now: datetime) -> bool:
    """Put the new key on ``account``. On the order's own account the unspent credit is sold
    there already; on another it is sold again there (guarded: it must have the room), and
    stays counted as sold on the old one, whose credit may be gone (never oversell)."""
    credit = order.key_cap_cents
    if account == order.account:
        order.provision_started_at = now
        return True
    if not inventory.sell_unreserved(session, account=account, day=order.day, credit_cents=credit):
        return False
    ledger.record(
        session,
        kind="credit_sold",
        now=now,
        order_id=order.id,
        account=account,
        day=order.day,
        credit_cents=credit,
        detail={"replacement_for": order.account},
    )
    order.account = account
    order.provision_started_at = now
    return True


def key_replaced(
    session: Session,
    *,
    order: Order,
    key_id: str,
    api_key: str,
    expires_at: datetime | None,
    box: SecretBox,
    now: datetime,
) -> None:
    """The new key exists: it is stored sealed and shown to the buyer once, like the first."""
    _set_status(order, st.FULFILLED, now)
    old = order.key_id
    order.key_id = key_id
    order.key_last6 = api_key[-6:]
    order.key_secret = box.seal(api_key, context=order.id)
    order.key_expires_at = expires_at or day_end(order.day)
    order.key_received_at = None
    order.key_deleted_at = None
    order.used_cents = 0
    order.usage_checked_at = None
    order.replace_started_at = None
    ledger.record(
        session,
        kind="key_replaced",
        now=now,
        order_id=order.id,
        account=order.account,
        day=order.day,
        credit_cents=order.key_cap_cents,
        detail={"key_id": key_id, "old_key_id": old, "reason": order.replace_reason},
    )
    events.key_replaced(session, order=order, old_key_id=old, now=now)


def refund_pro_rata(session: Session, *, order: Order, reason: str, now: datetime) -> None:
    """No account can hold the unspent credit (or time ran out): refund its share of the
    price — ``ceil(paid × unspent / credit)`` over the order and its applied top-ups, rounded
    in the buyer's favour — and end it. The order's payment is refunded first, then the
    top-ups' (see :func:`cheaptokens.orders.refunds.refund_plan`)."""
    unspent = order.key_cap_cents
    applied = [t for t in topups.of_order(session, order_id=order.id) if t.status == topups.APPLIED]
    paid = (order.paid_cents or 0) + sum(t.paid_cents or 0 for t in applied)
    credit = order.credit_cents + sum(t.credit_cents for t in applied)
    order.refund_due_cents = min(paid, -(-paid * unspent // max(1, credit)))
    order.failure_reason = reason
    order.updated_at = now
    jobs.enqueue(session, kind=jobs.REFUND, order_id=order.id, now=now)
    ledger.record(
        session,
        kind="refund_requested",
        now=now,
        order_id=order.id,
        detail={"reason": reason, "unspent_cents": unspent, "due_cents": order.refund_due_cents},
    )
    events.replacement_refunded(session, order=order, reason=reason, now=now)
