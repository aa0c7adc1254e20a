"""Demand forecast and the estimators that correct it from what buyers did.

Demand model (per UTC day):

* ``n`` quote requests per day (Poisson), spread over the day by ``shape``
  (:class:`~cheaptokens.pricing.shape.ArrivalShape`);
* request size in cents is lognormal: median ``q_med_cents``, log-sd ``q_sigma``;
* willingness to pay per $1 of credit, as a fraction of list, is lognormal with median
  ``v · g(h)`` (``h`` hours left until 00:00 UTC) and log-sd ``sigma``: credit that expires
  sooner is worth less.

Learning (pure functions, floats — estimates, not money):

* :func:`estimate_arrivals`: Gamma-Poisson posterior mean of ``n`` after seeing ``count``
  requests while ``exposure`` (the share of the day's expected arrivals) has elapsed;
* :func:`shape_posterior`: the same for a family of candidate daily shapes (the forecast's
  and shifted, flat and tilted ones), each weighted by how well it explains *when* the
  requests came;
* :func:`estimate_log_size`: normal posterior of the log-mean request size from the credit
  each request asked for (so the day's credit demanded is arrivals × mean size);
* :func:`estimate_willingness`: MAP of ``ln v`` under a normal prior from accept/decline
  outcomes (a probit likelihood: a buyer accepts iff ``w >= price``);
* :func:`refit_forecast`: the nightly job — refit ``n``, ``v``, ``q_med``, ``q_sigma`` from a
  quote log, shrunk towards the previous forecast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from cheaptokens.pricing.shape import DEFAULT_SHAPE, ArrivalShape, ShapeFamily, shape_family

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_G_NORM = 1.0 - math.exp(-4.0)


def g_float(h: float) -> float:
    """``g(h)`` in floats (for the optimiser; the published price uses the Decimal one)."""
    return (1.0 - math.exp(-h / 6.0)) / _G_NORM


@dataclass(frozen=True)
class Forecast:
    """What the operator expects of a day (see the module docstring for the model)."""

    n: float = 200.0
    v: float = 0.75
    sigma: float = 0.5
    q_med_cents: float = 1000.0
    q_sigma: float = 0.5
    shape: ArrivalShape = field(default=DEFAULT_SHAPE)
    #: how often a day's willingness level is this forecast's (within the engine's narrow
    #: prior), as the nightly refit measured it over past days; None: not measured (an
    #: operator's forecast), the engine's ``willingness_prior_right`` applies
    v_right: float | None = None
    #: the sd of ln v within which such a day's level keeps to ``v`` (the engine's
    #: ``willingness_right_sd``), measured with ``v_right``; None: the engine's applies
    v_right_sd: float | None = None
    #: how many days of evidence ``n`` counts for in a new day, and how many requests'
    #: worth ``q_med_cents`` does — as steady as past days were, measured by the nightly
    #: refit (:func:`arrival_weight`, :func:`size_weight`); None: the engine's
    #: ``arrival_prior_days`` / ``size_prior_count`` apply
    arrival_prior_days: float | None = None
    size_prior_count: float | None = None
    #: how often a day's requests came as ``shape`` rather than shifted, flat or tilted,
    #: measured by the nightly refit (:func:`shape_right_share`); None: the engine's
    #: ``shape_prior`` applies
    shape_prior: float | None = None

    def __post_init__(self) -> None:
        if self.n < 0 or self.v <= 0 or self.sigma <= 0 or self.q_med_cents <= 0:
            raise ValueError("forecast needs n >= 0 and positive v, sigma, q_med_cents")
        if self.q_sigma < 0:
            raise ValueError("q_sigma must be >= 0")
        for name in ("v_right", "shape_prior"):
            share = getattr(self, name)
            if share is not None and not 0.0 < share < 1.0:
                raise ValueError(f"{name} must be in (0, 1)")
        for name in ("arrival_prior_days", "size_prior_count", "v_right_sd"):
            weight = getattr(self, name)
            if weight is not None and not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"{name} must be positive")

    @property
    def mean_request_cents(self) -> float:
        """E[q] = q_med · e^(q_σ²/2)."""
        return self.q_med_cents * math.exp(self.q_sigma**2 / 2.0)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what the shop stores with each learned version)."""
        return {
            "n": self.n,
            "v": self.v,
            "sigma": self.sigma,
            "q_med_cents": self.q_med_cents,
            "q_sigma": self.q_sigma,
            "shape": self.shape.to_dict(),
            "v_right": self.v_right,
            "v_right_sd": self.v_right_sd,
            "arrival_prior_days": self.arrival_prior_days,
            "size_prior_count": self.size_prior_count,
            "shape_prior": self.shape_prior,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Forecast:
        shape = raw.get("shape")
        return cls(
            n=float(raw["n"]),  # type: ignore[arg-type]
            v=float(raw["v"]),  # type: ignore[arg-type]
            sigma=float(raw["sigma"]),  # type: ignore[arg-type]
            q_med_cents=float(raw["q_med_cents"]),  # type: ignore[arg-type]
            q_sigma=float(raw["q_sigma"]),  # type: ignore[arg-type]
            shape=ArrivalShape.from_dict(shape) if isinstance(shape, dict) else DEFAULT_SHAPE,
            v_right=_optional(raw, "v_right"),
            v_right_sd=_optional(raw, "v_right_sd"),
            arrival_prior_days=_optional(raw, "arrival_prior_days"),
            size_prior_count=_optional(raw, "size_prior_count"),
            shape_prior=_optional(raw, "shape_prior"),
        )


def _optional(raw: dict[str, object], name: str) -> float | None:
    value = raw.get(name)
    return None if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class QuoteRecord:
    """One quote and its outcome, as the shop logs it (input of :func:`refit_forecast`)."""

    at: datetime
    requested_cents: int
    price_fraction: Decimal
    #: None: the outcome is not known yet (the quote is still open)
    accepted: bool | None


def estimate_arrivals(prior_n: float, count: int, exposure: float, weight: float) -> float:
    """Posterior mean of the daily arrival rate.

    Prior Gamma(shape = prior_n·weight, rate = weight): ``weight`` is how many days' worth of
    evidence the forecast counts for. ``exposure`` in [0, 1] is the expected share of the
    day's requests that should have arrived by now.
    """
    return (prior_n * weight + count) / (weight + max(0.0, exposure))


@dataclass(frozen=True, slots=True)
class ShapeCandidate:
    """One daily shape of a :class:`~cheaptokens.pricing.shape.ShapeFamily` as the day's
    requests weigh it: posterior probability and posterior mean of the day's arrivals under
    it."""

    index: int
    weight: float
    n_hat: float


def shape_posterior(
    family: ShapeFamily,
    slot_counts: Sequence[int],
    t: float,
    prior_n: float,
    weight: float,
    *,
    count_weight: float = 0.0,
    min_weight: float = 1e-4,
) -> list[ShapeCandidate]:
    """Posterior over the candidate shapes after the requests before hour ``t``.

    ``slot_counts[j]`` is the number of requests in slot ``j`` (``j`` up to the slot holding
    ``t``, counted up to ``t``). Arrivals are a Poisson process with rate ``n × shape``; given
    their number, the requests before ``t`` fall in the slots as a multinomial with
    probabilities ``mass_i[j] / F_i(t)`` (``F_i(t)``: candidate ``i``'s share of the day
    before ``t``), so candidate ``i``'s likelihood is ``Π_j (mass_i[j] / F_i(t))^c_j``: a
    shape is favoured when the requests came when it expects them. With ``count_weight``
    > 0 how *many* came counts too: ``n`` gets a Gamma prior worth ``count_weight`` days
    (as in :func:`estimate_arrivals`), integrated out, which makes the likelihood
    ``Π_j mass_i[j]^c_j / (count_weight + F_i(t))^(prior_n·count_weight + count)`` — then
    more requests than forecast so far also argue for an earlier shape (and a busy day with
    the forecast's shape can read as an early one); 0 leaves the count to the arrival rate.
    Candidates below ``min_weight`` are dropped, the rest renormalised; ``n_hat`` is
    :func:`estimate_arrivals` (prior ``weight``) with that candidate's exposure.
    """
    per = family.slots_per_hour
    slots = len(family.mass[0])
    pos = min(max(t, 0.0) * per, float(slots))
    j0 = min(slots - 1, int(pos))
    frac = pos - j0
    count = sum(slot_counts[: j0 + 1])
    seen = [(j, c) for j, c in enumerate(slot_counts[: j0 + 1]) if c]
    logs: list[float] = []
    exposures: list[float] = []
    for i, log_mass in enumerate(family.log_mass):
        exposure = family.cum[i][j0] + frac * family.mass[i][j0]
        ll = family.log_prior[i] + sum(c * log_mass[j] for j, c in seen)
        ll -= (prior_n * count_weight + count) * math.log(max(count_weight + exposure, 1e-12))
        logs.append(ll)
        exposures.append(exposure)
    top = max(logs)
    raw = [math.exp(x - top) for x in logs]
    total = sum(raw)
    kept = [(i, r / total) for i, r in enumerate(raw) if r / total >= min_weight]
    norm = sum(w for _, w in kept)
    return [
        ShapeCandidate(
            index=i,
            weight=w / norm,
            n_hat=estimate_arrivals(prior_n, count, exposures[i], weight),
        )
        for i, w in kept
    ]


def estimate_log_size(prior_mu: float, weight: float, count: int, log_sum: float) -> float:
    """Posterior mean of the log-mean of request sizes (their log-sd taken as known).

    Normal prior at ``prior_mu`` worth ``weight`` requests; ``count`` requests seen whose
    ``ln(cents)`` add up to ``log_sum``.
    """
    return (prior_mu * weight + log_sum) / (weight + count)


def _phi(u: float) -> float:
    return _INV_SQRT2PI * math.exp(-0.5 * u * u)


def _mills(u: float) -> float:
    """φ(u)/Φ(u), stable for very negative u."""
    if u < -30.0:
        return -u
    cdf = 0.5 * math.erfc(-u / _SQRT2)
    if cdf <= 1e-300:
        return -u
    return _phi(u) / cdf


def _probit_terms(u: float, accepted: bool) -> tuple[float, float]:
    """d/du and −d²/du² of ln P(answer) for one answer, ``P(accept) = Φ(u)``."""
    if accepted:
        lam = _mills(u)
        return lam, lam * (u + lam)
    lam = _mills(-u)
    return -lam, lam * (lam - u)


def estimate_willingness(
    prior_log_v: float,
    prior_sd: float,
    sigma: float,
    obs: Sequence[tuple[float, bool]],
    *,
    start: float | None = None,
    iterations: int = 4,
) -> float:
    """MAP of ``ln v`` from ``obs`` = (ln price − ln g(h), accepted) pairs.

    Accept iff ``ln v + σ·z >= y`` so ``P(accept) = Φ((ln v − y)/σ)``. Newton's method on the
    (concave) log posterior, starting from ``start`` (the previous estimate) or the prior.
    """
    theta = prior_log_v if start is None else start
    inv_tau2 = 1.0 / (prior_sd * prior_sd)
    inv_s = 1.0 / sigma
    inv_s2 = inv_s * inv_s
    for _ in range(iterations):
        grad = (prior_log_v - theta) * inv_tau2
        hess = inv_tau2
        for y, accepted in obs:
            slope, curve = _probit_terms((theta - y) * inv_s, accepted)
            grad += slope * inv_s
            hess += curve * inv_s2
        step = grad / hess
        step = max(-1.0, min(1.0, step))
        theta += step
        if abs(step) < 1e-6:
            break
    return theta


def _log_cdf(u: float) -> float:
    """ln Φ(u), finite for very negative u."""
    cdf = 0.5 * math.erfc(-u / _SQRT2)
    if cdf > 1e-300:
        return math.log(cdf)
    return -0.5 * u * u - math.log(-u) - 0.5 * math.log(2 * math.pi)


def willingness_log_evidence(
    prior_log_v: float,
    prior_sd: float,
    sigma: float,
    obs: Sequence[tuple[float, bool]],
    theta: float,
) -> float:
    """Laplace approximation of ``ln p(obs)`` under the prior ``N(prior_log_v, prior_sd²)``
    on ``ln v``, at that prior's MAP ``theta`` (up to a constant shared by every prior).

    Two priors' evidences compared say which one the outcomes favour (the willingness
    mixture of :class:`~cheaptokens.pricing.engine.PricingEngine`).
    """
    inv_s = 1.0 / sigma
    z = (theta - prior_log_v) / prior_sd
    log_lik = 0.0
    hess = 1.0 / (prior_sd * prior_sd)
    for y, accepted in obs:
        u = (theta - y) * inv_s
        log_lik += _log_cdf(u if accepted else -u)
        hess += _probit_terms(u, accepted)[1] * inv_s * inv_s
    return log_lik - math.log(prior_sd) - 0.5 * z * z - 0.5 * math.log(hess)


#: Dirichlet concentration of the alternative the nightly refit weighs against the forecast's
#: daily shape: two pseudo-requests per UTC hour around its hourly shares (a broad one)
SHAPE_CONCENTRATION = 48.0
#: the nightly refit measures how often a day's willingness is the forecast's from this many
#: days with answers; the share it finds is kept within these bounds
V_RIGHT_MIN_DAYS = 3
V_RIGHT_BOUNDS = (0.05, 0.99)
#: sd of ln v of the willingness mixture's two priors — "the forecast's level is right" and
#: "it may be off" — shared by the engine (its ``EngineConfig`` defaults) and the refit
WILLINGNESS_RIGHT_SD = 0.05
WILLINGNESS_WIDE_SD = 0.3
#: the narrow sds among which the nightly refit picks how closely steady days keep to the
#: learned level (``Forecast.v_right_sd``)
V_RIGHT_SDS = (0.02, 0.03, 0.05, 0.08)


def _hour_of_day(at: datetime) -> float:
    return at.hour + at.minute / 60.0 + at.second / 3600.0


def learned_shape(counts: Sequence[float], prior: ArrivalShape) -> ArrivalShape:
    """The daily shape that requests per UTC hour (``counts``, 24) support: ``prior`` when
    its hourly shares explain them better than a histogram does, else the histogram.

    The two hypotheses are weighed by their marginal likelihoods (the multinomial
    coefficient is common): the prior's shares exactly, or shares drawn from a broad
    Dirichlet around them (:data:`SHAPE_CONCENTRATION`) — whose posterior mean is the
    histogram returned. Weeks of requests from the forecast's shape keep it (a histogram
    would only add each hour's sampling noise); a day shaped otherwise wins in days.
    """
    shares = prior.hour_shares()
    total = float(sum(counts))
    if total <= 0:
        return prior
    if any(c > 0 and s <= 0 for c, s in zip(counts, shares, strict=True)):
        log_fixed = -math.inf
    else:
        log_fixed = sum(c * math.log(s) for c, s in zip(counts, shares, strict=True) if c > 0)
    a0 = SHAPE_CONCENTRATION
    alpha = [a0 * s for s in shares]
    log_free = math.lgamma(a0) - math.lgamma(a0 + total)
    log_free += sum(
        math.lgamma(a + c) - math.lgamma(a) for a, c in zip(alpha, counts, strict=True) if a > 0
    )
    if log_fixed >= log_free:
        return prior
    return ArrivalShape(
        base=0.0,
        bumps=(),
        hourly=tuple(round((c + a) / (total + a0), 6) for c, a in zip(counts, alpha, strict=True)),
    )


def arrival_weight(days: Sequence[tuple[int, float]], n: float) -> float | None:
    """How many days of evidence the learned daily arrival rate ``n`` is worth in a new day
    (the engine's Gamma prior weight, :func:`estimate_arrivals`), from the logged days'
    ``(requests, exposure)``: ``n`` over the variance of a day's rate about it.

    That variance is the days' own (by moments: a day's squared miss less its Poisson part,
    ``Σ((c − e·n̂)² − e·n̂) / Σe²``, n̂ = Σc/Σe) plus the uncertainty of ``n`` from the window
    (``n̂/Σe``). Days as steady as Poisson arrivals allow earn a weight near the window's
    length; days whose rate swings earn little. None with fewer than
    :data:`V_RIGHT_MIN_DAYS` days.
    """
    days = [(c, e) for c, e in days if e > 0]
    total_e = sum(e for _, e in days)
    if len(days) < V_RIGHT_MIN_DAYS or total_e <= 0 or n <= 0:
        return None
    rate = sum(c for c, _ in days) / total_e
    spread = sum((c - e * rate) ** 2 - e * rate for c, e in days) / sum(e * e for _, e in days)
    variance = max(0.0, spread) + max(rate, 1.0) / total_e
    return n / variance


def size_weight(days: Sequence[Sequence[float]], q_sigma: float) -> float | None:
    """How many requests' worth of evidence the learned request size is in a new day (the
    engine's prior weight, :func:`estimate_log_size`), from each logged day's ``ln`` request
    sizes: ``q_σ²`` over the variance of a day's log-mean about the pooled one.

    That variance is the days' own (by moments: a day's squared miss less its sampling part
    ``q_σ²/c``) plus the pooled mean's (``q_σ²/Σc``). None with fewer than
    :data:`V_RIGHT_MIN_DAYS` days with two requests or more, or ``q_σ`` 0.
    """
    days = [d for d in days if len(d) >= 2]
    total = sum(len(d) for d in days)
    if len(days) < V_RIGHT_MIN_DAYS or q_sigma <= 0:
        return None
    var = q_sigma**2
    pooled = sum(sum(d) for d in days) / total
    spread = sum((sum(d) / len(d) - pooled) ** 2 - var / len(d) for d in days) / (len(days) - 1)
    return var / (max(0.0, spread) + var / total)


def willingness_right_share(
    days: Iterable[Sequence[tuple[float, bool]]],
    log_v: float,
    sigma: float,
    *,
    right_sd: float | Sequence[float],
    wide_sd: float,
) -> tuple[float, float] | None:
    """How often a day's willingness level is ``log_v`` (within ``right_sd``) rather than
    anywhere within ``wide_sd`` of it: the mixing weight of the two priors that best explains
    the days' answers (each day's evidence under either, :func:`willingness_log_evidence`;
    EM on the weight), within :data:`V_RIGHT_BOUNDS`; and that ``right_sd`` — given several,
    the one whose mixture explains the days best (how closely steady days keep to the
    level). None with fewer than :data:`V_RIGHT_MIN_DAYS` days of answers.
    """
    sds = (right_sd,) if isinstance(right_sd, float | int) else tuple(right_sd)
    days = [obs for obs in days if obs]
    wide = [
        willingness_log_evidence(
            log_v,
            wide_sd,
            sigma,
            obs,
            estimate_willingness(log_v, wide_sd, sigma, obs, iterations=25),
        )
        for obs in days
    ]
    best: tuple[float, float, float] | None = None
    for sd in sds:
        ratios = [
            willingness_log_evidence(
                log_v, sd, sigma, obs, estimate_willingness(log_v, sd, sigma, obs, iterations=25)
            )
            - ev
            for obs, ev in zip(days, wide, strict=True)
        ]
        share = _right_share(ratios)
        if share is None:
            return None
        fit = sum(math.log(share * math.exp(min(r, 60.0)) + 1.0 - share) for r in ratios)
        if best is None or fit > best[0]:
            best = (fit, share, float(sd))
    return None if best is None else (best[1], best[2])


def shape_right_share(days: Iterable[Sequence[float]], family: ShapeFamily) -> float | None:
    """How often a whole day's requests came as the forecast's shape (``family``'s candidate
    0) rather than as one of the other candidates, which share the rest equally as in the
    engine: EM on that weight over the days' multinomial likelihoods (``days``: each day's
    requests per slot of ``family``), within :data:`V_RIGHT_BOUNDS`. None with fewer than
    :data:`V_RIGHT_MIN_DAYS` days with requests.
    """
    ratios: list[float] = []
    for counts in days:
        if not any(counts):
            continue
        ll = [
            sum(c * lm for c, lm in zip(counts, log_mass, strict=True) if c)
            for log_mass in family.log_mass
        ]
        top = max(ll[1:])
        others = top + math.log(sum(math.exp(x - top) for x in ll[1:]) / (len(ll) - 1))
        ratios.append(ll[0] - others)
    return _right_share(ratios)


def _right_share(ratios: Sequence[float]) -> float | None:
    """The weight ``ρ`` of "as forecast" in a two-way mixture that best explains days whose
    log-likelihood ratios (forecast's against the alternative) are ``ratios``: EM, within
    :data:`V_RIGHT_BOUNDS`; None with fewer than :data:`V_RIGHT_MIN_DAYS` days."""
    if len(ratios) < V_RIGHT_MIN_DAYS:
        return None
    lo, hi = V_RIGHT_BOUNDS
    share = 0.5
    for _ in range(50):
        logit = math.log(share / (1.0 - share))
        share = sum(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit + r)))) for r in ratios)
        share = min(hi, max(lo, share / len(ratios)))
    return share


