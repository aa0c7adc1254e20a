"""Quotes: amounts, the reservation on one account, sold out, and release."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from cheaptokens.errors import HeldOut, InvalidInput, SoldOut
from cheaptokens.models import Quote
from cheaptokens.orders import published
from cheaptokens.orders.ids import new_quote_id
from cheaptokens.orders.quotes import create_quote, release_quote, validate_amount
from cheaptokens.pricing.curve import quote_price_cents
from support.unitkit import (
    DAY,
    MIDNIGHT,
    START,
    A,
    B,
    Env,
    ledger,
    make_rules,
    paid,
    room,
)

RULES = make_rules()


def quote(env: Env, credit_cents: int) -> Quote:
    with env.db.begin() as s:
        return create_quote(s, rules=env.rules, credit_cents=credit_cents, now=env.now)


# ----------------------------------------------------------------------------- amounts
@pytest.mark.parametrize("amount", [RULES.min_order_cents, 777, RULES.max_order_cents])
def test_validate_amount_accepts_whole_cents_within_the_bounds(amount: int) -> None:
    assert validate_amount(amount, rules=RULES) == amount


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (RULES.min_order_cents - 1, "at least 100"),
        (RULES.max_order_cents + 1, "at most 50000"),
        (0, "at least"),
        (-500, "at least"),
        (500.0, "whole number"),
        ("500", "whole number"),
        (True, "whole number"),
        (None, "whole number"),
    ],
)
def test_validate_amount_refuses_the_rest_naming_the_field(amount: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        validate_amount(amount, rules=RULES, field="credit")
    assert caught.value.field == "credit"


def test_an_invalid_amount_reserves_nothing(env: Env) -> None:
    with pytest.raises(InvalidInput):
        quote(env, env.rules.max_order_cents + 1)
    with env.db.read() as s:
        assert s.query(Quote).count() == 0


# ----------------------------------------------------------------------------- reserving
def test_the_first_quote_opens_the_day_and_reserves_on_the_roomiest_account(env: Env) -> None:
    q = quote(env, 500)
    assert (q.account, q.day, q.credit_cents, q.status) == (A, DAY, 500, "open")
    assert room(env, A).reserved == 500 and room(env, B).reserved == 0
    assert q.remaining_cents == room(env, A).capacity + room(env, B).capacity
    assert q.valid_until == START + env.rules.quote_ttl


def test_a_quote_goes_where_it_fits_when_the_roomiest_cannot_take_it_all(env: Env) -> None:
    quote(env, 8_000)  # A: 950 left, B: 4450 left
    q = quote(env, 1_000)
    assert q.account == B
    assert room(env, B).reserved == 1_000 and room(env, A).reserved == 8_000


def test_the_next_quote_moves_to_the_account_that_is_now_roomiest(env: Env) -> None:
    quote(env, 5_000)  # A: 3950 left, B: 4450 left
    assert quote(env, 100).account == B


def test_the_price_is_the_published_curve_at_the_remaining_credit(env: Env) -> None:
    q = quote(env, 2_000)
    with env.db.read() as s:
        params = published.by_hash(s, q.params_hash)
    assert params is not None
    assert q.price_cents == quote_price_cents(
        params, now=START, remaining_cents=q.remaining_cents, credit_cents=2_000
    )
    assert 0 < q.price_cents <= 2_000


def test_the_quote_writes_its_ledger_row(env: Env) -> None:
    q = quote(env, 300)
    (row,) = ledger(env, kind="quote_reserved")
    assert (row.quote_id, row.account, row.day, row.credit_cents) == (q.id, A, DAY, 300)
    assert row.detail == {
        "price_cents": q.price_cents,
        "remaining_cents": q.remaining_cents,
        "params_hash": q.params_hash,
    }


def test_a_quote_near_midnight_is_valid_only_until_midnight(env: Env) -> None:
    env.clock.now = MIDNIGHT - timedelta(seconds=20)
    assert quote(env, 500).valid_until == MIDNIGHT


def test_held_out_when_open_quotes_hold_what_is_left(env: Env) -> None:
    first = quote(env, 8_950)
    quote(env, 4_000)  # 450 left in all; the rest is held, not sold
    with pytest.raises(HeldOut) as caught:
        quote(env, 451)
    assert caught.value.available_cents == 450
    assert caught.value.returns_at == first.valid_until  # the first hold may lapse then
    assert room(env, A).reserved + room(env, B).reserved == 12_950


def test_held_out_when_no_single_account_fits_until_a_hold_lapses(env: Env) -> None:
    first = quote(env, 8_000)  # A: 950 left, B: 4450 left: 5400 in all
    with pytest.raises(HeldOut) as caught:
        quote(env, 4_500)
    assert caught.value.available_cents == 5_400
    assert caught.value.returns_at == first.valid_until
    assert (room(env, A).reserved, room(env, B).reserved) == (8_000, 0)


def test_sold_out_when_sales_took_it_says_midnight(env: Env) -> None:
    paid(env, 8_000)  # A: 950 left
    paid(env, 4_000)  # B: 450 left
    with pytest.raises(SoldOut) as caught:
        quote(env, 1_500)
    assert not isinstance(caught.value, HeldOut)
    assert caught.value.available_cents == 1_400 and caught.value.returns_at == MIDNIGHT


def test_split_over_accounts_says_the_largest_order_that_fits(env: Env) -> None:
    paid(env, 8_000)  # A: 950 left, B: 4450: 5400 in all, nothing held
    with pytest.raises(SoldOut) as caught:
        quote(env, 5_000)
    assert not isinstance(caught.value, HeldOut)
    assert caught.value.available_cents == 4_450 and caught.value.returns_at == MIDNIGHT
    assert "4450" in caught.value.message


# ----------------------------------------------------------------------------- releasing
def test_release_gives_the_reservation_back_once(env: Env) -> None:
    q = quote(env, 700)
    for _ in range(2):
        with env.db.begin() as s:
            row = s.get(Quote, q.id)
            assert row is not None
            release_quote(s, quote=row, now=env.now)
    assert room(env, A).reserved == 0
    with env.db.read() as s:
        assert s.get(Quote, q.id).status == "released"  # type: ignore[union-attr]
    (row,) = ledger(env, kind="quote_released")
    assert (row.quote_id, row.credit_cents) == (q.id, -700)


def test_release_of_a_quote_that_became_an_order_changes_nothing(env: Env) -> None:
    q = quote(env, 700)
    with env.db.begin() as s:
        row = s.get(Quote, q.id)
        assert row is not None
        row.status = "ordered"
        release_quote(s, quote=row, now=env.now)
    assert room(env, A).reserved == 700
    assert ledger(env, kind="quote_released") == []


# ----------------------------------------------------------------------------- ids
def test_quote_ids_sort_by_the_time_they_were_made_and_stay_unguessable(env: Env) -> None:
    """Ids in time order keep a night's prune of lapsed quotes in one region of the id's
    index (bench/README.md, History); the random tail keeps them from being guessed."""
    first = quote(env, 100)
    env.clock.advance(0.001)
    second = quote(env, 100)
    env.clock.advance(3600)
    later = quote(env, 100)
    assert first.id < second.id < later.id
    assert re.fullmatch(r"q_[0-9a-f]{32}", later.id)
    assert int(first.id[2:14], 16) == int(START.timestamp() * 1000)
    tails = {new_quote_id(START)[14:] for _ in range(1000)}
    assert len(tails) == 1000
