"""The engine learns the credit demanded (not only the count of requests) and re-plans
within the hour when sales drift from plan, one published set at a time."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cheaptokens.pricing import (
    EngineConfig,
    Forecast,
    PricingEngine,
    PricingParams,
    params_from_json,
    params_to_json,
    price_fraction,
)
from cheaptokens.pricing.engine import plan_drift

DAY = datetime(2030, 1, 1, tzinfo=UTC)
CAP = 100_000
FORECAST = Forecast(n=200, v=0.75, q_med_cents=1000)


def run_day(
    size_factor: float, until_hour: float, *, seed: int = 3, ticks: bool = True
) -> tuple[PricingEngine, int, list[tuple[datetime, int, Decimal, PricingParams]]]:
    """Drive an engine through the first ``until_hour`` hours of a simulated day whose
    requests are ``size_factor`` × the forecast's size (same arrivals and willingness)."""
    rnd = random.Random(seed)
    engine = PricingEngine()
    engine.start_day(DAY, CAP, FORECAST)
    shape = FORECAST.shape
    times: list[float] = []
    while len(times) < 400:  # arrivals from the forecast's shape (rejection sampling)
        t = rnd.random() * 24
        if rnd.random() * 3.0 < shape.raw(t):
            times.append(t)
    times = sorted(times[:200])
    remaining = CAP
    quotes = []
    last_tick = -1
    for t in times:
        if t >= until_hour:
            break
        tick = int(t * 12)  # the worker's 5-minute drift check
        if ticks and tick > last_tick:
            engine.tick(DAY + timedelta(minutes=5 * tick), remaining)
            last_tick = tick
        now = DAY + timedelta(hours=t)
        q = max(100, round(size_factor * 1000 * math.exp(0.5 * rnd.gauss(0, 1))))
        w = 0.75 * (1 - math.exp(-(24 - t) / 6)) / (1 - math.exp(-4)) * math.exp(0.5 * rnd.gauss())
        p = engine.price(now, q, remaining)
        quotes.append((now, remaining, p, engine.current_params(now)))
        bought = remaining > 0 and float(p) <= w
        if bought:
            remaining -= min(q, remaining)
        engine.observe(now, q, p, bought)
    return engine, remaining, quotes


def test_requests_five_times_larger_are_recognised_within_hours() -> None:
    normal, _, _ = run_day(1.0, 4.0)
    large, _, _ = run_day(5.0, 4.0)
    at = DAY + timedelta(hours=4)
    normal.replan(at)
    large.replan(at)
    # same arrivals: the count estimate is the same, the credit demanded is ~5x
    assert large.arrival_estimate == normal.arrival_estimate
    assert large.request_size_estimate > 3.5 * normal.request_size_estimate
    assert large.volume_estimate > 3.5 * normal.volume_estimate
    # and it prices accordingly: dearer at the same unsold credit, all day
    for hour in (4.5, 10, 18):
        now = DAY + timedelta(hours=hour)
        p_large = price_fraction(large.replan(now, 80_000), now=now, remaining_cents=80_000)
        p_normal = price_fraction(normal.replan(now, 80_000), now=now, remaining_cents=80_000)
        assert p_large > p_normal


def test_requests_five_times_smaller_are_recognised_and_priced_lower() -> None:
    normal, _, _ = run_day(1.0, 5.0)
    small, _, _ = run_day(0.2, 5.0)
    at = DAY + timedelta(hours=5)
    p_small = price_fraction(small.replan(at, 95_000), now=at, remaining_cents=95_000)
    p_normal = price_fraction(normal.replan(at, 95_000), now=at, remaining_cents=95_000)
    assert small.request_size_estimate < normal.request_size_estimate / 3
    assert p_small < p_normal