def refit_forecast(
    quote_log: Iterable[QuoteRecord],
    prior: Forecast | None = None,
    *,
    prior_days: float = 3.0,
    days: int | None = None,
    learn_shape: bool = False,
    sold_out: Mapping[date, datetime] | None = None,
    right_sd: float | Sequence[float] = V_RIGHT_SDS,
    wide_sd: float = WILLINGNESS_WIDE_SD,
) -> Forecast:
    """Nightly refit: move ``prior`` towards what the logged days showed.

    ``n`` is the Gamma-Poisson posterior mean over the logged days (``days`` of them, empty
    ones included; default: the days that have a quote) with ``prior_days`` of prior weight;
    a day in ``sold_out`` (its date → when it sold out) counts only for the share of the
    day's requests expected before then, and it says nothing of the shape,
    ``v`` the probit MAP over every settled outcome — a declined quote is censored demand,
    the buyer's willingness was below that price — (prior sd 0.5 in log space), ``v_right``
    how often a single day's answers agree with that ``v`` and ``v_right_sd`` how closely
    (:func:`willingness_right_share`: the narrow prior sd of ``right_sd`` that explains the
    days best, against the engine's wide one ``wide_sd``), and the size
    parameters the log-normal moments of the requested amounts, shrunk like ``n``;
    ``arrival_prior_days`` and ``size_prior_count`` how much a new day's arrivals and sizes
    may stray from them (:func:`arrival_weight`, :func:`size_weight`) and ``shape_prior``
    how often a whole day came as the shape (:func:`shape_right_share`) — each kept from
    ``prior`` when the window cannot measure it. With
    ``learn_shape`` the daily shape is the prior's unless the logged requests per UTC hour
    argue for a histogram (:func:`learned_shape`).
    """
    base = prior if prior is not None else Forecast()
    records = list(quote_log)
    if not records:
        return base
    ended = dict(sold_out or {})
    n_days = days if days is not None else len({r.at.date() for r in records})
    shape = base.shape
    if learn_shape:  # from whole days: a sold-out day's evening had no quotes to log
        counts = [0.0] * 24
        for r in records:
            if r.at.date() not in ended:
                counts[r.at.hour] += 1.0
        shape = learned_shape(counts, base.shape)
    # a sold-out day saw only the requests that came before it sold out
    exposure = max(0, n_days - len(ended)) + sum(
        shape.cdf(_hour_of_day(at)) for at in ended.values()
    )
    n = estimate_arrivals(base.n, len(records), max(1.0, exposure), prior_days)
    # the engine's candidate shapes (their prior does not enter the measure)
    family = shape_family(shape, 0.5)
    slot_count = len(family.mass[0])
    per_day: dict[date, list[float]] = {}
    slots: dict[date, list[float]] = {}  # whole days' requests per slot
    for r in records:
        day = r.at.date()
        per_day.setdefault(day, []).append(math.log(max(1, r.requested_cents)))
        if day not in ended:
            counts = slots.setdefault(day, [0.0] * slot_count)
            slot = int(_hour_of_day(r.at) * family.slots_per_hour)
            counts[min(slot_count - 1, slot)] += 1.0
    shape_right = shape_right_share(slots.values(), family)
    quiet = [(0, 1.0)] * max(0, n_days - len(per_day))  # logged days without a request
    n_weight = arrival_weight(
        [
            (len(sizes), shape.cdf(_hour_of_day(ended[d])) if d in ended else 1.0)
            for d, sizes in per_day.items()
        ]
        + quiet,
        n,
    )

    by_day: dict[date, list[tuple[float, bool]]] = {}
    for r in records:
        h = 24.0 - _hour_of_day(r.at)
        p = float(r.price_fraction)
        if p > 0 and r.accepted is not None:
            y = math.log(p) - math.log(g_float(h))
            by_day.setdefault(r.at.date(), []).append((y, r.accepted))
    obs = [o for day_obs in by_day.values() for o in day_obs]
    log_v = estimate_willingness(math.log(base.v), 0.5, base.sigma, obs, iterations=25)
    steady = willingness_right_share(
        by_day.values(), log_v, base.sigma, right_sd=right_sd, wide_sd=wide_sd
    )

    logs = [x for sizes in per_day.values() for x in sizes]
    q_med, q_sigma = base.q_med_cents, base.q_sigma
    if len(logs) >= 2:
        mean = sum(logs) / len(logs)
        var = sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)
        k = len(logs) / (len(logs) + prior_days * max(base.n, 1.0))
        q_med = math.exp((1 - k) * math.log(base.q_med_cents) + k * mean)
        q_sigma = math.sqrt((1 - k) * base.q_sigma**2 + k * var)
    return replace(
        base,
        n=n,
        v=math.exp(log_v),
        q_med_cents=q_med,
        q_sigma=q_sigma,
        shape=shape,
        v_right=steady[0] if steady is not None else base.v_right,
        v_right_sd=steady[1] if steady is not None else base.v_right_sd,
        arrival_prior_days=n_weight if n_weight is not None else base.arrival_prior_days,
        shape_prior=shape_right if shape_right is not None else base.shape_prior,
        size_prior_count=(
            q_weight
            if (q_weight := size_weight(list(per_day.values()), q_sigma)) is not None
            else base.size_prior_count
        ),
    )
