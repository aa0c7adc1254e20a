"""In-day learning of the daily shape: when requests come earlier than the forecast's shape
says, the engine learns it is an early day, not a busy one, and prices the rest lower."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from cheaptokens.pricing import ArrivalShape, EngineConfig, Forecast, PricingEngine, price_fraction
from cheaptokens.pricing.forecast import ShapeCandidate, shape_posterior
from cheaptokens.pricing.shape import SHIFT_HOURS, TILTS, shape_family

DAY = datetime(2030, 1, 1, tzinfo=UTC)
CAP = 100_000
FORECAST = Forecast(n=200, v=0.75, q_med_cents=1000)
#: most requests in the (UTC) night and morning: the benchmark's "Asian peak"
EARLY = ArrivalShape(base=0.25, bumps=((1.4, 2.0, 3.0), (1.0, 8.0, 2.5), (0.5, 15.0, 2.5)))


def arrival_times(shape: ArrivalShape, n: int, seed: int) -> list[float]:
    """``n`` request times (hours) drawn from ``shape`` by rejection sampling."""
    rnd = random.Random(seed)
    top = max(shape.raw(m / 60) for m in range(1440))
    times: list[float] = []
    while len(times) < n:
        t = rnd.random() * 24
        if rnd.random() * top < shape.raw(t):
            times.append(t)
    return sorted(times)


def slot_counts(times: list[float], until: float) -> list[int]:
    counts = [0] * (int(until * 4) + 1)
    for t in times:
        if t < until:
            counts[int(t * 4)] += 1
    return counts


def test_the_posterior_favours_the_shape_that_explains_when_requests_came() -> None:
    family = shape_family(FORECAST.shape, 0.5)
    as_forecast = arrival_times(FORECAST.shape, 200, seed=1)
    post = shape_posterior(family, slot_counts(as_forecast, 12.0), 12.0, 200.0, 0.3)
    assert max(post, key=lambda c: c.weight).index == 0
    assert sum(c.weight for c in post) == pytest.approx(1.0)
    # the same day six hours later (the evening wrapping into the night): the candidates
    # shifted by +5..+8 h explain it, the forecast's own shape does not
    later = sorted((t + 6) % 24 for t in as_forecast)
    post = shape_posterior(family, slot_counts(later, 20.0), 20.0, 200.0, 0.3)
    near_six = {1 + SHIFT_HOURS.index(s) for s in (5, 6, 7, 8)}
    assert sum(c.weight for c in post if c.index in near_six) > 0.9


def tilted_times(tilt: float, n: int, seed: int) -> list[float]:
    """``n`` request times from the forecast's shape tilted by ``tilt`` (rejection sampling)."""
    rnd = random.Random(seed)

    def raw(t: float) -> float:
        return FORECAST.shape.raw(t) * math.exp(tilt * (t - 12.0) / 12.0)

    top = max(raw(m / 60) for m in range(1440))
    times: list[float] = []
    while len(times) < n:
        t = rnd.random() * 24
        if rnd.random() * top < raw(t):
            times.append(t)
    return sorted(times)


def test_tilted_candidates_are_the_forecasts_shape_times_an_exponential() -> None:
    family = shape_family(FORECAST.shape, 0.8)
    first_tilt = 1 + len(SHIFT_HOURS) + 1  # after the forecast's shape, the shifts and flat
    assert len(family.mass) == first_tilt + len(TILTS)
    for i, tilt in enumerate(TILTS):
        raw = [m * math.exp(tilt * ((j + 0.5) / 4 - 12) / 12) for j, m in enumerate(family.mass[0])]
        assert family.mass[first_tilt + i] == pytest.approx([r / sum(raw) for r in raw])
    assert len(shape_family(FORECAST.shape, 0.8, tilts=()).mass) == first_tilt


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_day_tilted_towards_the_morning_is_read_as_less_busy(seed: int) -> None:
    """As many requests as forecast, but more at night and fewer in the evening — no shift of
    the forecast's shape looks like that. By noon the candidates tilted towards the morning
    outweigh the forecast's own shape, and the day's arrivals expected are nearer the 200
    that come than without them (which reads a busier day)."""
    family = shape_family(FORECAST.shape, 0.8)
    first_tilt = 1 + len(SHIFT_HOURS) + 1
    morning = {first_tilt + i for i, tilt in enumerate(TILTS) if tilt < 0}
    counts = slot_counts(tilted_times(-1.5, 200, seed), 12.0)
    post = shape_posterior(family, counts, 12.0, 200.0, 0.3)
    untilted = shape_family(FORECAST.shape, 0.8, tilts=())
    without = shape_posterior(untilted, counts, 12.0, 200.0, 0.3)
    morning_weight = sum(c.weight for c in post if c.index in morning)
    assert morning_weight > 0.25 and morning_weight > sum(c.weight for c in post if c.index == 0)

    def arrivals(post: list[ShapeCandidate]) -> float:
        return sum(c.weight * c.n_hat for c in post)

    assert abs(arrivals(post) - 200) < abs(arrivals(without) - 200)


