"""The nightly refit learns from weeks of the shop's own quotes: it keeps the forecast's daily
shape unless the requests argue otherwise, measures how often a day's willingness and shape
are the forecast's and how much a day's arrivals and request sizes stray from it (which the
engine then trusts as much), and reads a sold-out day as a day cut short."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cheaptokens.pricing import ArrivalShape, Forecast, PricingEngine, QuoteRecord, refit_forecast
from cheaptokens.pricing.forecast import (
    V_RIGHT_BOUNDS,
    V_RIGHT_MIN_DAYS,
    arrival_weight,
    g_float,
    learned_shape,
    shape_right_share,
    size_weight,
    willingness_right_share,
)
from cheaptokens.pricing.shape import shape_family
from support.answers import answers

DAY = datetime(2030, 1, 1, tzinfo=UTC)
EARLY = ArrivalShape(base=0.25, bumps=((1.4, 2.0, 3.0), (1.0, 8.0, 2.5), (0.5, 15.0, 2.5)))
PRIOR = Forecast(n=200, v=0.75, q_med_cents=1000)


def hour_counts(shape: ArrivalShape, n: int, seed: int) -> list[float]:
    """``n`` requests drawn from ``shape``, counted per UTC hour."""
    rnd = random.Random(seed)
    counts = [0.0] * 24
    for h in rnd.choices(range(24), weights=shape.hour_shares(), k=n):
        counts[h] += 1.0
    return counts


@pytest.mark.parametrize("seed", range(5))
def test_weeks_of_requests_shaped_as_forecast_keep_the_forecasts_shape(seed: int) -> None:
    prior = PRIOR.shape
    assert learned_shape(hour_counts(prior, 28 * 200, seed), prior) is prior


@pytest.mark.parametrize("seed", range(5))
def test_a_different_daily_shape_is_learned_as_a_histogram(seed: int) -> None:
    prior = PRIOR.shape
    learned = learned_shape(hour_counts(EARLY, 3 * 200, seed), prior)
    assert learned.hourly, "three days of early requests should replace the shape"
    got, want = learned.hour_shares(), EARLY.hour_shares()
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 0.035
    assert got[2] > 2 * prior.hour_shares()[2]  # the night peak the forecast did not have


def test_no_requests_leave_the_shape_alone() -> None:
    assert learned_shape([0.0] * 24, PRIOR.shape) is PRIOR.shape


def test_steady_days_are_measured_as_the_forecasts_and_unsteady_ones_are_not() -> None:
    rnd = random.Random(7)
    level = math.log(0.75)
    steady = [answers(level, 150, rnd) for _ in range(20)]
    unsteady = [answers(level + rnd.choice((-0.5, 0.5)), 150, rnd) for _ in range(20)]
    kw = {"right_sd": 0.05, "wide_sd": 0.3}
    high = willingness_right_share(steady, level, 0.5, **kw)
    low = willingness_right_share(unsteady, level, 0.5, **kw)
    assert high is not None and high[0] >= 0.9 and high[1] == 0.05
    assert low is not None and low[0] <= 0.2
    assert V_RIGHT_BOUNDS[0] <= low[0] < high[0] <= V_RIGHT_BOUNDS[1]
    # too few days to say: the engine's own prior applies
    assert willingness_right_share(steady[: V_RIGHT_MIN_DAYS - 1], level, 0.5, **kw) is None


def poisson(rnd: random.Random, mean: float) -> int:
    """A Poisson draw (as many unit-rate exponential gaps as fit into ``mean``)."""
    count, t = 0, rnd.expovariate(1.0)
    while t < mean:
        count, t = count + 1, t + rnd.expovariate(1.0)
    return count


def test_how_closely_steady_days_keep_to_the_level_is_measured() -> None:
    """Days exactly at the level pick the narrowest sd on offer; days that wander by about
    0.1 in ln v a wider one — still "the forecast's level", only not as exactly."""
    rnd = random.Random(12)
    level = math.log(0.75)
    exact = [answers(level, 150, rnd) for _ in range(28)]
    wander = [answers(level + rnd.gauss(0, 0.1), 150, rnd) for _ in range(28)]
    sds = (0.02, 0.03, 0.05, 0.08)
    tight = willingness_right_share(exact, level, 0.5, right_sd=sds, wide_sd=0.3)
    loose = willingness_right_share(wander, level, 0.5, right_sd=sds, wide_sd=0.3)
    assert tight is not None and tight[1] == 0.02 and tight[0] >= 0.9
    assert loose is not None and loose[1] >= 0.05


def quote_days(
    days: int,
    n: int,
    v: float,
    seed: int,
    *,
    sell_out_at: float | None = None,
    swing: float = 0.0,
    shape: ArrivalShape = PRIOR.shape,
) -> tuple[list[QuoteRecord], dict]:
    """``days`` days of Poisson(``n``) requests (``shape``) answered by buyers of level ``v``;
    with ``sell_out_at`` every day sells out at that hour and logs nothing after it; with
    ``swing`` each day's arrival rate and median request size are ``e^(±swing)`` times the
    forecast's."""
    rnd = random.Random(seed)
    records: list[QuoteRecord] = []
    ended = {}
    shares = shape.hour_shares()
    for d in range(days):
        rate = n * math.exp(rnd.choice((-swing, swing)))
        size = 1000 * math.exp(rnd.choice((-swing, swing)))
        count = poisson(rnd, rate)
        hours = sorted(h + rnd.random() for h in rnd.choices(range(24), weights=shares, k=count))
        for t in hours:
            if sell_out_at is not None and t >= sell_out_at:
                break
            price = rnd.uniform(0.2, 0.8)
            w = v * g_float(24 - t) * math.exp(0.5 * rnd.gauss(0, 1))
            at = DAY + timedelta(days=d, hours=t)
            cents = max(1, round(size * math.exp(0.5 * rnd.gauss(0, 1))))
            records.append(QuoteRecord(at, cents, Decimal(f"{price:.4f}"), w >= price))
        if sell_out_at is not None:
            ended[(DAY + timedelta(days=d)).date()] = DAY + timedelta(days=d, hours=sell_out_at)
    return records, ended


