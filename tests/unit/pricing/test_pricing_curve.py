"""The published pricing curve: formula, clamp, rounding, monotonicity and the params hash."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from cheaptokens.pricing import (
    PricingParams,
    default_params,
    discount,
    hours_left,
    min_credit_cents,
    next_midnight,
    params_from_json,
    params_hash,
    params_to_json,
    planned_remaining_cents,
    price_fraction,
    quote_price_cents,
    usefulness,
)

DAY = datetime(2030, 1, 1, tzinfo=UTC)
LINEAR_PLAN = tuple(Decimal(f"{(24 - i) / 24:.6f}") for i in range(25))


def make_params(capacity: int = 100_000, **kw: object) -> PricingParams:
    base = PricingParams(
        a=Decimal("0.2"),
        b=Decimal("0.55"),
        beta=Decimal("0.25"),
        floor=Decimal("0.05"),
        plan=LINEAR_PLAN,
        capacity_cents=capacity,
        valid_from=DAY,
        valid_until=DAY + timedelta(days=1),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def test_hours_left_and_next_midnight() -> None:
    assert next_midnight(DAY) == DAY + timedelta(days=1)
    assert hours_left(DAY) == 24
    assert hours_left(at(13.5)) == Decimal("10.5")
    assert next_midnight(at(23.9)) == DAY + timedelta(days=1)
    tiny = hours_left(DAY + timedelta(days=1) - timedelta(microseconds=1))
    assert Decimal(0) < tiny < Decimal("0.000001")


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError):
        hours_left(datetime(2030, 1, 1, 12))


def test_usefulness_endpoints() -> None:
    assert usefulness(Decimal(24)) == 1
    assert usefulness(Decimal(0)) == 0
    assert abs(usefulness(Decimal(1)) - Decimal("0.1571")) < Decimal("0.001")


def test_hand_computed_value_at_noon() -> None:
    # h = 12: g = 1/(1 + e^-2) = 0.880797…; on plan (x = X̂ = 50 000) the factor is 1:
    # 0.2 + 0.55 × 0.8807970779… = 0.6844383928… -> truncated to 6 places.
    p = make_params()
    assert price_fraction(p, now=at(12), remaining_cents=50_000) == Decimal("0.684438")
    # half as much left as planned: × 2^0.25 = 1.189207… -> 0.8139390066…
    assert price_fraction(p, now=at(12), remaining_cents=25_000) == Decimal("0.813939")


def test_same_price_at_any_capacity_for_same_shares() -> None:
    for hours in (0, 3.25, 12, 18.5, 23.75):
        small = make_params(capacity=1_000)
        big = make_params(capacity=1_000_000)
        assert price_fraction(small, now=at(hours), remaining_cents=400) == price_fraction(
            big, now=at(hours), remaining_cents=400_000
        )


def test_planned_remaining_interpolates() -> None:
    p = make_params()
    assert planned_remaining_cents(p, now=at(12)) == 50_000
    mid = planned_remaining_cents(p, now=at(12.5))
    assert Decimal("47916") < mid < Decimal("47917")


def test_nothing_left_prices_at_list() -> None:
    p = make_params()
    assert price_fraction(p, now=at(10), remaining_cents=0) == 1
    assert price_fraction(p, now=at(10), remaining_cents=1) == 1  # far behind plan: clamp


def test_near_midnight_prices_at_floor() -> None:
    # plan ends at 0 and g(h) -> 0: the curve falls to the floor just before 00:00
    p = make_params()
    last = DAY + timedelta(days=1) - timedelta(microseconds=1)
    assert price_fraction(p, now=last, remaining_cents=10_000) == p.floor
    assert price_fraction(replace(p, a=Decimal(0)), now=last, remaining_cents=10) == p.floor


def test_clamped_to_floor_and_list() -> None:
    p = make_params(a=Decimal("-0.5"), b=Decimal("3"))
    seen = set()
    for hours in (0, 2, 6, 11, 17, 20, 23, 23.99):
        for remaining in (1, 100, 5_000, 50_000, 100_000):
            f = price_fraction(p, now=at(hours), remaining_cents=remaining)
            assert p.floor <= f <= 1
            seen.add(f)
    assert p.floor in seen and Decimal(1) in seen


def test_non_increasing_as_remaining_grows() -> None:
    p = make_params()
    for hours in (0.5, 9, 15.25, 22):
        prices = [
            price_fraction(p, now=at(hours), remaining_cents=r) for r in range(1, 100_001, 997)
        ]
        assert all(x >= y for x, y in itertools.pairwise(prices))
        assert prices[0] > prices[-1]


def test_discount_is_one_minus_fraction() -> None:
    p = make_params()
    assert discount(p, now=at(12), remaining_cents=50_000) == Decimal("0.315562")


def test_quote_rounds_down_to_whole_cents() -> None:
    p = make_params()
    assert quote_price_cents(p, now=at(12), remaining_cents=50_000, credit_cents=1000) == 684
    for credit in (1, 7, 99, 1000, 12_345):
        for hours in (1, 12, 23.5):
            cents = quote_price_cents(p, now=at(hours), remaining_cents=30_000, credit_cents=credit)
            f = price_fraction(p, now=at(hours), remaining_cents=30_000)
            assert isinstance(cents, int)
            assert cents >= 1
            assert cents <= credit * f or (cents == 1 and credit * f < 1)
            assert cents > credit * f - 1


def test_one_cent_minimum_only_below_min_credit() -> None:
    p = make_params()
    last = DAY + timedelta(days=1) - timedelta(microseconds=1)  # at the floor, 0.05
    assert quote_price_cents(p, now=last, remaining_cents=10_000, credit_cents=1) == 1
    assert quote_price_cents(p, now=last, remaining_cents=10_000, credit_cents=0) == 0
    m = min_credit_cents(p)
    assert m == 20
    assert quote_price_cents(p, now=last, remaining_cents=10_000, credit_cents=m) == 1
    assert quote_price_cents(p, now=last, remaining_cents=10_000, credit_cents=10 * m) == 10


def test_outside_validity_is_rejected() -> None:
    p = make_params(valid_from=at(5), valid_until=at(6))
    price_fraction(p, now=at(5.5), remaining_cents=10)
    with pytest.raises(ValueError):
        price_fraction(p, now=at(6), remaining_cents=10)


@pytest.mark.parametrize(
    "change",
    [
        {"plan": LINEAR_PLAN[:24]},
        {"floor": Decimal(0)},
        {"beta": Decimal(-1)},
        {"capacity_cents": 0},
        {"valid_from": datetime(2030, 1, 1)},
        {"valid_until": DAY + timedelta(days=2)},
    ],
)
def test_invalid_params_are_rejected(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_params(**change)


def test_hash_is_stable_and_canonical() -> None:
    p = make_params()
    assert params_hash(p) == params_hash(make_params())
    assert len(params_hash(p)) == 64
    # equal values written differently hash the same
    assert params_hash(replace(p, a=Decimal("0.200"))) == params_hash(p)
    # JSON round trip is lossless
    back = params_from_json(params_to_json(p))
    assert back == p and params_hash(back) == params_hash(p)
    assert params_to_json(p).startswith('{"a":"0.2","b":"0.55","beta":"0.25"')


def test_hash_changes_with_any_field() -> None:
    p = make_params()
    variants = [
        replace(p, a=Decimal("0.21")),
        replace(p, b=Decimal("0.56")),
        replace(p, beta=Decimal("0.3")),
        replace(p, floor=Decimal("0.06")),
        replace(p, plan=(Decimal("0.99"), *LINEAR_PLAN[1:])),
        replace(p, capacity_cents=100_001),
        replace(p, valid_until=at(23)),
        replace(p, list_cents=101),
    ]
    hashes = {params_hash(v) for v in variants} | {params_hash(p)}
    assert len(hashes) == len(variants) + 1


def test_default_params_cover_the_day() -> None:
    p = default_params(capacity_cents=250_000, day=date(2030, 3, 4))
    assert p.valid_from == datetime(2030, 3, 4, tzinfo=UTC)
    assert p.valid_until == datetime(2030, 3, 5, tzinfo=UTC)
    assert p.plan[0] == 1 and p.plan[24] == 0
    assert all(x >= y for x, y in zip(p.plan, p.plan[1:], strict=False))
    morning = price_fraction(p, now=datetime(2030, 3, 4, 1, tzinfo=UTC), remaining_cents=240_000)
    evening = price_fraction(p, now=datetime(2030, 3, 4, 22, tzinfo=UTC), remaining_cents=20_000)
    assert p.floor <= evening < morning <= 1
