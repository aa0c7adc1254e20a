"""The pricing engine: re-plans every hour (and within the hour on drift), learning all day.

At 00:00 UTC, at the top of every hour, and within the hour when sales drift far from plan,
the engine

1. corrects the forecast with what the day has shown so far — the number of quote requests
   against the forecast's expected count (arrival rate, Gamma-Poisson), the credit each
   request asked for (request size, a normal posterior on its log-mean) and the accepted /
   declined quotes (willingness level: the posterior mixture of a narrow prior at the
   forecast and a wide one, each by probit MAP), and when (and, weakly, how many) the
   requests came (a posterior over candidate daily shapes: the forecast's, shifted ones,
   flat, tilted ones) — see
   :mod:`cheaptokens.pricing.forecast`; the expected credit demanded is arrivals × mean
   request size, spread over the rest of the day by the posterior mixture of shapes;
2. re-solves the fluid bid-price problem for the rest of the day from the unsold credit
   (:mod:`cheaptokens.pricing.fluid`);
3. publishes a :class:`~cheaptokens.pricing.curve.PricingParams` valid from then to the next
   top of the hour: ``a`` and ``b`` are the least-squares fit of the optimal price path by
   ``a + b·g(h)`` (weighted by expected sales), the plan is the expected unsold credit along
   the optimal path (anchored so the scarcity factor is 1 at the moment of the re-plan),
   ``β`` and the floor come from :class:`EngineConfig`.

A re-plan inside the hour (:meth:`PricingEngine.tick`, the worker's job, never the quote
path) happens only when at least ``replan_every_minutes`` have passed since the last one and
either the unsold credit or the estimated credit demand has moved more than ``replan_drift``
(in log terms) from what the set in force planned (:func:`plan_drift`), or the willingness
estimate more than ``replan_willingness_drift``. Each re-plan is a new
published parameter set with its own hash; one set is in force at a time.

Every price the engine gives is ``price_fraction(published params, now, remaining)``: the
published formula reproduces every quote. Floats are used only inside the optimisation.

Interface for a simulator or the shop (times are aware UTC datetimes, amounts integer cents)::

    engine = PricingEngine()
    engine.start_day(day_start, capacity_cents, forecast)
    engine.replan(now)                  # optional: the hourly job; price() does it lazily
    engine.tick(now, remaining_cents)   # the frequent job: re-plans on drift (or None)
    p = engine.price(now, requested_cents, remaining_cents)     # Decimal fraction of list
    engine.observe(now, requested_cents, p, accepted)           # accepted None: not settled
    engine.current_params(now)          # the PricingParams in force (publish its hash)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from cheaptokens.pricing import fluid
from cheaptokens.pricing.curve import PricingParams, planned_remaining_cents, price_fraction
from cheaptokens.pricing.forecast import (
    WILLINGNESS_RIGHT_SD,
    WILLINGNESS_WIDE_SD,
    Forecast,
    estimate_arrivals,
    estimate_log_size,
    estimate_willingness,
    g_float,
    shape_posterior,
    willingness_log_evidence,
)
from cheaptokens.pricing.shape import shape_family
from cheaptokens.times import day_start


@dataclass(frozen=True)
class EngineConfig:
    """Operator knobs of the engine (tuned on seed families k+100, see bench/pricing)."""

    floor: Decimal = Decimal("0.01")
    beta: Decimal = Decimal("0.25")
    list_cents: int = 100
    #: days of evidence the forecast's arrival rate counts for (a learned forecast's own
    #: ``arrival_prior_days``, measured by the nightly refit, takes its place; so do its
    #: ``size_prior_count`` and ``shape_prior`` for the settings below)
    arrival_prior_days: float = 0.15
    #: prior sd of ln v (how far the willingness level may be off)
    willingness_prior_sd: float = WILLINGNESS_WIDE_SD
    #: prior probability that the forecast's willingness level is right (within
    #: ``willingness_right_sd`` in ln v); the rest has ``willingness_prior_sd``. The
    #: estimate is the posterior mixture of the two (0: one prior, the wide one). A learned
    #: forecast's ``v_right`` (how often it was right, measured by the nightly refit) takes
    #: its place, and its ``v_right_sd`` that of ``willingness_right_sd``
    willingness_prior_right: float = 0.3
    willingness_right_sd: float = WILLINGNESS_RIGHT_SD
    #: re-plan inside the hour when the willingness estimate has moved more than this (in
    #: ln v) since the plan in force (0: only sales and the demand estimate trigger it)
    replan_willingness_drift: float = 0.1
    #: shade the fluid bid price (1 = the deterministic solution)
    bid_price_scale: float = 1.0
    #: requests' worth of evidence the forecast's median request size counts for
    size_prior_count: float = 4.0
    #: at least this long between two re-plans inside an hour
    replan_every_minutes: float = 10.0
    #: re-plan inside the hour when |ln(planned unsold / unsold)| or |ln(demand estimate /
    #: demand planned for)| exceeds this
    replan_drift: float = 0.15
    #: prior probability that the forecast's daily shape is right; the rest is shared by
    #: the shape shifted by whole hours, a flat day and the shape tilted towards the
    #: morning or the evening, weighed by when requests come (1:
    #: the forecast's shape is taken as known)
    shape_prior: float = 0.8
    #: days of arrival-rate prior with which the number of requests so far also judges the
    #: shape (``count_weight`` of :func:`~cheaptokens.pricing.forecast.shape_posterior`;
    #: 0: only when they came)
    shape_count_weight: float = 0.03


def day_config(config: EngineConfig, forecast: Forecast) -> EngineConfig:
    """``config`` with what the nightly refit measured (the forecast's ``v_right``,
    ``v_right_sd``, ``arrival_prior_days``, ``size_prior_count``, ``shape_prior``) in place of
    the settings they stand for; an operator's forecast has none and changes nothing."""

    def measured(value: float | None, setting: float) -> float:
        return setting if value is None else value

    return replace(
        config,
        willingness_prior_right=measured(forecast.v_right, config.willingness_prior_right),
        willingness_right_sd=measured(forecast.v_right_sd, config.willingness_right_sd),
        arrival_prior_days=measured(forecast.arrival_prior_days, config.arrival_prior_days),
        size_prior_count=measured(forecast.size_prior_count, config.size_prior_count),
        shape_prior=measured(forecast.shape_prior, config.shape_prior),
    )


