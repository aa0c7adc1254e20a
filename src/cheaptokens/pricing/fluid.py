"""The fluid (bid-price) problem the engine re-solves every hour. Floats: not money.

Over the rest of the day (quarter-hour slots ``j``) demand is ``D_j`` cents of requests and a
buyer at slot ``j`` accepts price ``p`` with probability ``S(p/m_j)``, ``m_j = v·g(h_j)``,
``S(y) = P(lognormal(0, σ) >= y)``. The fluid problem

    max Σ_j D_j · p_j · S(p_j/m_j)   subject to   Σ_j D_j · S(p_j/m_j) <= x

is solved through its Lagrangian: for a bid price ``μ`` every slot takes
``p_j = argmax (p − μ)·S(p/m_j)`` on [floor, 1], and ``μ`` is the smallest value whose
expected sales fit into ``x`` (bisection; sales fall as μ rises). The unconstrained optimum
``y*(r) = argmax_y (y − r)·S(y)`` with ``r = μ/m`` is tabulated once per σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from cheaptokens.pricing.forecast import g_float
from cheaptokens.pricing.shape import ArrivalShape

SLOTS_PER_HOUR = 4
SLOTS = 24 * SLOTS_PER_HOUR
_R_STEP = 0.01
_R_MAX = 40.0
_SQRT2 = math.sqrt(2.0)


def survival(y: float, sigma: float) -> float:
    """P(W >= y) for W lognormal with median 1 and log-sd σ."""
    if y <= 0.0:
        return 1.0
    return 0.5 * math.erfc(math.log(y) / (sigma * _SQRT2))


@lru_cache(maxsize=8)
def _table(sigma: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``y*(r)`` and ``S(y*(r))`` on the grid r = 0, 0.01, …, 40."""
    ys: list[float] = []
    ss: list[float] = []
    steps = round(_R_MAX / _R_STEP)
    for i in range(steps + 1):
        r = i * _R_STEP

        # d/dy (y − r)S(y) = S(y) − (y − r)·φ(ln y/σ)/(σ y): positive below y*, negative above.
        def slope(y: float, r: float = r) -> float:
            z = math.log(y) / sigma
            dens = math.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * sigma * y)
            return survival(y, sigma) - (y - r) * dens

        lo, hi = max(r, 1e-9), max(4.0 * r, 10.0)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if slope(mid) > 0:
                lo = mid
            else:
                hi = mid
        y = 0.5 * (lo + hi)
        ys.append(y)
        ss.append(survival(y, sigma))
    return tuple(ys), tuple(ss)


@lru_cache(maxsize=8)
def slot_grid(shape: ArrivalShape) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per quarter-hour slot: share of the day's arrivals, and g at the slot's midpoint."""
    mass = tuple(
        shape.cdf((j + 1) / SLOTS_PER_HOUR) - shape.cdf(j / SLOTS_PER_HOUR) for j in range(SLOTS)
    )
    g = tuple(g_float(24.0 - (j + 0.5) / SLOTS_PER_HOUR) for j in range(SLOTS))
    return mass, g


@dataclass(frozen=True, slots=True)
class FluidSolution:
    """Bid price, the optimal price per slot, and expected sales (cents) per slot."""

    mu: float
    prices: tuple[float, ...]
    sales: tuple[float, ...]


def _prices_for(
    mu: float, m: list[float], floor: float, sigma: float
) -> tuple[list[float], list[float]]:
    ys, ss = _table(sigma)
    prices: list[float] = []
    shares: list[float] = []
    for mj in m:
        r = mu / mj
        if r >= _R_MAX:
            p = 1.0
            s = survival(p / mj, sigma)
        else:
            pos = r / _R_STEP
            i = int(pos)
            f = pos - i
            y = ys[i] + (ys[i + 1] - ys[i]) * f if f else ys[i]
            p = mj * y
            if p > 1.0:
                p = 1.0
                s = survival(p / mj, sigma)
            elif p < floor:
                p = floor
                s = survival(p / mj, sigma)
            else:
                s = ss[i] + (ss[i + 1] - ss[i]) * f if f else ss[i]
        prices.append(p)
        shares.append(s)
    return prices, shares


def solve(
    *,
    demand: list[float],
    m: list[float],
    remaining: float,
    floor: float,
    sigma: float,
    iterations: int = 22,
    mu_scale: float = 1.0,
) -> FluidSolution:
    """Solve the fluid problem for slots with request volume ``demand`` and scale ``m``.

    ``mu_scale`` < 1 shades the bid price (demand is random, so the deterministic problem
    overvalues the last units of credit); the prices then use ``mu_scale × μ``.
    """
    prices, shares = _prices_for(0.0, m, floor, sigma)
    sold = sum(d * s for d, s in zip(demand, shares, strict=True))
    mu = 0.0
    if sold > remaining:
        lo, hi = 0.0, 1.0
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            _, sh = _prices_for(mid, m, floor, sigma)
            if sum(d * s for d, s in zip(demand, sh, strict=True)) > remaining:
                lo = mid
            else:
                hi = mid
        mu = hi * mu_scale
        prices, shares = _prices_for(mu, m, floor, sigma)
    sales = tuple(d * s for d, s in zip(demand, shares, strict=True))
    return FluidSolution(mu=mu, prices=tuple(prices), sales=sales)