def test_nothing_seen_yet_leaves_the_prior() -> None:
    family = shape_family(FORECAST.shape, 0.8)
    post = shape_posterior(family, [0], 0.0, 200.0, 0.3)
    assert next(c for c in post if c.index == 0).weight == pytest.approx(0.8)
    assert all(c.n_hat == pytest.approx(200.0) for c in post)
    with pytest.raises(ValueError):
        shape_family(FORECAST.shape, 0.0)


def engine_after(
    times: list[float], until: float, shape_prior: float, shape_count_weight: float = 0.0
) -> PricingEngine:
    engine = PricingEngine(
        EngineConfig(shape_prior=shape_prior, shape_count_weight=shape_count_weight)
    )
    engine.start_day(DAY, CAP, FORECAST)
    for t in times:
        if t >= until:
            break
        engine.observe(DAY + timedelta(hours=t), 1000, engine.price(DAY, 1000, CAP), None)
    return engine


def test_an_early_day_is_recognised_and_the_afternoon_priced_lower() -> None:
    early = arrival_times(EARLY, 200, seed=7)  # as many requests as forecast, earlier
    at = DAY + timedelta(hours=12)
    learned = engine_after(early, 12.0, shape_prior=0.5)
    blind = engine_after(early, 12.0, shape_prior=1.0)  # takes the forecast's shape as known
    p_learned = price_fraction(learned.replan(at, 60_000), now=at, remaining_cents=60_000)
    p_blind = price_fraction(blind.replan(at, 60_000), now=at, remaining_cents=60_000)
    # the blind engine reads ~3/4 of the day's requests by noon as a very busy day
    assert blind.arrival_estimate > 280
    assert abs(learned.arrival_estimate - 200) < abs(blind.arrival_estimate - 200)
    assert p_learned < p_blind


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_a_day_like_the_forecast_keeps_its_shape(seed: int) -> None:
    usual = arrival_times(FORECAST.shape, 200, seed=seed)
    post = shape_posterior(
        shape_family(FORECAST.shape, 0.5), slot_counts(usual, 12.0), 12.0, 200.0, 0.3
    )
    assert max(post, key=lambda c: c.weight).index == 0
    at = DAY + timedelta(hours=12)
    learned = engine_after(usual, 12.0, shape_prior=0.5)
    blind = engine_after(usual, 12.0, shape_prior=1.0)
    learned.replan(at, 60_000)
    blind.replan(at, 60_000)
    assert learned.arrival_estimate == pytest.approx(blind.arrival_estimate, rel=0.15)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_busy_day_is_not_read_as_an_early_one(seed: int) -> None:
    """Twice the forecast's requests, at the forecast's times: judged by when they came the
    forecast's shape stays the most probable and the day reads as busy; judged by their
    number too (``count_weight``), it reads as an early day with far fewer arrivals."""
    family = shape_family(FORECAST.shape, 0.8)
    counts = slot_counts(arrival_times(FORECAST.shape, 400, seed=seed), 12.0)
    by_timing = shape_posterior(family, counts, 12.0, 200.0, 0.3)
    by_count_too = shape_posterior(family, counts, 12.0, 200.0, 0.3, count_weight=0.3)

    def forecast_weight(post: list[ShapeCandidate]) -> float:
        return sum(c.weight for c in post if c.index == 0)

    def arrivals(post: list[ShapeCandidate]) -> float:
        return sum(c.weight * c.n_hat for c in post)

    assert forecast_weight(by_timing) > 0.5 > forecast_weight(by_count_too)
    assert arrivals(by_timing) > 300 > 1.1 * arrivals(by_count_too)


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_a_weak_count_prior_sees_an_early_day_sooner_and_a_busy_day_still_busy(
    seed: int,
) -> None:
    """``shape_count_weight``: the number of requests judges the shape too, with a prior worth
    a few hundredths of a day. By 06:00 an early day (as many requests as forecast) is read as
    less busy and priced lower than by their timing alone; a day with twice the requests at
    the forecast's times still reads as busy at noon (a prior of 0.3 days does not)."""
    at6, at12 = DAY + timedelta(hours=6), DAY + timedelta(hours=12)
    early = arrival_times(EARLY, 200, seed=seed)
    by_timing = engine_after(early, 6.0, shape_prior=0.8)
    by_count_too = engine_after(early, 6.0, shape_prior=0.8, shape_count_weight=0.03)
    p_timing = price_fraction(by_timing.replan(at6, 60_000), now=at6, remaining_cents=60_000)
    p_count = price_fraction(by_count_too.replan(at6, 60_000), now=at6, remaining_cents=60_000)
    assert by_count_too.arrival_estimate < by_timing.arrival_estimate - 25
    assert p_count < p_timing

    busy = arrival_times(FORECAST.shape, 400, seed=seed)
    weak = engine_after(busy, 12.0, shape_prior=0.8, shape_count_weight=0.03)
    strong = engine_after(busy, 12.0, shape_prior=0.8, shape_count_weight=0.3)
    weak.replan(at12, 60_000)
    strong.replan(at12, 60_000)
    assert weak.arrival_estimate > 295 and strong.arrival_estimate < 0.9 * weak.arrival_estimate