def _q6(x: float) -> Decimal:
    return Decimal(f"{x:.6f}")


def plan_drift(params: PricingParams, *, now: datetime, remaining_cents: int) -> float:
    """``|ln(X̂(now) / x)|``: how far the unsold credit is from the plan in force."""
    planned = float(planned_remaining_cents(params, now=now))
    x = max(1, remaining_cents)
    if planned <= 0:
        return math.inf if remaining_cents > 0 else 0.0
    return abs(math.log(planned / x))


class PricingEngine:
    """Re-solved curve × scarcity with in-day learning (see module docstring)."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        #: the config with the day's forecast's measures in place (:func:`day_config`)
        self._day = self.config
        self._day_start: datetime | None = None
        self._capacity = 0
        self._forecast = Forecast()
        self._params: PricingParams | None = None
        self._hour = -1
        self._planned_at: datetime | None = None
        self._plan_volume = 0.0
        self._plan_obs = 0
        self._times: list[float] = []
        self._log_cum: list[float] = [0.0]  # prefix sums of ln(requested cents)
        self._obs: list[tuple[float, bool]] = []
        self._log_v = 0.0
        self._log_v_wide = 0.0
        #: (answers seen, _willingness() of them): a drift check's estimate, reused by the
        #: re-plan it triggers
        self._v_memo: tuple[int, tuple[float, float]] | None = None
        self._n_hat = 0.0
        self._q_hat = 0.0
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
        self._day = day_config(self.config, forecast)
        self._params = None
        self._hour = -1
        self._planned_at = None
        self._plan_volume = 0.0
        self._plan_obs = 0
        self._times = []
        self._log_cum = [0.0]
        self._obs = []
        self._log_v = math.log(forecast.v)
        self._log_v_wide = self._log_v
        self._v_memo = None
        self._n_hat = forecast.n
        self._q_hat = forecast.mean_request_cents
        self._remaining = capacity_cents
        self._plan = [Decimal(1)] * 25

    @property
    def arrival_estimate(self) -> float:
        """Current estimate of the day's number of quote requests."""
        return self._n_hat

    @property
    def request_size_estimate(self) -> float:
        """Current estimate of the mean credit a request asks for (cents)."""
        return self._q_hat

    @property
    def volume_estimate(self) -> float:
        """Current estimate of the day's credit demanded (cents): arrivals × mean size."""
        return self._n_hat * self._q_hat

    @property
    def willingness_estimate(self) -> float:
        """Current estimate of the willingness level v (fraction of list for 24 h credit)."""
        return math.exp(self._log_v)

    def _offset_hours(self, now: datetime) -> float:
        if self._day_start is None:
            raise RuntimeError("start_day() first")
        offset = now - self._day_start
        if offset < timedelta(0) or offset >= timedelta(days=1):
            raise ValueError("now is outside the current selling day")
        return offset.total_seconds() / 3600.0

    def _hour_of(self, now: datetime) -> int:
        return min(23, int(self._offset_hours(now)))

    def demand_estimate(self, now: datetime) -> tuple[float, float]:
        """(arrivals, mean request size in cents) learned from the requests before ``now``."""
        t = self._offset_hours(now)
        n_hat, _ = self._arrivals(t)
        return n_hat, self._size_estimate(bisect.bisect_left(self._times, t))

    def _size_estimate(self, seen: int) -> float:
        fc = self._forecast
        weight = self._day.size_prior_count
        mu = estimate_log_size(math.log(fc.q_med_cents), weight, seen, self._log_cum[seen])
        return math.exp(mu + fc.q_sigma**2 / 2.0)

    def _arrivals(self, t: float) -> tuple[float, list[float]]:
        """The day's arrivals expected (posterior mean) and, per quarter-hour slot from the
        one holding ``t`` (counted from ``t``) to 00:00, the arrivals still expected there.

        With ``shape_prior`` 1 the forecast's shape is taken as known; below 1 the expected
        arrivals are the posterior mixture over the candidate shapes
        (:func:`~cheaptokens.pricing.forecast.shape_posterior`).
        """
        fc, cfg = self._forecast, self._day
        per = fluid.SLOTS_PER_HOUR
        j0 = min(fluid.SLOTS - 1, int(t * per))
        seen = bisect.bisect_left(self._times, t)
        if cfg.shape_prior >= 1.0:
            n_hat = estimate_arrivals(fc.n, seen, fc.shape.cdf(t), cfg.arrival_prior_days)
            mass, _ = fluid.slot_grid(fc.shape)
            first = max(0.0, fc.shape.cdf((j0 + 1) / per) - fc.shape.cdf(t))
            return n_hat, [n_hat * first] + [n_hat * mj for mj in mass[j0 + 1 :]]
        family = shape_family(fc.shape, cfg.shape_prior, per)
        counts: list[int] = []
        before = 0
        for j in range(j0):
            upto = bisect.bisect_left(self._times, (j + 1) / per, 0, seen)
            counts.append(upto - before)
            before = upto
        counts.append(seen - before)
        frac = t * per - j0
        n_mix = 0.0
        left = [0.0] * (fluid.SLOTS - j0)
        # judged mainly by when the requests came; how many came counts only with a weak
        # prior (shape_count_weight), so that twice the forecast's requests do not read as
        # an early day
        posterior = shape_posterior(
            family,
            counts,
            t,
            fc.n,
            cfg.arrival_prior_days,
            count_weight=cfg.shape_count_weight,
        )
        for cand in posterior:
            scale = cand.weight * cand.n_hat
            n_mix += scale
            mass = family.mass[cand.index]
            left[0] += scale * (1.0 - frac) * mass[j0]
            for k in range(1, len(left)):
                left[k] += scale * mass[j0 + k]
        return n_mix, left

    # --------------------------------------------------------------------- replan

    def should_replan(self, now: datetime, remaining_cents: int) -> bool:
        """Is a re-plan due at ``now``: a new hour, or drift beyond the threshold?"""
        hour = self._hour_of(now)
        if self._params is None or hour != self._hour or self._planned_at is None:
            return True
        cfg = self.config
        if now - self._planned_at < timedelta(minutes=cfg.replan_every_minutes):
            return False
        if plan_drift(self._params, now=now, remaining_cents=remaining_cents) > cfg.replan_drift:
            return True
        n_hat, q_hat = self.demand_estimate(now)
        volume = n_hat * q_hat
        if abs(math.log(max(volume, 1e-9) / max(self._plan_volume, 1e-9))) > cfg.replan_drift:
            return True
        if cfg.replan_willingness_drift > 0 and len(self._obs) > self._plan_obs:
            log_v, _ = self._willingness()
            return abs(log_v - self._log_v) > cfg.replan_willingness_drift
        return False

    def tick(self, now: datetime, remaining_cents: int) -> PricingParams | None:
        """The frequent job: re-plan if :meth:`should_replan`; the new set, or None."""
        if not self.should_replan(now, remaining_cents):
            return None
        return self.replan(now, remaining_cents=remaining_cents)

    def replan(self, now: datetime, remaining_cents: int | None = None) -> PricingParams:
        """Re-solve and publish parameters valid from ``now`` to the next top of the hour."""
        t = self._offset_hours(now)
        hour = self._hour_of(now)
        assert self._day_start is not None
        if remaining_cents is not None:
            self._remaining = remaining_cents
        x = max(0, self._remaining)
        fc = self._forecast
        cfg = self.config

        self._n_hat, arrivals_left = self._arrivals(t)
        self._q_hat = self._size_estimate(bisect.bisect_left(self._times, t))
        if self._obs:
            self._log_v, self._log_v_wide = self._willingness()
        v = math.exp(self._log_v)

        _, gs = fluid.slot_grid(fc.shape)
        per = fluid.SLOTS_PER_HOUR
        j0 = min(fluid.SLOTS - 1, int(t * per))
        scale = self._n_hat * self._q_hat
        demand = [self._q_hat * a for a in arrivals_left]
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
        for k in range(hour + 1, 25):
            lo = max(0, (k - 1) * per - j0)
            hi = k * per - j0
            left -= squeeze * sum(sol.sales[lo:hi])
            plan[k] = _q6(min(1.0, max(0.0, left / cap)))
        # anchor: the plan interpolated at now is the unsold credit (scarcity factor 1)
        frac = t - hour
        now_share = min(1.0, float(x) / cap)
        if frac <= 0:
            plan[hour] = _q6(now_share)
        else:
            nxt = float(plan[hour + 1])
            plan[hour] = _q6(min(1.0, max(0.0, (now_share - frac * nxt) / (1.0 - frac))))
        start = self._day_start + timedelta(hours=hour)
        self._params = PricingParams(
            a=_q6(a),
            b=_q6(b),
            beta=cfg.beta,
            floor=cfg.floor,
            plan=tuple(plan),
            capacity_cents=self._capacity,
            valid_from=now if frac > 0 else start,
            valid_until=start + timedelta(hours=1),
            list_cents=cfg.list_cents,
        )
        self._hour = hour
        self._planned_at = now
        self._plan_volume = scale
        self._plan_obs = len(self._obs)
        return self._params

    def _willingness(self) -> tuple[float, float]:
        """Posterior mean of ln v, and the wide prior's MAP (the next Newton start).

        The wide prior's MAP alone, or with ``willingness_prior_right`` the mixture of the
        narrow and wide priors' MAPs weighed by their (Laplace) evidence. Answers only
        accumulate, so their number says whether the last result still holds.
        """
        if self._v_memo is not None and self._v_memo[0] == len(self._obs):
            return self._v_memo[1]
        fc, cfg = self._forecast, self._day
        mu0 = math.log(fc.v)
        wide = estimate_willingness(
            mu0, cfg.willingness_prior_sd, fc.sigma, self._obs, start=self._log_v_wide
        )
        right = cfg.willingness_prior_right
        result = (wide, wide)
        if right > 0.0:
            result = (self._mixture(right, mu0, wide), wide)
        self._v_memo = (len(self._obs), result)
        return result

    def _mixture(self, right: float, mu0: float, wide: float) -> float:
        """The posterior mean of ln v under the narrow-or-wide prior mixture."""
        fc, cfg = self._forecast, self._day
        sd = cfg.willingness_right_sd
        narrow = estimate_willingness(mu0, sd, fc.sigma, self._obs, start=mu0)
        log_odds = (
            math.log(right / (1.0 - right))
            + willingness_log_evidence(mu0, sd, fc.sigma, self._obs, narrow)
            - willingness_log_evidence(mu0, cfg.willingness_prior_sd, fc.sigma, self._obs, wide)
        )
        p_right = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, log_odds))))
        return p_right * narrow + (1.0 - p_right) * wide

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
            assert self._day_start is not None
            return self.replan(self._day_start + timedelta(hours=hour))
        return self._params

    def price(self, now: datetime, requested_cents: int, remaining_cents: int) -> Decimal:
        """Fraction of list for a request at ``now``: the published formula, nothing else."""
        self._remaining = remaining_cents
        params = self.current_params(now)
        return price_fraction(params, now=now, remaining_cents=remaining_cents)

    def observe(
        self,
        now: datetime,
        requested_cents: int,
        price_fraction: Decimal,
        accepted: bool | None,
    ) -> None:
        """Record a quote request and, once known, the buyer's decision.

        Every request counts as an arrival and its size (``requested_cents``) feeds the
        request-size estimate; ``accepted`` True/False also feeds the willingness estimate
        (None: the outcome is not known yet). Calls come in time order.
        """
        t = self._offset_hours(now)
        assert self._day_start is not None
        if self._times and t < self._times[-1]:
            raise ValueError("observations must come in time order")
        self._times.append(t)
        self._log_cum.append(self._log_cum[-1] + math.log(max(1, requested_cents)))
        if accepted is None or self._remaining <= 0:
            return
        p = float(price_fraction)
        if p > 0:
            self._obs.append((math.log(p) - math.log(g_float(24.0 - t)), accepted))
        if accepted:
            self._remaining -= min(requested_cents, self._remaining)
