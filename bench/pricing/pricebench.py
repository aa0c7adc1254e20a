"""Pricing benchmark library: the exact day generator, hindsight, the posted-price bound,
baselines and the simulator that drives a :class:`cheaptokens.pricing.PricingEngine`.

Implements the benchmark definition (share of the hindsight optimum) exactly: see
``bench/pricing/README.md``. Floats are fine here: this is a simulation, not the shop's money.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cheaptokens.pricing import EngineConfig, Forecast, PricingEngine
from cheaptokens.pricing.forecast import QuoteRecord, refit_forecast

CAPACITY = 1000.0  # credits ($1 of inference at list each)
CAPACITY_CENTS = 100_000
SIGMA = 0.5
Q_MED = 10.0
Q_SIGMA = 0.5
P_MIN, P_MAX = 0.01, 1.0
DEV_DAYS = 2000
DAY0 = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """Truth (n, v, q_med, shape) and what the engine is told (forecast_n, forecast_v)."""

    k: int
    name: str
    n: float
    v: float
    forecast_n: float
    forecast_v: float
    q_med: float = 10.0  # true median request, credits (the forecast always says 10)
    shape: str = "default"  # true arrival shape (the forecast always says "default")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(0, "light", 90, 0.75, 90, 0.75),
    Scenario(1, "base", 200, 0.75, 200, 0.75),
    Scenario(2, "heavy", 450, 0.75, 450, 0.75),
    Scenario(3, "arrivals +30%", 260, 0.75, 200, 0.75),
    Scenario(4, "arrivals -30%", 140, 0.75, 200, 0.75),
    Scenario(5, "willingness -30%", 200, 0.525, 200, 0.75),
)

#: the stress set: demand that differs from the (base) forecast the engine is given;
#: scenario k draws from ``default_rng([k + offset, d])`` like the main set (k = 10..19)
STRESS: tuple[Scenario, ...] = (
    Scenario(10, "arrivals x2", 400, 0.75, 200, 0.75),
    Scenario(11, "arrivals x0.5", 100, 0.75, 200, 0.75),
    Scenario(12, "request size x10", 200, 0.75, 200, 0.75, q_med=100.0),
    Scenario(13, "request size x5", 200, 0.75, 200, 0.75, q_med=50.0),
    Scenario(14, "request size x0.1", 200, 0.75, 200, 0.75, q_med=1.0),
    Scenario(15, "willingness +50%", 200, 1.125, 200, 0.75),
    Scenario(16, "willingness -50%", 200, 0.375, 200, 0.75),
    Scenario(17, "shape: Asian peak", 200, 0.75, 200, 0.75, shape="asia"),
    Scenario(18, "shape: flat", 200, 0.75, 200, 0.75, shape="flat"),
    Scenario(19, "arrivals x2, size x5", 400, 0.75, 200, 0.75, q_med=50.0),
)
ALL_SCENARIOS: dict[int, Scenario] = {sc.k: sc for sc in SCENARIOS + STRESS}

#: published check numbers (dev days): mean hindsight per day and posted-price bound
CHECK_HINDSIGHT = (644.0, 975.0, 1276.0, 1076.0, 845.0, 685.0)
CHECK_BOUND = (310.5, 621.5, 917.0, 719.5, 479.8, 435.1)


def g(h: NDArray[np.float64] | float) -> NDArray[np.float64] | float:
    """Usefulness of h hours of credit."""
    return (1.0 - np.exp(-np.asarray(h) / 6.0)) / (1.0 - math.exp(-4.0))


def _bump(t: NDArray[np.float64], c: float, s: float) -> NDArray[np.float64]:
    return np.exp(-0.5 * ((t - c) / s) ** 2)


MINUTE_MID = (np.arange(1440) + 0.5) / 60.0
_RAW = (
    0.25
    + 0.5 * _bump(MINUTE_MID, 3, 2.5)
    + 1.0 * _bump(MINUTE_MID, 11, 3)
    + 1.4 * _bump(MINUTE_MID, 18.5, 3)
)
MINUTE_PMF = _RAW / _RAW.sum()
CDF = np.cumsum(MINUTE_PMF)

_SHAPES_RAW = {
    "default": _RAW,
    # most buyers in the (UTC) night and morning, few in the evening
    "asia": 0.25
    + 1.4 * _bump(MINUTE_MID, 2, 3)
    + 1.0 * _bump(MINUTE_MID, 8, 2.5)
    + 0.5 * _bump(MINUTE_MID, 15, 2.5),
    "flat": np.ones_like(MINUTE_MID),
}
#: minute pmf and cdf of each true arrival shape
SHAPES: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {
    name: (raw / raw.sum(), np.cumsum(raw / raw.sum())) for name, raw in _SHAPES_RAW.items()
}


@dataclass(frozen=True)
class Day:
    t: NDArray[np.float64]  # hours, ascending
    q: NDArray[np.float64]  # credits requested
    w: NDArray[np.float64]  # willingness per credit (fraction of list)


def generate_day(
    k: int, d: int, n_mean: float, v: float, *, q_med: float = Q_MED, shape: str = "default"
) -> Day:
    """Day ``d`` of scenario (seed family) ``k``: the draws in the defined order."""
    rng = np.random.default_rng([k, d])
    n = int(rng.poisson(n_mean))
    u = rng.random(n)
    minute = np.searchsorted(SHAPES[shape][1], u)
    j = rng.random(n)
    t = np.sort((minute + j) / 60.0)
    z = rng.standard_normal(n)
    q = q_med * np.exp(Q_SIGMA * z)
    z2 = rng.standard_normal(n)
    w = v * g(24.0 - t) * np.exp(SIGMA * z2)
    return Day(t=t, q=q, w=np.asarray(w, dtype=np.float64))


def hindsight(day: Day, capacity: float = CAPACITY) -> float:
    """Greedy fill by willingness, descending (the last buyer may be partly filled)."""
    order = np.argsort(-day.w, kind="stable")
    q = day.q[order]
    w = day.w[order]
    before = np.concatenate(([0.0], np.cumsum(q)[:-1]))
    alloc = np.clip(capacity - before, 0.0, q)
    return float(np.sum(w * alloc))


_Z = np.linspace(-12.0, 12.0, 240_001)
_SF = np.array([0.5 * math.erfc(z / math.sqrt(2.0)) for z in _Z.tolist()])


def normal_sf(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """P(Z >= z) for a standard normal (tabulated, step 1e-4, linear interpolation)."""
    return np.interp(z, _Z, _SF)


def posted_price_bound(
    n: float,
    v: float,
    capacity: float = CAPACITY,
    *,
    price_step: float = 0.0001,
    q_med: float = Q_MED,
    shape: str = "default",
) -> float:
    """min_μ μ·C + Σ_minutes λ·E[q]·max_p (p − μ)·P(w >= p), p on [0.01, 1]."""
    lam = n * SHAPES[shape][0] * q_med * math.exp(Q_SIGMA**2 / 2.0)
    m = v * np.asarray(g(24.0 - MINUTE_MID))
    prices = np.linspace(P_MIN, P_MAX, round((P_MAX - P_MIN) / price_step) + 1)
    surv = normal_sf(np.log(prices[None, :] / m[:, None]) / SIGMA)

    def dual(mu: float) -> float:
        best = ((prices[None, :] - mu) * surv).max(axis=1)
        return float(mu * capacity + np.sum(lam * np.maximum(best, 0.0)))

    lo, hi = 0.0, 1.0
    phi = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):
        a = hi - phi * (hi - lo)
        b = lo + phi * (hi - lo)
        if dual(a) <= dual(b):
            hi = b
        else:
            lo = a
    return min(dual(0.0), dual(0.5 * (lo + hi)))


# ----------------------------------------------------------------------------- policies


class Policy(Protocol):
    def start_day(self, day_start: datetime, capacity_cents: int, forecast: Forecast) -> None: ...
    def hourly(self, now: datetime) -> None: ...
    def tick(self, now: datetime, remaining_cents: int) -> None: ...
    def price(self, now: datetime, requested_cents: int, remaining_cents: int) -> Decimal: ...
    def observe(
        self, now: datetime, requested_cents: int, price_fraction: Decimal, accepted: bool
    ) -> None: ...


class EnginePolicy:
    """The shop's engine; ``hourly`` is the scheduled re-plan at the top of each hour."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.engine = PricingEngine(config)

    def start_day(self, day_start: datetime, capacity_cents: int, forecast: Forecast) -> None:
        self.engine.start_day(day_start, capacity_cents, forecast)

    def hourly(self, now: datetime) -> None:
        self.engine.replan(now)

    def tick(self, now: datetime, remaining_cents: int) -> None:
        self.engine.tick(now, remaining_cents)

    def price(self, now: datetime, requested_cents: int, remaining_cents: int) -> Decimal:
        return self.engine.price(now, requested_cents, remaining_cents)

    def observe(
        self, now: datetime, requested_cents: int, price_fraction: Decimal, accepted: bool
    ) -> None:
        self.engine.observe(now, requested_cents, price_fraction, accepted)


