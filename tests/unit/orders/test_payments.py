"""Payment events and mark_paid: a sale and a key, or a refund — and never twice."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import select

from cheaptokens.db import Database
from cheaptokens.models import Order, Quote, StrayPayment, WebhookEvent
from cheaptokens.orders import state as st
from cheaptokens.orders.transitions import sweep_expired
from cheaptokens.payments import PaymentEvent
from support.unitkit import (
    DAY,
    MIDNIGHT,
    A,
    B,
    Env,
    apply,
    checkout_event,
    get_order,
    jobs_of,
    kinds,
    ledger,
    make_env,
    paid,
    place,
    room,
)


def sweep(env: Env) -> int:
    with env.db.begin() as s:
        return sweep_expired(s, now=env.now)


def lapse(env: Env, order_id: str) -> None:
    """The checkout's time passes and upkeep cancels the order (its hold is given back)."""
    env.clock.now = get_order(env, order_id).checkout_expires_at
    assert sweep(env) >= 1
    assert get_order(env, order_id).status == st.CANCELLED


def late_event(env: Env, order_id: str) -> PaymentEvent:
    """A payment made before the checkout lapsed, delivered after (a slow webhook)."""
    order = get_order(env, order_id)
    return PaymentEvent(
        event_id=f"evt_late_{order_id}",
        kind="paid",
        order_id=order_id,
        reference=order.payment_reference or "",
        payment_ref=f"sbpay_late_{order_id[-8:]}",
        amount_cents=order.price_cents,
        currency="usd",
        occurred_at=env.now,
    )


def assert_refund_queued(env: Env, order_id: str, reason: str) -> None:
    order = get_order(env, order_id)
    assert order.status == st.PAID and order.holds == "none"
    assert reason in (order.failure_reason or "")
    assert jobs_of(env, order_id) == {"refund": "queued"}
    assert "credit_sold" not in kinds(env, order_id)