def test_sold_out_days_count_only_until_they_sold_out() -> None:
    records, ended = quote_days(14, 200, 0.75, seed=3, sell_out_at=14.0)
    told = refit_forecast(records, PRIOR, days=14, learn_shape=True, sold_out=ended)
    blind = refit_forecast(records, PRIOR, days=14, learn_shape=True)
    assert abs(told.n - 200) < 10  # the evenings nobody could be quoted are not "no demand"
    assert blind.n < 170
    assert told.shape is PRIOR.shape  # cut-short days say nothing of the evening's share
    assert blind.shape.hourly  # read naively, the evening looks empty


def test_the_refit_learns_the_level_and_how_steady_it_is() -> None:
    records, _ = quote_days(14, 200, 0.525, seed=4)
    fit = refit_forecast(records, PRIOR, days=14, learn_shape=True)
    assert abs(fit.v - 0.525) < 0.03
    assert fit.v_right is not None and fit.v_right >= 0.9
    assert fit.shape is PRIOR.shape
    assert Forecast.from_dict(fit.to_dict()) == fit  # stored and read back as it was
    # a day's records alone do not measure it: the previous measure (or none) stays
    one_day, _ = quote_days(1, 200, 0.525, seed=5)
    assert refit_forecast(one_day, PRIOR).v_right is None
    assert refit_forecast(one_day, fit).v_right == fit.v_right


def test_v_right_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="v_right"):
        Forecast(v_right=1.0)
    assert Forecast.from_dict({k: v for k, v in PRIOR.to_dict().items() if k != "v_right"}) == PRIOR


def willingness_after(forecast: Forecast, obs_day: list[tuple[float, bool]]) -> float:
    """The engine's willingness estimate at 06:00 after ``obs_day``'s answers from 01:00 on,
    one every 6 minutes."""
    engine = PricingEngine()
    engine.start_day(DAY, 100_000, forecast)
    for i, (y, accepted) in enumerate(obs_day):
        t = 1 + i * 0.1
        price = math.exp(y) * g_float(24 - t)
        engine.observe(DAY + timedelta(hours=t), 1000, Decimal(f"{price:.6f}"), accepted)
    engine.replan(DAY + timedelta(hours=6))
    return engine.willingness_estimate


def test_the_engine_trusts_a_forecast_measured_as_steady() -> None:
    """The same 15 answers from buyers 30 % shyer: a forecast measured as right on 95 % of
    days keeps the estimate nearer to it than one measured as right on 5 % of days (which
    follows the answers)."""
    obs_day = answers(math.log(0.525), 15, random.Random(11))
    trusted = willingness_after(Forecast(n=200, v=0.75, v_right=0.95), obs_day)
    doubted = willingness_after(Forecast(n=200, v=0.75, v_right=0.05), obs_day)
    assert doubted < 0.6 and 0.65 < trusted <= 0.75


def test_the_engine_keeps_closer_to_a_level_measured_as_exact() -> None:
    """The same 40 answers from buyers 10 % shyer, both forecasts trusted on 95 % of days: one
    whose steady days kept within 0.02 of the level stays nearer it than one within 0.08."""
    obs_day = answers(math.log(0.675), 40, random.Random(13))
    exact = willingness_after(Forecast(n=200, v=0.75, v_right=0.95, v_right_sd=0.02), obs_day)
    loose = willingness_after(Forecast(n=200, v=0.75, v_right=0.95, v_right_sd=0.08), obs_day)
    assert 0.73 < exact <= 0.75
    assert loose < exact - 0.01