class LazyEnginePolicy(EnginePolicy):
    """The engine without the hourly job: the first quote of an hour re-plans (timed)."""

    def hourly(self, now: datetime) -> None:
        pass

    def tick(self, now: datetime, remaining_cents: int) -> None:
        pass


class HourlyEnginePolicy(EnginePolicy):
    """The engine with its hourly job only (no re-plan inside the hour)."""

    def tick(self, now: datetime, remaining_cents: int) -> None:
        pass


class ClockPolicy:
    """Baseline: a price that depends on the clock only (fixed 50 %, or a time decay)."""

    def __init__(self, fn: Callable[[float], float]) -> None:
        self.fn = fn
        self.day_start = DAY0

    def start_day(self, day_start: datetime, capacity_cents: int, forecast: Forecast) -> None:
        self.day_start = day_start

    def hourly(self, now: datetime) -> None:
        pass

    def tick(self, now: datetime, remaining_cents: int) -> None:
        pass

    def price(self, now: datetime, requested_cents: int, remaining_cents: int) -> Decimal:
        t = (now - self.day_start).total_seconds() / 3600.0
        return Decimal(f"{min(P_MAX, max(P_MIN, self.fn(t))):.6f}")

    def observe(
        self, now: datetime, requested_cents: int, price_fraction: Decimal, accepted: bool
    ) -> None:
        pass


