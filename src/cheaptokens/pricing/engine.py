"""The pricing engine: re-plans every hour from the live state and learns during the day.

At 00:00 UTC and at the top of every hour the engine

1. corrects the forecast with what the day has shown so far — the number of quote requests
   against the forecast's expected count (arrival rate, Gamma-Poisson) and the accepted /
   declined quotes (willingness level, probit MAP) — see :mod:`cheaptokens.pricing.forecast`;
2. re-solves the fluid bid-price problem for the rest of the day from the unsold credit
   (:mod:`cheaptokens.pricing.fluid`);
3. publishes that hour's :class:`~cheaptokens.pricing.curve.PricingParams`: ``a`` and ``b``
   are the least-squares fit of the optimal price path by ``a + b·g(h)`` (weighted by expected
   sales), the plan is the expected unsold credit along the optimal path, ``β`` and the floor
   come from :class:`EngineConfig`.

Every price the engine gives is ``price_fraction(published params, now, remaining)``: the
published formula reproduces every quote. Floats are used only inside the optimisation.

Interface for a simulator or the shop (times are aware UTC datetimes, amounts integer cents)::

    engine = PricingEngine()
    engine.start_day(day_start, capacity_cents, forecast)
    engine.replan(now)                  # optional: the hourly job; price() does it lazily
    p = engine.price(now, requested_cents, remaining_cents)     # Decimal fraction of list
    engine.observe(now, requested_cents, p, accepted)
    engine.current_params(now)          # the PricingParams in force (publish its hash)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cheaptokens.pricing import fluid
from cheaptokens.pricing.curve import PricingParams, price_fraction
from cheaptokens.pricing.forecast import (
    Forecast,
    estimate_arrivals,
    estimate_willingness,
    g_float,
)
from cheaptokens.times import day_start


@dataclass(frozen=True)
class EngineConfig:
    """Operator knobs of the engine (tuned on seed families k+100, see bench/pricing)."""

    floor: Decimal = Decimal("0.01")
    beta: Decimal = Decimal("0.25")
    list_cents: int = 100
    #: days of evidence the forecast's arrival rate counts for
    arrival_prior_days: float = 0.3
    #: prior sd of ln v (how far the willingness level may be off)
    willingness_prior_sd: float = 0.3
    #: shade the fluid bid price (1 = the deterministic solution)
    bid_price_scale: float = 1.0


def _q6(x: float) -> Decimal:
    return Decimal(f"{x:.6f}")


class PricingEngine:
    """Hourly re-solved curve × scarcity with in-day learning (see module docstring)."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._day_start: datetime | None = None
        self._capacity = 0
        self._forecast = Forecast()
        self._params: PricingParams | None = None
        self._hour = -1
        self._count = 0
        self._obs: list[tuple[float, bool]] = []
        self._log_v = 0.0
        self._n_hat = 0.0
        self._remaining = 0
        self._plan: list[Decimal] = []

    # ------------------------------------------------------------------ lifecycle

    def start_day(self, day_start_at: datetime, capacity_cents: int, forecast: Forecast) -> None:
        """Begin a selling day at 00:00 UTC with ``capacity_cents`` unsold and a forecast."""
        if day_start(day_start_at) != day_start_at:
            raise ValueError("a selling day starts at 00:00 UTC")
        if capacity_cents <= 0:
            raise ValueError("capacity_cents must be positive")
        self._day_start = day_start_at
        self._capacity = capacity_cents
        self._forecast = forecast
        self._params = None
        self._hour = -1
        self._count = 0
        self._obs = []
        self._log_v = math.log(forecast.v)
        self._n_hat = forecast.n
        self._remaining = capacity_cents
        self._plan = [Decimal(1)] * 25

    @property
    def arrival_estimate(self) -> float:
        """Current estimate of the day's number of quote requests."""
        return self._n_hat

    @property
    def willingness_estimate(self) -> float:
        """Current estimate of the willingness level v (fraction of list for 24 h credit)."""
        return math.exp(self._log_v)

    def _hour_of(self, now: datetime) -> int:
        if self._day_start is None:
            raise RuntimeError("start_day() first")
        offset = now - self._day_start
        if offset < timedelta(0) or offset >= timedelta(days=1):
            raise ValueError("now is outside the current selling day")
        return int(offset.total_seconds() // 3600)

    # --------------------------------------------------------------------- replan

    def replan(self, now: datetime, remaining_cents: int | None = None) -> PricingParams:
        """Re-solve and publish the parameters of ``now``'s hour (the hourly job)."""
        hour = self._hour_of(now)
        assert self._day_start is not None
        if remaining_cents is not None:
            self._remaining = remaining_cents
        x = max(0, self._remaining)
        fc = self._forecast
        cfg = self.config

        exposure = fc.shape.cdf(float(hour))
        self._n_hat = estimate_arrivals(fc.n, self._count, exposure, cfg.arrival_prior_days)
        if self._obs:
            self._log_v = estimate_willingness(
                math.log(fc.v), cfg.willingness_prior_sd, fc.sigma, self._obs, start=self._log_v
            )
        v = math.exp(self._log_v)

        mass, gs = fluid.slot_grid(fc.shape)
        j0 = hour * fluid.SLOTS_PER_HOUR
        scale = self._n_hat * fc.mean_request_cents
        demand = [scale * mj for mj in mass[j0:]]
        g_rest = gs[j0:]
        m = [v * g for g in g_rest]
        sol = fluid.solve(
            demand=demand,
            m=m,
            remaining=float(x),
            floor=float(cfg.floor),
            sigma=fc.sigma,
            mu_scale=cfg.bid_price_scale,
        )
        a, b = self._fit(sol, g_rest)

        plan = self._plan
        left = float(x)
        cap = float(self._capacity)
        total = sum(sol.sales)
        # the plan never runs out before 00:00: expected sales beyond x are scaled down
        squeeze = left / total if total > left > 0 else 1.0
        plan[hour] = _q6(min(1.0, left / cap))
        for k in range(hour + 1, 25):
            lo = (k - 1 - hour) * fluid.SLOTS_PER_HOUR
            left -= squeeze * sum(sol.sales[lo : lo + fluid.SLOTS_PER_HOUR])
            plan[k] = _q6(min(1.0, max(0.0, left / cap)))
        start = self._day_start + timedelta(hours=hour)
        self._params = PricingParams(
            a=_q6(a),
            b=_q6(b),
            beta=cfg.beta,
            floor=cfg.floor,
            plan=tuple(plan),
            capacity_cents=self._capacity,
            valid_from=start,
            valid_until=start + timedelta(hours=1),
            list_cents=cfg.list_cents,
        )
        self._hour = hour
        return self._params

    @staticmethod
    def _fit(sol: fluid.FluidSolution, g: tuple[float, ...]) -> tuple[float, float]:
        """Weighted least squares of the optimal prices on g(h) (weights: expected sales)."""
        w = [s + 1e-9 for s in sol.sales]
        sw = sum(w)
        mg = sum(wi * gi for wi, gi in zip(w, g, strict=True)) / sw
        mp = sum(wi * pi for wi, pi in zip(w, sol.prices, strict=True)) / sw
        sgg = sum(wi * (gi - mg) ** 2 for wi, gi in zip(w, g, strict=True))
        sgp = sum(wi * (gi - mg) * (pi - mp) for wi, gi, pi in zip(w, g, sol.prices, strict=True))
        b = sgp / sgg if sgg > 1e-12 else 0.0
        return mp - b * mg, b

    # --------------------------------------------------------------------- quotes

    def current_params(self, now: datetime) -> PricingParams:
        """The parameter set in force at ``now`` (re-planning first if the hour changed)."""
        hour = self._hour_of(now)
        if self._params is None or hour != self._hour:
            return self.replan(now)
        return self._params

    def price(self, now: datetime, requested_cents: int, remaining_cents: int) -> Decimal:
        """Fraction of list for a request at ``now``: the published formula, nothing else."""
        self._remaining = remaining_cents
        params = self.current_params(now)
        return price_fraction(params, now=now, remaining_cents=remaining_cents)

    def observe(
        self, now: datetime, requested_cents: int, price_fraction: Decimal, accepted: bool
    ) -> None:
        """Record a buyer's decision on a quote (one call per quote request)."""
        self._hour_of(now)  # validates now
        assert self._day_start is not None
        self._count += 1
        if self._remaining <= 0:
            return
        h = 24.0 - (now - self._day_start).total_seconds() / 3600.0
        p = float(price_fraction)
        if p > 0:
            self._obs.append((math.log(p) - math.log(g_float(h)), accepted))
        if accepted:
            self._remaining -= min(requested_cents, self._remaining)
