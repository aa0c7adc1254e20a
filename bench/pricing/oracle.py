"""What is attainable: two policies that are told the true demand, on the benchmark's days.

* ``dp``: the dynamic program over (minute, unsold credit) under the scenario's true demand
  (arrival rate per minute, request sizes, willingness level); the price per credit may
  depend on both but, like the shop's curve, not on the request's size. Solved once per
  scenario by backward induction (half-minute steps, at most one arrival per step, credit on
  a 0.5-credit grid, request sizes at 16 equal-probability quantiles).
* ``resolve``: the fluid bid-price problem (``cheaptokens.pricing.fluid``) re-solved at every
  arrival with the true demand for the rest of the day, the price taken for the current slot
  — the engine's re-plan with perfect knowledge, every arrival instead of hourly.

Neither is a policy the shop could run (they know N, v and the shape); they say how much of
the posted-price bound the benchmark leaves to any engine, and so how much of the engine's
gap is the cost of learning. Usage::

    .venv/bin/python bench/pricing/oracle.py --days 1000            # both, scenarios 0-5
    .venv/bin/python bench/pricing/oracle.py --policy dp --scenarios 1,4 --seed-family 100

Floats throughout: a simulation. numpy only (the normal tail via ``math.erfc``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pricebench as pb

from cheaptokens.pricing import fluid
from cheaptokens.pricing.forecast import g_float

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def survival(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """P(Z >= z) for a standard normal Z."""
    return np.asarray(0.5 * _ERFC(np.asarray(z) / math.sqrt(2.0)), dtype=np.float64)


def solve_dp(
    sc: pb.Scenario, *, steps_per_minute: int = 2, dx: float = 0.5, sizes: int = 16
) -> tuple[NDArray[np.float64], NDArray[np.float32], float]:
    """Price table P[step, credit index] and the expected revenue of the day (V at 00:00)."""
    pmf = pb.SHAPES[sc.shape][0]
    x = np.arange(0.0, pb.CAPACITY + dx / 2, dx)
    u = (np.arange(sizes) + 0.5) / sizes
    q = sc.q_med * np.exp(pb.Q_SIGMA * np.array([NormalDist().inv_cdf(float(p)) for p in u]))
    take = np.minimum(q[None, :], x[:, None])
    mean_take = take.mean(1)
    pos = (x[:, None] - take) / dx
    i0 = np.floor(pos).astype(int)
    frac = pos - i0
    i1 = np.minimum(i0 + 1, len(x) - 1)
    # the engine's own table of y*(r) = argmax_y (y − r)·P(W >= y); past its end, list price
    y_table = np.array(fluid._table(pb.SIGMA)[0])
    r_grid = np.arange(len(y_table)) * fluid._R_STEP
    steps = 1440 * steps_per_minute
    value = np.zeros(len(x))
    prices = np.zeros((steps, len(x)), dtype=np.float32)
    for s in range(steps - 1, -1, -1):
        t = (s + 0.5) / (60 * steps_per_minute)
        rate = sc.n * pmf[s // steps_per_minute] / steps_per_minute
        m = sc.v * g_float(24.0 - t)
        after = value[i0] * (1 - frac) + value[i1] * frac
        lost = (value[:, None] - after).mean(1)  # expected value of the credit a sale takes
        r = np.where(mean_take > 0, lost / np.maximum(mean_take, 1e-12) / m, 0.0)
        y = np.where(r < r_grid[-1], np.interp(r, r_grid, y_table), np.inf)
        p = np.clip(m * y, pb.P_MIN, pb.P_MAX)
        gain = survival(np.log(p / m) / pb.SIGMA) * (p * mean_take - lost)
        value = value + rate * np.maximum(gain, 0.0)
        prices[s] = p
    return x, prices, float(value[-1])


def simulate(
    sc: pb.Scenario, days: range, family: int, price: Callable[[float, float], float]
) -> tuple[float, float]:
    """(revenue, hindsight) summed over ``days`` with ``price(t, unsold credit)``."""
    revenue = hindsight = 0.0
    for d in days:
        day = pb.generate_day(sc.k + family, d, sc.n, sc.v, q_med=sc.q_med, shape=sc.shape)
        hindsight += pb.hindsight(day)
        left = pb.CAPACITY
        for t, q, w in zip(day.t.tolist(), day.q.tolist(), day.w.tolist(), strict=True):
            if left <= 0:
                break
            p = price(t, left)
            if p <= w:
                fill = min(q, left)
                revenue += p * fill
                left -= fill
    return revenue, hindsight


def run_dp(
    sc: pb.Scenario,
    days: range,
    family: int,
    *,
    steps_per_minute: int = 2,
    dx: float = 0.5,
    sizes: int = 16,
) -> tuple[float, float]:
    """(revenue, hindsight) summed over ``days`` (the grid as in :func:`solve_dp`)."""
    x, prices, _ = solve_dp(sc, steps_per_minute=steps_per_minute, dx=dx, sizes=sizes)

    def price(t: float, left: float) -> float:
        row = prices[min(int(t * 60 * steps_per_minute), prices.shape[0] - 1)]
        pos = left / dx
        i = min(int(pos), len(x) - 2)
        return float(row[i] + (row[i + 1] - row[i]) * (pos - i))

    return simulate(sc, days, family, price)


def run_resolve(sc: pb.Scenario, days: range, family: int) -> tuple[float, float]:
    """(revenue, hindsight) summed over ``days``."""
    cdf = pb.SHAPES[sc.shape][1]
    per = fluid.SLOTS_PER_HOUR
    edges = np.concatenate(([0.0], cdf[np.arange(1, fluid.SLOTS + 1) * (60 // per) - 1]))
    mean_q = sc.q_med * math.exp(pb.Q_SIGMA**2 / 2)
    g_slot = [g_float(24.0 - (j + 0.5) / per) for j in range(fluid.SLOTS)]

    def price(t: float, left: float) -> float:
        j0 = min(fluid.SLOTS - 1, int(t * per))
        minute = int(t * 60)
        first = max(0.0, edges[j0 + 1] - (cdf[minute - 1] if minute else 0.0))
        demand = [sc.n * mean_q * first] + [
            sc.n * mean_q * (edges[j + 1] - edges[j]) for j in range(j0 + 1, fluid.SLOTS)
        ]
        m = [sc.v * g_float(24.0 - t)] + [sc.v * g for g in g_slot[j0 + 1 :]]
        sol = fluid.solve(demand=demand, m=m, remaining=left, floor=pb.P_MIN, sigma=pb.SIGMA)
        return sol.prices[0]

    return simulate(sc, days, family, price)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=1000, help="days per scenario (0..N-1)")
    ap.add_argument("--scenarios", default="0,1,2,3,4,5", help="comma-separated k")
    ap.add_argument("--seed-family", type=int, default=0, help="offset added to k")
    ap.add_argument("--policy", choices=("dp", "resolve", "both"), default="both")
    args = ap.parse_args(argv)
    days = range(args.days)
    policies = ("dp", "resolve") if args.policy == "both" else (args.policy,)
    runners = {"dp": run_dp, "resolve": run_resolve}
    print(f"days=0..{args.days - 1} seed_family=+{args.seed_family}")
    print(" k scenario            policy   revenue     R_k   %bound")
    for k in (int(s) for s in args.scenarios.split(",")):
        sc = pb.ALL_SCENARIOS[k]
        bound = pb.bound_for(sc)
        for name in policies:
            t0 = time.perf_counter()
            revenue, hindsight = runners[name](sc, days, args.seed_family)
            print(
                f"{k:2d} {sc.name:19s} {name:8s} {revenue / len(days):7.1f} "
                f"{100 * revenue / hindsight:6.2f}% {100 * revenue / len(days) / bound:6.1f}%"
                f"  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