def test_large_requests_move_the_plan_within_hours() -> None:
    """By 03:00 the engine plans to keep more credit for later than a blind one would."""
    large, remaining, quotes = run_day(5.0, 3.0)
    blind = PricingEngine(EngineConfig(size_prior_count=1e12))  # cannot learn sizes
    blind.start_day(DAY, CAP, FORECAST)
    for now, _, p, _ in quotes:
        blind.observe(now, 1000, p, False)
    at = DAY + timedelta(hours=3)
    learned = large.replan(at, remaining)
    fixed = blind.replan(at, remaining)
    assert learned.a + learned.b > fixed.a + fixed.b  # a dearer curve for the rest of the day
    p_learned = price_fraction(learned, now=at, remaining_cents=remaining)
    p_fixed = price_fraction(fixed, now=at, remaining_cents=remaining)
    assert p_learned > p_fixed


def test_outcome_unknown_counts_as_an_arrival_and_a_size_only() -> None:
    a, b = PricingEngine(), PricingEngine()
    for e in (a, b):
        e.start_day(DAY, CAP, FORECAST)
    for i in range(30):
        now = DAY + timedelta(hours=2, minutes=i)
        a.observe(now, 5000, Decimal("0.9"), None)
        b.observe(now, 5000, Decimal("0.9"), False)
    at = DAY + timedelta(hours=3)
    a.replan(at)
    b.replan(at)
    assert a.arrival_estimate == b.arrival_estimate
    assert a.request_size_estimate == b.request_size_estimate > FORECAST.mean_request_cents
    assert a.willingness_estimate == 0.75 > b.willingness_estimate


def test_drift_re_plans_within_the_hour_one_set_at_a_time() -> None:
    engine = PricingEngine()
    engine.start_day(DAY, CAP, FORECAST)
    top = DAY + timedelta(hours=9)
    hourly = engine.replan(top, CAP)
    assert hourly.valid_from == top and hourly.valid_until == top + timedelta(hours=1)
    # on plan: nothing to do; too soon after the last plan: nothing either
    assert engine.tick(top + timedelta(minutes=20), CAP) is None
    assert engine.tick(top + timedelta(minutes=5), CAP // 2) is None
    # far ahead of plan after the rate limit: a new set from now to the next top of the hour
    at = top + timedelta(minutes=12)
    assert plan_drift(hourly, now=at, remaining_cents=CAP // 2) > 0.15
    replanned = engine.tick(at, CAP // 2)
    assert replanned is not None and replanned != hourly
    assert replanned.valid_from == at and replanned.valid_until == hourly.valid_until
    assert engine.current_params(at + timedelta(minutes=1)) == replanned
    # the new plan passes through the unsold credit: scarcity 1 right after the re-plan
    assert plan_drift(replanned, now=at, remaining_cents=CAP // 2) < 0.01
    # rate-limited again, even though drift returns
    assert engine.tick(at + timedelta(minutes=9), CAP // 8) is None
    assert engine.tick(at + timedelta(minutes=10), CAP // 8) is not None


def test_a_new_hour_always_re_plans_and_quotes_stay_recomputable() -> None:
    _, _, quotes = run_day(5.0, 24.0)
    sets = {params for *_, params in quotes}
    inside = [p for p in sets if p.valid_from.minute or p.valid_from.second]
    assert inside, "a 5x day drifts from plan: some re-plans happen inside an hour"
    for now, remaining, price, params in quotes:
        published = params_from_json(params_to_json(params))
        assert published.valid_from <= now < published.valid_until
        assert price_fraction(published, now=now, remaining_cents=remaining) == price
    # never more than one re-plan per 10 minutes inside an hour
    starts = sorted(p.valid_from for p in sets)
    gaps = [b - a for a, b in itertools.pairwise(starts) if b.minute or b.second]
    assert gaps and min(gaps) >= timedelta(minutes=10)


def test_demand_drift_alone_triggers_a_re_plan() -> None:
    engine = PricingEngine()
    engine.start_day(DAY, CAP, FORECAST)
    top = DAY + timedelta(hours=2)
    planned = engine.replan(top, CAP)
    for i in range(15):  # big requests, all declined: unsold credit stays on plan
        now = top + timedelta(minutes=1 + i)
        engine.observe(now, 20_000, Decimal("0.99"), False)
    at = top + timedelta(minutes=20)
    assert plan_drift(planned, now=at, remaining_cents=CAP) < 0.15  # sales are on plan
    assert engine.tick(at, CAP) is not None