# ----------------------------------------------------------------------------- paid
def test_a_matching_payment_sells_the_reservation_and_queues_the_key(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = checkout_event(env, order_id)
    apply(env, event)
    order = get_order(env, order_id)
    assert (order.status, order.holds, order.paid_at) == (st.PAID, "sold", env.now)
    assert (order.paid_cents, order.payment_ref) == (order.price_cents, event.payment_ref)
    assert (room(env, A).sold, room(env, A).reserved) == (500, 0)
    assert jobs_of(env, order_id) == {"provision": "queued"}
    assert kinds(env, order_id) == ["order_placed", "payment_received", "credit_sold"]
    received, sold = ledger(env, order_id)[1:]
    assert received.money_cents == order.price_cents
    assert received.detail == {"event_id": event.event_id, "currency": "usd"}
    assert (sold.account, sold.day, sold.credit_cents) == (A, DAY, 500)


def test_the_currency_is_compared_without_case(env: Env) -> None:
    order_id = place(env, 500).order.id
    apply(env, dataclasses.replace(checkout_event(env, order_id), currency="USD"))
    assert jobs_of(env, order_id) == {"provision": "queued"}


def test_a_payment_of_another_amount_is_refunded(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = checkout_event(env, order_id)
    apply(env, dataclasses.replace(event, amount_cents=event.amount_cents - 1))
    assert_refund_queued(env, order_id, "does not match")
    assert get_order(env, order_id).paid_cents == event.amount_cents - 1
    assert (room(env, A).sold, room(env, A).reserved) == (0, 0)


def test_a_payment_in_another_currency_is_refunded(env: Env) -> None:
    order_id = place(env, 500).order.id
    apply(env, dataclasses.replace(checkout_event(env, order_id), currency="eur"))
    assert_refund_queued(env, order_id, "does not match")
    assert (room(env, A).sold, room(env, A).reserved) == (0, 0)


def test_a_payment_after_the_day_ended_is_refunded_and_frees_the_old_day(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = checkout_event(env, order_id)
    env.clock.now = MIDNIGHT + timedelta(seconds=5)  # the webhook comes after 00:00
    apply(env, event)
    assert_refund_queued(env, order_id, "day ended")
    assert (room(env, A, DAY).sold, room(env, A, DAY).reserved) == (0, 0)


# ----------------------------------------------------------------------------- late payments
def test_a_late_payment_sells_again_on_the_same_account_when_it_has_room(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = late_event(env, order_id)
    lapse(env, order_id)
    assert room(env, A).reserved == 0
    apply(env, event)
    order = get_order(env, order_id)
    assert (order.status, order.holds, order.account) == (st.PAID, "sold", A)
    assert (room(env, A).sold, room(env, A).reserved) == (500, 0)
    assert jobs_of(env, order_id) == {"provision": "queued"}


def test_a_late_payment_moves_to_another_account_when_its_own_is_full(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = late_event(env, order_id)
    lapse(env, order_id)
    place(env, room(env, A).left)  # someone else takes all of A meanwhile
    apply(env, event)
    order = get_order(env, order_id)
    assert (order.status, order.holds, order.account) == (st.PAID, "sold", B)
    assert (room(env, B).sold, room(env, B).reserved) == (500, 0)
    assert room(env, A).sold == 0
    assert jobs_of(env, order_id) == {"provision": "queued"}


def test_a_late_payment_is_refunded_when_the_day_has_sold_out(db: Database) -> None:
    env = make_env(db, allocations={A: 1_000})  # 900 - 100 = 800 to sell
    order_id = place(env, 500).order.id
    event = late_event(env, order_id)
    lapse(env, order_id)
    place(env, 400)  # 400 left: not enough for the late 500
    apply(env, event)
    assert_refund_queued(env, order_id, "sold out")
    assert (room(env, A).sold, room(env, A).reserved) == (0, 400)


# ----------------------------------------------------------------------------- duplicates
def test_a_redelivered_event_changes_nothing(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = checkout_event(env, order_id)
    assert apply(env, event) is not None
    looks = lambda: ([e.id for e in ledger(env)], room(env, A), jobs_of(env, order_id))  # noqa: E731
    before = looks()
    env.clock.advance(30)
    assert apply(env, event) is None
    assert looks() == before
    assert get_order(env, order_id).paid_at == env.now - timedelta(seconds=30)


def test_a_second_event_for_the_same_payment_is_a_duplicate(env: Env) -> None:
    order_id = paid(env, 500)
    again = dataclasses.replace(checkout_event(env, order_id), event_id="evt_confirm")
    apply(env, again)
    assert kinds(env, order_id)[-1] == "payment_duplicate"
    assert room(env, A).sold == 500 and jobs_of(env, order_id) == {"provision": "queued"}
    with env.db.read() as s:
        assert s.scalars(select(StrayPayment)).all() == []


def test_a_different_second_payment_is_a_stray_and_refunded_in_full(env: Env) -> None:
    order_id = paid(env, 500)
    first = get_order(env, order_id)
    second = dataclasses.replace(
        checkout_event(env, order_id), event_id="evt_second", payment_ref="sbpay_second"
    )
    for _ in range(2):  # the stray itself redelivered under another event id
        apply(env, second)
        second = dataclasses.replace(second, event_id="evt_second_again")
    with env.db.read() as s:
        (stray,) = s.scalars(select(StrayPayment)).all()
    assert (stray.order_id, stray.payment_ref, stray.amount_cents) == (
        order_id,
        "sbpay_second",
        second.amount_cents,
    )
    assert stray.refunded_at is None
    assert jobs_of(env, order_id) == {"provision": "queued", "refund_stray": "queued"}
    assert get_order(env, order_id).payment_ref == first.payment_ref
    assert kinds(env, order_id).count("stray_payment_received") == 1
    assert room(env, A).sold == 500


def test_failed_or_expired_after_payment_change_nothing(env: Env) -> None:
    order_id = paid(env, 500)
    event = checkout_event(env, order_id)
    for kind in ("failed", "expired"):
        apply(env, dataclasses.replace(event, event_id=f"evt_{kind}", kind=kind))  # type: ignore[arg-type]
    assert get_order(env, order_id).status == st.PAID
    assert room(env, A).sold == 500
    assert jobs_of(env, order_id) == {"provision": "queued"}


def test_a_declined_payment_cancels_and_frees_the_credit(env: Env) -> None:
    order_id = place(env, 500).order.id
    apply(env, checkout_event(env, order_id, "declined"))
    order = get_order(env, order_id)
    assert (order.status, order.holds, order.failure_reason) == (
        st.CANCELLED,
        "none",
        "payment failed",
    )
    assert room(env, A).reserved == 0
    assert ledger(env, order_id)[-1].credit_cents == -500


def test_an_event_for_an_order_that_is_not_ours_is_noted_and_ignored(env: Env) -> None:
    order_id = place(env, 500).order.id
    event = checkout_event(env, order_id)
    for other in ("ord_" + "f" * 32, "not-ours-" + "x" * 60):
        assert apply(env, dataclasses.replace(event, event_id=other, order_id=other)) is None
    with env.db.read() as s:
        stored = {w.event_id: w.order_id for w in s.scalars(select(WebhookEvent))}
    assert stored == {"ord_" + "f" * 32: "ord_" + "f" * 32, "not-ours-" + "x" * 60: None}
    assert [e.detail["ours"] for e in ledger(env, kind="event_unknown_order")] == [True, False]
    assert get_order(env, order_id).status == st.AWAITING_PAYMENT


# ----------------------------------------------------------------------------- sweeping
def test_sweep_releases_lapsed_quotes_and_cancels_lapsed_checkouts(env: Env) -> None:
    from cheaptokens.orders.quotes import create_quote

    with env.db.begin() as s:
        quote_id = create_quote(s, rules=env.rules, credit_cents=300, now=env.now).id
    order_id = place(env, 700).order.id
    assert sweep(env) == 0
    env.clock.advance(env.rules.quote_ttl.total_seconds())
    assert sweep(env) == 1  # the quote only
    with env.db.read() as s:
        assert s.get(Quote, quote_id).status == "released"  # type: ignore[union-attr]
    assert get_order(env, order_id).status == st.AWAITING_PAYMENT
    assert room(env, A).reserved == 700
    env.clock.now = get_order(env, order_id).checkout_expires_at
    assert sweep(env) == 1
    order = get_order(env, order_id)
    assert (order.status, order.failure_reason) == (st.CANCELLED, "checkout expired")
    assert room(env, A).reserved == 0
    assert sweep(env) == 0


def test_sweep_leaves_paid_orders_alone(env: Env) -> None:
    order_id = paid(env, 500)
    env.clock.now = get_order(env, order_id).checkout_expires_at + timedelta(minutes=1)
    assert sweep(env) == 0
    with env.db.read() as s:
        assert s.get(Order, order_id).status == st.PAID  # type: ignore[union-attr]
    assert room(env, A).sold == 500
