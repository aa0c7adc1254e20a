"""place_order: a quote (or a fresh one) becomes an order awaiting payment, exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from cheaptokens.errors import IdempotencyMismatch, InvalidInput, NotFound, QuoteExpired
from cheaptokens.models import Order, Quote
from cheaptokens.orders import state as st
from cheaptokens.orders import transitions
from cheaptokens.orders.ids import authorize, is_order_id
from cheaptokens.orders.quotes import create_quote
from support.unitkit import DAY, MIDNIGHT, START, A, B, Env, kinds, room


def new_quote(env: Env, credit_cents: int = 500) -> Quote:
    with env.db.begin() as s:
        return create_quote(s, rules=env.rules, credit_cents=credit_cents, now=env.now)


def place(env: Env, **kwargs: Any) -> transitions.Placed:
    with env.db.begin() as s:
        return transitions.place_order(
            s,
            rules=env.rules,
            token_key=env.token_key,
            provider="sandbox",
            now=env.now,
            **kwargs,
        )


def count(env: Env, model: type) -> int:
    with env.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_an_order_takes_over_its_quotes_reservation(env: Env) -> None:
    q = new_quote(env, 600)
    placed = place(env, quote_id=q.id, client="1.2.3.4")
    order = placed.order
    assert placed.created and is_order_id(order.id)
    assert (order.status, order.holds, order.account, order.day) == (
        st.AWAITING_PAYMENT,
        "reserved",
        q.account,
        DAY,
    )
    assert (order.credit_cents, order.price_cents, order.quote_id) == (600, q.price_cents, q.id)
    assert order.checkout_expires_at == START + env.rules.checkout_ttl
    assert room(env, q.account).reserved == 600  # moved, not doubled
    with env.db.read() as s:
        assert s.get(Quote, q.id).status == "ordered"  # type: ignore[union-attr]
        assert authorize(s, order_id=order.id, token=placed.token).id == order.id
    assert kinds(env, order.id) == ["order_placed"]


def test_credit_cents_alone_quotes_and_orders_in_one_step(env: Env) -> None:
    placed = place(env, credit_cents=400)
    assert placed.order.credit_cents == 400 and placed.order.status == st.AWAITING_PAYMENT
    assert room(env, A).reserved == 400 and room(env, B).reserved == 0
    assert count(env, Quote) == 1


@pytest.mark.parametrize("both", [True, False])
def test_both_or_neither_of_quote_id_and_credit_cents_is_refused(env: Env, both: bool) -> None:
    q = new_quote(env, 300)
    kwargs: dict[str, Any] = {"quote_id": q.id, "credit_cents": 300} if both else {}
    with pytest.raises(InvalidInput, match="exactly one") as caught:
        place(env, **kwargs)
    assert caught.value.field == "quote_id"
    assert count(env, Order) == 0 and room(env, A).reserved == 300


def test_an_unknown_quote_is_not_found(env: Env) -> None:
    with pytest.raises(NotFound):
        place(env, quote_id="q_" + "0" * 32)


def test_a_used_quote_cannot_make_a_second_order(env: Env) -> None:
    q = new_quote(env)
    place(env, quote_id=q.id)
    with pytest.raises(QuoteExpired):
        place(env, quote_id=q.id)
    assert count(env, Order) == 1 and room(env, A).reserved == 500


def test_an_expired_quote_is_refused(env: Env) -> None:
    q = new_quote(env)
    env.clock.advance(env.rules.quote_ttl.total_seconds())
    with pytest.raises(QuoteExpired):
        place(env, quote_id=q.id)
    assert count(env, Order) == 0


def test_the_checkout_of_a_late_order_lapses_at_midnight(env: Env) -> None:
    env.clock.now = MIDNIGHT - timedelta(minutes=5)
    assert place(env, credit_cents=300).order.checkout_expires_at == MIDNIGHT


# ----------------------------------------------------------------------------- idempotency
def test_a_replayed_idempotency_key_returns_the_same_order_and_token(env: Env) -> None:
    first = place(env, credit_cents=500, idempotency_key="idem-1")
    env.clock.advance(5)
    again = place(env, credit_cents=500, idempotency_key="idem-1")
    assert not again.created
    assert (again.order.id, again.token) == (first.order.id, first.token)
    assert count(env, Order) == 1 and count(env, Quote) == 1
    assert room(env, A).reserved == 500


def test_a_replay_with_a_quote_id_returns_the_same_order(env: Env) -> None:
    q = new_quote(env)
    first = place(env, quote_id=q.id, idempotency_key="idem-q")
    again = place(env, quote_id=q.id, idempotency_key="idem-q")  # the quote is used by now
    assert (again.order.id, again.created) == (first.order.id, False)


@pytest.mark.parametrize("second", [{"credit_cents": 501}, {"quote_id": "q_other"}])
def test_an_idempotency_key_reused_for_another_request_is_refused(
    env: Env, second: dict[str, Any]
) -> None:
    place(env, credit_cents=500, idempotency_key="idem-2")
    with pytest.raises(IdempotencyMismatch) as caught:
        place(env, idempotency_key="idem-2", **second)
    assert caught.value.field == "Idempotency-Key"
    assert count(env, Order) == 1 and room(env, A).reserved == 500


def test_distinct_idempotency_keys_make_distinct_orders(env: Env) -> None:
    one = place(env, credit_cents=500, idempotency_key="k1")
    two = place(env, credit_cents=500, idempotency_key="k2")
    assert one.order.id != two.order.id and one.token != two.token
    assert room(env, A).reserved + room(env, B).reserved == 1_000