def test_steady_days_earn_the_forecast_weight_and_swinging_days_do_not() -> None:
    """Arrivals and request sizes as steady as chance allows make the learned ``n`` worth
    days (up to the window's 28; the moments of 28 Poisson counts are noisy) and the
    learned size thousands of requests; days that swing by ±40 % are worth well under a
    day and a few dozen requests, so the engine learns them in the day as before."""
    steady, _ = quote_days(28, 200, 0.75, seed=8)
    swinging, _ = quote_days(28, 200, 0.75, seed=8, swing=0.4)
    fit = refit_forecast(steady, PRIOR, days=28, learn_shape=True)
    loose = refit_forecast(swinging, PRIOR, days=28, learn_shape=True)
    assert fit.arrival_prior_days is not None and fit.arrival_prior_days > 5
    assert loose.arrival_prior_days is not None and loose.arrival_prior_days < 0.5
    assert fit.size_prior_count is not None and fit.size_prior_count > 1000
    assert loose.size_prior_count is not None and loose.size_prior_count < 20
    assert Forecast.from_dict(fit.to_dict()) == fit


def test_a_sold_out_day_with_fewer_requests_is_not_read_as_a_quiet_one() -> None:
    """Every day sells out at 14:00: its requests are fewer only because the evening was not
    quoted; counted with their exposure the days are as steady as whole ones."""
    records, ended = quote_days(28, 200, 0.75, seed=9, sell_out_at=14.0)
    told = refit_forecast(records, PRIOR, days=28, learn_shape=True, sold_out=ended)
    assert told.arrival_prior_days is not None and told.arrival_prior_days > 5
    # and directly: half a day with half the requests is no surprise; with all of them it is
    assert arrival_weight([(200, 1.0), (100, 0.5)] * 5, 200.0) > 5
    assert arrival_weight([(200, 1.0), (200, 0.5)] * 5, 200.0) < 0.5


def test_too_few_days_measure_no_weight() -> None:
    short = [(200, 1.0)] * (V_RIGHT_MIN_DAYS - 1)
    assert arrival_weight(short, 200.0) is None
    assert size_weight([[6.9, 6.9]] * (V_RIGHT_MIN_DAYS - 1), 0.5) is None
    assert size_weight([[6.9, 7.0]] * 5, 0.0) is None
    one_day, _ = quote_days(1, 200, 0.75, seed=10)
    assert refit_forecast(one_day, PRIOR).arrival_prior_days is None


@pytest.mark.parametrize("seed", range(3))
def test_days_shaped_as_forecast_are_measured_so_and_early_days_are_not(seed: int) -> None:
    family = shape_family(PRIOR.shape, 0.5, 4)

    def slot_counts(shape: ArrivalShape, rnd: random.Random) -> list[float]:
        counts = [0.0] * 96
        for _ in range(200):
            h = rnd.choices(range(24), weights=shape.hour_shares())[0]
            counts[int((h + rnd.random()) * 4)] += 1
        return counts

    rnd = random.Random(seed)
    as_forecast = shape_right_share([slot_counts(PRIOR.shape, rnd) for _ in range(20)], family)
    early = shape_right_share([slot_counts(EARLY, rnd) for _ in range(20)], family)
    assert as_forecast is not None and as_forecast >= 0.9
    assert early is not None and early <= 0.2
    assert shape_right_share([[0.0] * 96] * 20, family) is None


def test_forecast_weights_and_shares_must_be_in_range() -> None:
    for bad in (
        {"shape_prior": 1.0},
        {"arrival_prior_days": 0.0},
        {"size_prior_count": -1.0},
        {"v_right_sd": 0.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Forecast(**bad)
    with pytest.raises(ValueError, match="arrival_prior_days"):
        Forecast(arrival_prior_days=math.inf)


def test_the_engine_learns_arrivals_in_the_day_as_much_as_past_days_varied() -> None:
    """Twice the forecast's requests by 08:00: an engine whose forecast was measured as
    steady over weeks (worth 20 days) barely moves; one without the measure (the config's
    0.15 days) reads a busy day."""
    estimates = {}
    for weight in (None, 20.0):
        engine = PricingEngine()
        fc = Forecast(n=200, v=0.75, arrival_prior_days=weight, shape_prior=0.95)
        engine.start_day(DAY, 100_000, fc)
        expected = 200 * fc.shape.cdf(8.0)
        for i in range(round(2 * expected)):
            t = 8.0 * (i + 0.5) / round(2 * expected)
            engine.observe(DAY + timedelta(hours=t), 1000, Decimal("0.7"), None)
        engine.replan(DAY + timedelta(hours=8))
        estimates[weight] = engine.arrival_estimate
    assert estimates[None] > 300
    assert 195 < estimates[20.0] < 215


def test_the_cli_prints_what_the_refit_measured(capsys: pytest.CaptureFixture[str]) -> None:
    from cheaptokens.cli.pricing import _print_forecast

    _print_forecast(PRIOR)
    plain = capsys.readouterr().out
    assert "of past days" not in plain and "of evidence" not in plain
    measured = Forecast(
        n=200,
        v=0.75,
        v_right=0.9,
        v_right_sd=0.03,
        arrival_prior_days=12.5,
        size_prior_count=4000,
        shape_prior=0.8,
    )
    _print_forecast(measured)
    out = capsys.readouterr().out
    assert "worth 12.5 days of evidence" in out and "worth 4000 requests" in out
    assert (
        "level on 90% of past days (within 0.03 in ln v)" in out
        and "shape on 80% of past days" in out
    )
