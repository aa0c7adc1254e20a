"""A lasting change of demand in mid-run: how fast the shop unlearns a steady history.

The shop runs days in order with its nightly refit (``run.py --refit-days``): weeks of
base-scenario buyers teach it a forecast and how steady its days are, which it then trusts.
Then the buyers change for good — to scenario ``k2``'s (arrivals ×2, willingness −30 %, …)
— and the score is the revenue's share of ``k2``'s posted-price bound on the days after the
change, in two windows: the first week (the history still says "steady") and the rest. ::

    .venv/bin/python bench/pricing/change.py                       # to 5, 10, 16; 8 runs
    .venv/bin/python bench/pricing/change.py --to 5 --runs 4 --seed-family 100

Each run is its own stretch of days (``before + after`` of them, from day 0 on), so runs
are independent; the days stay inside the development set.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pricebench as pb


def _run(job: tuple[int, int, int, int, int]) -> tuple[int, list[float]]:
    """Revenue per day after the change, for one run."""
    k2, first, before, after, family = job
    res = pb.run_scenario(
        1,
        range(first, first + before + after),
        seed_offset=family,
        refit_days=28,
        change=(first + before, k2),
    )
    total = [0.0, *res.cumulative]
    return k2, [total[i + 1] - total[i] for i in range(before, before + after)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--to", default="5,10,16", help="comma-separated scenarios changed to")
    ap.add_argument("--before", type=int, default=56, help="days of base buyers first")
    ap.add_argument("--after", type=int, default=28, help="days of the new buyers")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--seed-family", type=int, default=0, help="offset added to k")
    ap.add_argument("--workers", type=int, default=2)
    ns = ap.parse_args(argv)
    span = ns.before + ns.after
    if ns.runs * span > pb.DEV_DAYS:
        ap.error(f"--runs × (before + after) must stay within the {pb.DEV_DAYS} development days")
    targets = [int(k) for k in ns.to.split(",")]
    jobs = [
        (k2, r * span, ns.before, ns.after, ns.seed_family)
        for k2 in targets
        for r in range(ns.runs)
    ]
    with ProcessPoolExecutor(max_workers=ns.workers) as pool:
        parts = list(pool.map(_run, jobs))
    print(
        f"base for {ns.before} days, then k2 for {ns.after}; {ns.runs} runs;"
        f" seed_family=+{ns.seed_family}; % of k2's posted-price bound"
    )
    print(f"{'k2':>3} {'scenario':<20} {'days 1-7':>9} {'days 8-' + str(ns.after):>10}")
    for k2 in targets:
        days = [per_day for k, per_day in parts if k == k2]
        bound = pb.bound_for(pb.ALL_SCENARIOS[k2])
        week = sum(sum(d[:7]) for d in days) / (7 * len(days)) / bound
        rest = sum(sum(d[7:]) for d in days) / ((ns.after - 7) * len(days)) / bound
        print(f"{k2:>3} {pb.ALL_SCENARIOS[k2].name:<20} {100 * week:8.1f}% {100 * rest:9.1f}%")


if __name__ == "__main__":
    main()
