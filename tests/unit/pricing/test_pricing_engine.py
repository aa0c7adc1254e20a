"""The pricing engine: bounded, monotone, reproducible from its published params, learning."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cheaptokens.pricing import (
    EngineConfig,
    Forecast,
    PricingEngine,
    PricingParams,
    QuoteRecord,
    params_from_json,
    params_hash,
    params_to_json,
    price_fraction,
    refit_forecast,
)
from cheaptokens.pricing import engine as engine_module
from cheaptokens.pricing.forecast import estimate_willingness, willingness_log_evidence
from support.answers import answers

DAY = datetime(2030, 1, 1, tzinfo=UTC)
CAP = 100_000


def started(forecast: Forecast | None = None) -> PricingEngine:
    engine = PricingEngine()
    engine.start_day(DAY, CAP, forecast or Forecast())
    return engine


def simulate(engine: PricingEngine, seed: int, n: int = 200, v: float = 0.75) -> list[tuple]:
    """A small random day; returns (now, remaining, price, params) for every quote."""
    rnd = random.Random(seed)
    times = sorted(rnd.random() * 24 for _ in range(n))
    remaining = CAP
    out = []
    for t in times:
        now = DAY + timedelta(hours=t)
        q = max(1, round(1000 * math.exp(0.5 * rnd.gauss(0, 1))))
        w = v * (1 - math.exp(-(24 - t) / 6)) / (1 - math.exp(-4)) * math.exp(0.5 * rnd.gauss())
        p = engine.price(now, q, remaining)
        out.append((now, remaining, p, engine.current_params(now)))
        bought = remaining > 0 and float(p) <= w
        if bought:
            remaining -= min(q, remaining)
        engine.observe(now, q, p, bought)
    return out


def test_start_day_must_be_midnight() -> None:
    with pytest.raises(ValueError):
        PricingEngine().start_day(DAY + timedelta(hours=1), CAP, Forecast())
    with pytest.raises(RuntimeError):
        PricingEngine().price(DAY, 100, CAP)


def test_prices_within_floor_and_list_and_monotone_in_remaining() -> None:
    engine = started()
    floor = engine.config.floor
    for hours in (0, 4.5, 11, 17.25, 21, 23.9):
        now = DAY + timedelta(hours=hours)
        prices = [engine.price(now, 1000, r) for r in range(0, CAP + 1, 2500)]
        assert all(floor <= p <= 1 for p in prices)
        assert all(x >= y for x, y in itertools.pairwise(prices))


def test_published_formula_reproduces_every_quote() -> None:
    engine = started()
    quotes = simulate(engine, seed=1)
    assert len({params_hash(params) for *_, params in quotes}) > 10  # hourly re-plans
    for now, remaining, price, params in quotes:
        # a buyer fetches the params by hash and recomputes from (time, remaining)
        published = params_from_json(params_to_json(params))
        assert price_fraction(published, now=now, remaining_cents=remaining) == price
        assert params.valid_from <= now < params.valid_until
        assert params.valid_until - params.valid_from == timedelta(hours=1)


def test_engine_sells_and_stays_bounded_over_a_day() -> None:
    engine = started()
    quotes = simulate(engine, seed=2, n=120)
    assert all(engine.config.floor <= p <= 1 for _, _, p, _ in quotes)
    assert quotes[-1][1] < CAP  # something sold
    early = [p for now, _, p, _ in quotes if now < DAY + timedelta(hours=6)]
    late = [p for now, left, p, _ in quotes if now > DAY + timedelta(hours=22) and left > 0]
    assert sum(late) / len(late) < sum(early) / len(early)  # credit that expires sooner is cheaper


def observe_many(engine: PricingEngine, count: int, until_hour: int, accept: bool) -> None:
    for i in range(count):
        now = DAY + timedelta(hours=until_hour * (i + 0.5) / count)
        p = engine.price(now, 1000, CAP)
        engine.observe(now, 1000, p, accept)


def test_more_arrivals_than_forecast_raise_the_arrival_estimate() -> None:
    busy, quiet = started(), started()
    observe_many(busy, 150, 10, accept=False)  # forecast expects ~66 by 10:00
    observe_many(quiet, 20, 10, accept=False)
    busy.replan(DAY + timedelta(hours=10))
    quiet.replan(DAY + timedelta(hours=10))
    assert busy.arrival_estimate > 200 > quiet.arrival_estimate


def test_declines_lower_and_accepts_raise_the_willingness_estimate() -> None:
    shy, keen = started(), started()
    observe_many(shy, 60, 8, accept=False)
    observe_many(keen, 60, 8, accept=True)
    shy.replan(DAY + timedelta(hours=8))
    keen.replan(DAY + timedelta(hours=8))
    assert shy.willingness_estimate < 0.75 < keen.willingness_estimate


def test_lower_willingness_estimate_publishes_lower_prices() -> None:
    shy, neutral = started(), started()
    observe_many(shy, 60, 8, accept=False)
    now = DAY + timedelta(hours=8, minutes=10)
    assert shy.price(now, 1000, 80_000) < neutral.price(now, 1000, 80_000)


def test_config_floor_and_beta_are_published() -> None:
    engine = PricingEngine(EngineConfig(floor=Decimal("0.05"), beta=Decimal("0.4")))
    engine.start_day(DAY, CAP, Forecast())
    params = engine.current_params(DAY + timedelta(hours=3))
    assert params.floor == Decimal("0.05") and params.beta == Decimal("0.4")
    assert params.plan[3] == Decimal("1")  # nothing sold yet: the plan passes through x


def record(hour: float, accepted: bool, price: str = "0.5", day: int = 0) -> QuoteRecord:
    at = DAY + timedelta(days=day, hours=hour)
    return QuoteRecord(
        at=at, requested_cents=1000, price_fraction=Decimal(price), accepted=accepted
    )


def test_refit_moves_estimates_the_right_way() -> None:
    prior = Forecast(n=200, v=0.75)
    assert refit_forecast([], prior) == prior
    busy = [record(h % 24, True, day=h // 300) for h in range(600)]  # 300 a day
    assert refit_forecast(busy, prior).n > 200
    declined = [record(2 + i % 20, False, day=i // 100) for i in range(200)]  # 100 a day
    fit = refit_forecast(declined, prior)
    assert fit.v < 0.75 and fit.n < 200


def outcomes(log_v: float, count: int, seed: int) -> list[tuple[float, bool]]:
    return answers(log_v, count, random.Random(seed))


def test_willingness_evidence_favours_the_prior_that_fits_the_outcomes() -> None:
    prior = math.log(0.75)

    def log_odds_right(obs: list[tuple[float, bool]]) -> float:
        narrow = estimate_willingness(prior, 0.05, 0.5, obs)
        wide = estimate_willingness(prior, 0.3, 0.5, obs)
        return willingness_log_evidence(prior, 0.05, 0.5, obs, narrow) - willingness_log_evidence(
            prior, 0.3, 0.5, obs, wide
        )

    seeds = range(10)
    # buyers as forecast: the narrow prior explains them better on most days, and on average
    as_forecast = [log_odds_right(outcomes(prior, 120, seed)) for seed in seeds]
    assert sum(x > 0 for x in as_forecast) >= 9 and sum(as_forecast) / 10 > 0.5
    # buyers 40 % shyer: the wide prior, decisively, every day
    assert all(log_odds_right(outcomes(prior + math.log(0.6), 120, seed)) < -5 for seed in seeds)


def test_a_prior_that_trusts_the_forecast_shrinks_noise_and_still_learns_a_real_shift() -> None:
    def estimate(v: float, right: float, seed: int) -> float:
        engine = PricingEngine(EngineConfig(willingness_prior_right=right))
        engine.start_day(DAY, CAP, Forecast())
        simulate(engine, seed=seed, n=120, v=v)
        engine.replan(DAY + timedelta(hours=23, minutes=59))
        return engine.willingness_estimate

    seeds = range(12)
    wide = [abs(math.log(estimate(0.75, 0.0, s) / 0.75)) for s in seeds]
    mixed = [abs(math.log(estimate(0.75, 0.5, s) / 0.75)) for s in seeds]
    assert sum(mixed) < 0.7 * sum(wide)  # buyers as forecast: the estimate strays less
    shifted = [estimate(0.45, 0.5, s) for s in seeds]
    assert max(shifted) < 0.6  # 40 % shyer buyers: learned anyway (forecast 0.75)


def test_a_willingness_shift_inside_the_hour_re_plans_before_the_next_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def engine_after_shy_buyers(drift: float) -> tuple[PricingEngine, PricingParams]:
        engine = PricingEngine(EngineConfig(replan_willingness_drift=drift))
        engine.start_day(DAY, CAP, Forecast())
        rnd = random.Random(7)
        expected = round(200 * Forecast().shape.cdf(8.0))  # requests the forecast expects
        for i in range(expected):  # 00:00-08:00: buyers as forecast
            t = 8.0 * (i + 0.5) / expected
            now = DAY + timedelta(hours=t)
            p = engine.price(now, 1000, CAP)
            w = 0.75 * (1 - math.exp(-(24 - t) / 6)) / (1 - math.exp(-4))
            engine.observe(now, 1000, p, float(p) <= w * math.exp(0.5 * rnd.gauss(0, 1)))
        engine.replan(DAY + timedelta(hours=8))
        for i in range(6):  # 08:00-08:20: six buyers decline a tenth of list
            engine.observe(DAY + timedelta(hours=8, minutes=3 * i + 1), 1000, Decimal("0.1"), False)
        return engine, engine.current_params(DAY + timedelta(hours=8, minutes=20))

    watching, before = engine_after_shy_buyers(0.1)
    blind, _ = engine_after_shy_buyers(0.0)
    now = DAY + timedelta(hours=8, minutes=20)
    assert blind.tick(now, CAP) is None  # neither sales nor the demand estimate drifted
    fits: list[float] = []

    def counted(*args: object, **kwargs: object) -> float:
        fits.append(1.0)
        return estimate_willingness(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "estimate_willingness", counted)
    fresh = watching.tick(now, CAP)
    assert len(fits) == 2  # the drift check's narrow and wide fits, reused by the re-plan
    assert fresh is not None and fresh.valid_from == now
    assert watching.willingness_estimate < 0.75 * 0.9
    assert watching.price(now, 1000, CAP) < price_fraction(before, now=now, remaining_cents=CAP)
