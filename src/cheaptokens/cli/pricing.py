"""``cheaptokens pricing``: the curve in force, a forced re-plan, and the nightly forecast refit."""

from __future__ import annotations

import argparse
from typing import Any

from cheaptokens.cli._common import open_shop


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pricing",
        help="show the price curve, re-plan it, or refit the demand forecast",
        description="The published price curve and the engine behind it (docs/pricing.md).",
    )
    sub = p.add_subparsers(dest="pricing_command", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        help="the parameter set in force and today's price",
        description="Print the price, discount and parameters in force now.",
    )
    show.set_defaults(func=_show)
    rp = sub.add_parser(
        "replan",
        help="re-solve and publish this hour's curve now",
        description="Run the hourly re-plan at once (workers do it each hour).",
    )
    rp.set_defaults(func=_replan)
    rf = sub.add_parser(
        "refit",
        help="suggest a demand forecast from the last days' quotes",
        description="The nightly refit: move the configured forecast towards what the last "
        "DAYS days of settled quotes showed, and print it as CHEAPTOKENS_FORECAST_* settings.",
    )
    rf.add_argument("--days", type=int, default=7, help="days of quotes to learn from (7)")
    rf.set_defaults(func=_refit)


def _show(_args: argparse.Namespace) -> int:
    from cheaptokens.orders import flows

    with open_shop() as shop:
        view = flows.pricing_now(db=shop.db, rules=shop.rules, now=shop.clock())
        p = view.params
        print(f"now           {view.now:%Y-%m-%d %H:%M:%S}Z")
        print(f"price per $1  {view.fraction * p.list_cents:.4f}¢  (discount {view.discount:.2%})")
        print(f"remaining     {view.remaining_cents}¢ of {view.capacity_cents}¢")
        print(f"parameters    {view.params_hash}")
        print(
            f"  a={p.a} b={p.b} beta={p.beta} floor={p.floor} "
            f"valid {p.valid_from:%H:%M}–{p.valid_until:%H:%M} UTC"
        )
    return 0


def _replan(_args: argparse.Namespace) -> int:
    from cheaptokens.worker import repricing

    with open_shop() as shop:
        digest = repricing.replan(
            db=shop.db,
            rules=shop.rules,
            forecast=repricing.forecast_of(shop.settings),
            now=shop.clock(),
            force=True,
        )
        print(digest or "nothing to plan: no capacity today")
    return 0


def _refit(args: argparse.Namespace) -> int:
    from cheaptokens.worker import repricing

    with open_shop() as shop:
        f = repricing.refit(
            db=shop.db,
            forecast=repricing.forecast_of(shop.settings),
            now=shop.clock(),
            days=args.days,
        )
        print(f"CHEAPTOKENS_FORECAST_ARRIVALS={f.n:.0f}")
        print(f"CHEAPTOKENS_FORECAST_WILLINGNESS={f.v:.3f}")
        print(f"CHEAPTOKENS_FORECAST_REQUEST_CENTS={f.q_med_cents:.0f}")
    return 0