def fixed_half(t: float) -> float:
    return 0.5


def clock_decay(t: float) -> float:
    """Discount 10 % at 00:00 rising linearly to 75 % at 23:00 UTC, then held."""
    return 1.0 - (0.10 + 0.65 * min(t, 23.0) / 23.0)


POLICIES: dict[str, Callable[[EngineConfig | None], Policy]] = {
    "engine": lambda cfg: EnginePolicy(cfg),
    "fixed50": lambda cfg: ClockPolicy(fixed_half),
    "clock-decay": lambda cfg: ClockPolicy(clock_decay),
    "engine-lazy": lambda cfg: LazyEnginePolicy(cfg),
    "engine-hourly": lambda cfg: HourlyEnginePolicy(cfg),
}

#: how often the simulated worker runs the engine's drift check (the shop's upkeep timer)
TICK_MINUTES = 5


# ---------------------------------------------------------------------------- simulator


@dataclass
class ScenarioResult:
    k: int
    days: int
    revenue: float = 0.0
    hindsight: float = 0.0
    quote_ns: list[int] = field(default_factory=list)
    replan_ns: list[int] = field(default_factory=list)
    tick_ns: list[int] = field(default_factory=list)
    #: with ``refit_days``: the forecast each day started from
    forecasts: list[Forecast] = field(default_factory=list)
    #: revenue summed up to and including each day
    cumulative: list[float] = field(default_factory=list)


