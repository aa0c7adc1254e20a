"""Run the pricing benchmark: ``python bench/pricing/run.py [options]``.

Prints, per scenario, the share of hindsight R_k, the posted-price bound and the revenue's
share of it, the headline (mean of the six R_k), and p50/p99 time per quote. See
``bench/pricing/README.md``. Tune with ``--seed-family 100`` (scenario k uses seed family
k + 100); never tune on held-out day numbers (>= 2000).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pricebench as pb

from cheaptokens.pricing import EngineConfig


def _chunk(
    args: tuple[int, int, int, str, dict[str, str] | None, int, int],
) -> pb.ScenarioResult:
    k, lo, hi, policy, cfg, offset, refit_days = args
    config = None
    if cfg is not None:
        fields = {
            key: (
                Decimal(val)
                if key in ("floor", "beta")
                else type(getattr(EngineConfig(), key))(val)
            )
            for key, val in cfg.items()
        }
        config = EngineConfig(**fields)
    return pb.run_scenario(
        k, range(lo, hi), policy=policy, config=config, seed_offset=offset, refit_days=refit_days
    )


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=pb.DEV_DAYS, help="days per scenario (0..N-1)")
    ap.add_argument("--first-day", type=int, default=0)
    ap.add_argument(
        "--scenarios",
        default="0,1,2,3,4,5",
        help="comma-separated k (0-5 the benchmark, 10-19 the stress set), or 'stress'",
    )
    ap.add_argument("--policy", default="engine", choices=sorted(pb.POLICIES))
    ap.add_argument("--seed-family", type=int, default=0, help="offset added to k (tuning: 100)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="EngineConfig field=value")
    ap.add_argument(
        "--refit-days",
        type=int,
        default=0,
        help="run each scenario's days in order, re-learning the forecast each night from "
        "this many past days as the shop does (0: every day gets the handed forecast)",
    )
    ap.add_argument("--no-bound", action="store_true", help="skip the posted-price bound")
    ap.add_argument("--json", action="store_true", help="print a JSON summary only")
    ns = ap.parse_args(argv)

    if ns.scenarios == "stress":
        ks = [sc.k for sc in pb.STRESS]
    else:
        ks = [int(k) for k in ns.scenarios.split(",")]
    cfg = dict(item.split("=", 1) for item in ns.set) or None
    first, last = ns.first_day, ns.first_day + ns.days
    if first + ns.days > pb.DEV_DAYS and ns.seed_family == 0:
        print("warning: includes held-out days (>= 2000); do not tune on them", file=sys.stderr)
    # days in order (--refit-days): one job per scenario
    step = ns.days if ns.refit_days > 0 else max(1, ns.days // max(1, ns.workers * 4))
    jobs = [
        (k, lo, min(lo + step, last), ns.policy, cfg, ns.seed_family, ns.refit_days)
        for k in ks
        for lo in range(first, last, step)
    ]
    results: dict[int, pb.ScenarioResult] = {k: pb.ScenarioResult(k=k, days=0) for k in ks}
    if ns.workers <= 1:
        parts = [_chunk(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=ns.workers) as pool:
            parts = list(pool.map(_chunk, jobs))
    for part in parts:
        acc = results[part.k]
        acc.days += part.days
        acc.revenue += part.revenue
        acc.hindsight += part.hindsight
        acc.quote_ns += part.quote_ns
        acc.replan_ns += part.replan_ns
        acc.tick_ns += part.tick_ns

    rows = []
    quote_ns: list[int] = []
    replan_ns: list[int] = []
    tick_ns: list[int] = []
    for k in ks:
        r = results[k]
        sc = pb.ALL_SCENARIOS[k]
        row: dict[str, object] = {
            "k": k,
            "name": sc.name,
            "days": r.days,
            "revenue_per_day": r.revenue / r.days,
            "hindsight_per_day": r.hindsight / r.days,
            "share_of_hindsight": r.revenue / r.hindsight,
        }
        if not ns.no_bound:
            bound = pb.bound_for(sc)
            row["bound_per_day"] = bound
            row["share_of_bound"] = r.revenue / r.days / bound
        rows.append(row)
        quote_ns += r.quote_ns
        replan_ns += r.replan_ns
        tick_ns += r.tick_ns
    summary: dict[str, object] = {
        "policy": ns.policy,
        "config": cfg or asdict(EngineConfig()) if ns.policy == "engine" else None,
        "seed_family": ns.seed_family,
        "days": [first, last],
        "refit_days": ns.refit_days,
        "scenarios": rows,
        "headline": float(np.mean([row["share_of_hindsight"] for row in rows])),
        "quote_us_p50": float(np.percentile(quote_ns, 50)) / 1000 if quote_ns else None,
        "quote_us_p99": float(np.percentile(quote_ns, 99)) / 1000 if quote_ns else None,
        "replan_us_p50": float(np.percentile(replan_ns, 50)) / 1000 if replan_ns else None,
        "replan_us_p99": float(np.percentile(replan_ns, 99)) / 1000 if replan_ns else None,
        "tick_us_p99": float(np.percentile(tick_ns, 99)) / 1000 if tick_ns else None,
        "worst_share_of_bound": min(
            (float(row["share_of_bound"]) for row in rows if "share_of_bound" in row),  # type: ignore[arg-type]
            default=None,
        ),
    }
    if ns.json:
        print(json.dumps(summary, default=str))
        return summary
    refit = f" nightly refit over {ns.refit_days} days" if ns.refit_days > 0 else ""
    print(f"policy={ns.policy} days={first}..{last - 1} seed_family=+{ns.seed_family}{refit}")
    print(
        f"{'k':>2} {'scenario':<18} {'revenue':>8} {'hindsight':>9} {'R_k':>7}"
        f" {'bound':>7} {'%bound':>7}"
    )
    for row in rows:
        bound_txt = (
            f"{row['bound_per_day']:7.1f} {100 * row['share_of_bound']:6.1f}%"  # type: ignore[str-format]
            if "bound_per_day" in row
            else ""
        )
        print(
            f"{row['k']:>2} {row['name']:<18} {row['revenue_per_day']:8.1f} "
            f"{row['hindsight_per_day']:9.1f} {100 * row['share_of_hindsight']:6.2f}% {bound_txt}"  # type: ignore[operator]
        )
    print(f"headline (mean R_k): {100 * summary['headline']:.2f}%")  # type: ignore[operator]
    if summary["worst_share_of_bound"] is not None:
        print(f"worst scenario: {100 * summary['worst_share_of_bound']:.1f}% of its bound")  # type: ignore[operator]
    if quote_ns:
        print(
            f"time per quote: p50 {summary['quote_us_p50']:.1f} us,"
            f" p99 {summary['quote_us_p99']:.1f} us;"
            f" hourly re-plan: p50 {summary['replan_us_p50']:.0f} us,"
            f" p99 {summary['replan_us_p99']:.0f} us;"
            f" drift check (incl. re-plans): p99 {summary['tick_us_p99']:.0f} us"
        )
    return summary


if __name__ == "__main__":
    main()