def simulate_day(
    policy: Policy,
    day: Day,
    forecast: Forecast,
    res: ScenarioResult,
    log: list[QuoteRecord] | None = None,
    log_day: int = 0,
) -> float:
    """Run one day; returns revenue in credits ($ at list = 1). With ``log``, every quote
    given while credit was left is appended to it as the shop would log it, dated
    ``log_day`` days after the simulated day."""
    policy.start_day(DAY0, CAPACITY_CENTS, forecast)
    remaining = CAPACITY
    revenue = 0.0
    hour_done = -1
    tick_done = -1
    per_hour = 60 // TICK_MINUTES
    clock = time.thread_time_ns  # CPU time of this thread: the shared machine's load is not counted
    for t, q, w in zip(day.t.tolist(), day.q.tolist(), day.w.tolist(), strict=True):
        hour = int(t)
        if hour > hour_done:  # the hourly job, scheduled at the top of the hour
            c0 = clock()
            policy.hourly(DAY0 + timedelta(hours=hour))
            res.replan_ns.append(clock() - c0)
            hour_done = hour
            tick_done = hour * per_hour
        tick = int(t * per_hour)
        if tick > tick_done:  # the worker's drift check, on its timer (last boundary passed)
            c0 = clock()
            policy.tick(DAY0 + timedelta(minutes=tick * TICK_MINUTES), round(remaining * 100))
            res.tick_ns.append(clock() - c0)
            tick_done = tick
        now = DAY0 + timedelta(microseconds=round(t * 3_600_000_000))
        q_cents = max(1, round(q * 100))
        c0 = clock()
        p = policy.price(now, q_cents, round(remaining * 100))
        res.quote_ns.append(clock() - c0)
        pf = float(p)
        bought = remaining > 0 and pf <= w
        if log is not None and remaining > 0:  # a sold-out shop gives no quote
            at = now + timedelta(days=log_day)
            log.append(
                QuoteRecord(at=at, requested_cents=q_cents, price_fraction=p, accepted=bought)
            )
        if bought:
            fill = min(q, remaining)
            revenue += pf * fill
            remaining -= fill
        policy.observe(now, q_cents, p, bought)
    return revenue


def sold_out_at(log: list[QuoteRecord]) -> datetime | None:
    """When the day's accepted requests reached the capacity (the shop's ``sold_out_at``)."""
    sold = 0
    for r in log:
        if r.accepted:
            sold += r.requested_cents
            if sold >= CAPACITY_CENTS:
                return r.at
    return None


def bound_for(sc: Scenario) -> float:
    """The posted-price bound of a scenario under its true demand."""
    return posted_price_bound(sc.n, sc.v, q_med=sc.q_med, shape=sc.shape)


def forecast_for(sc: Scenario) -> Forecast:
    return Forecast(
        n=sc.forecast_n, v=sc.forecast_v, sigma=SIGMA, q_med_cents=Q_MED * 100, q_sigma=Q_SIGMA
    )


def run_scenario(
    k: int,
    days: range,
    *,
    policy: str = "engine",
    config: EngineConfig | None = None,
    seed_offset: int = 0,
    refit_days: int = 0,
    change: tuple[int, int] | None = None,
) -> ScenarioResult:
    """Simulate ``days`` of scenario ``k`` (seed family ``k + seed_offset``).

    ``refit_days`` 0: every day starts from the forecast the scenario hands the engine (the
    benchmark's protocol). Above 0, the days run in order as the shop runs them: each night
    the forecast is re-learned from the last ``refit_days`` days' quotes, starting from the
    handed one (what :func:`cheaptokens.worker.repricing.refit` does with the shop's
    database); the first day uses the handed forecast. ``change`` ``(day, k2)``: from that
    day on the buyers are scenario ``k2``'s (its truth, seed family ``k2 + seed_offset``) —
    a lasting change of demand that the history has to unlearn.
    """
    sc = ALL_SCENARIOS[k]
    pol = POLICIES[policy](config)
    configured = forecast_for(sc)
    res = ScenarioResult(k=k, days=len(days))
    history: deque[tuple[list[QuoteRecord], datetime | None]] = deque(maxlen=max(1, refit_days))
    for d in days:
        truth = ALL_SCENARIOS[change[1]] if change is not None and d >= change[0] else sc
        day = generate_day(
            truth.k + seed_offset, d, truth.n, truth.v, q_med=truth.q_med, shape=truth.shape
        )
        res.hindsight += hindsight(day)
        if refit_days <= 0:
            res.revenue += simulate_day(pol, day, configured, res)
            res.cumulative.append(res.revenue)
            continue
        fc = configured
        if history:
            records = [r for past, _ in history for r in past]
            ended = {at.date(): at for _, at in history if at is not None}
            fc = refit_forecast(
                records, configured, days=len(history), learn_shape=True, sold_out=ended
            )
        log: list[QuoteRecord] = []
        res.forecasts.append(fc)
        res.revenue += simulate_day(pol, day, fc, res, log, log_day=d)
        res.cumulative.append(res.revenue)
        history.append((log, sold_out_at(log)))
    return res
