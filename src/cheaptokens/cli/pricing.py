"""``cheaptokens pricing``: the curve in force, a forced re-plan, and the nightly forecast refit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cheaptokens import operators
from cheaptokens.cli._common import open_shop, shell_user
from cheaptokens.orders import forecasts
from cheaptokens.pricing.forecast import Forecast

if TYPE_CHECKING:
    from cheaptokens.shop import Shop


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pricing",
        help="show the price curve, re-plan it, or learn, pin and show the demand forecast",
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
        help="learn the demand forecast from the last days' quotes and sales",
        description="The nightly refit (workers run it after 00:00 UTC): learn the forecast "
        "from the last DAYS whole days of quotes and sales, store it as a new version (in "
        "force from then on unless one is pinned) and print it. --dry-run only prints.",
    )
    rf.add_argument(
        "--days", type=int, default=28, help="days of history to learn from (28, at most 90)"
    )
    rf.add_argument("--dry-run", action="store_true", help="print the forecast, store nothing")
    rf.set_defaults(func=_refit)
    pin = sub.add_parser(
        "pin",
        help="keep a stored forecast version in force",
        description="Pin a learned forecast version (default: the newest): the engine uses it "
        "until `cheaptokens pricing unpin`, whatever the nightly refit learns. Pin and unpin "
        "are recorded in the dashboard's audit log, naming cli:<your system user>.",
    )
    pin.add_argument("version", type=int, nargs="?", help="the version to pin (newest)")
    pin.set_defaults(func=_pin)
    unpin = sub.add_parser(
        "unpin",
        help="go back to the newest learned forecast",
        description="Lift the pin: the engine uses the newest learned forecast again.",
    )
    unpin.set_defaults(func=_unpin)
    fc = sub.add_parser(
        "forecast",
        help="the demand forecast in force and where it came from",
        description="Print the forecast the engine uses today: a pinned or learned version, "
        "or the configured CHEAPTOKENS_FORECAST_* values.",
    )
    fc.set_defaults(func=_forecast)


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


def _print_forecast(f: Forecast) -> None:
    shares = f.shape.hour_shares()
    peak = max(range(24), key=lambda h: shares[h])
    print(f"requests/day  {f.n:.1f}")
    print(f"willingness   {f.v:.3f} of list for 24-h credit (log-sd {f.sigma:.2f})")
    if f.v_right is not None:
        within = f" (within {f.v_right_sd:.2f} in ln v)" if f.v_right_sd is not None else ""
        print(f"              the day's level on {f.v_right:.0%} of past days{within}")
    if f.arrival_prior_days is not None:
        print(f"              requests/day worth {f.arrival_prior_days:.1f} days of evidence")
    print(f"request size  median {f.q_med_cents:.0f}¢ (log-sd {f.q_sigma:.2f})")
    if f.size_prior_count is not None:
        print(f"              worth {f.size_prior_count:.0f} requests of evidence")
    print(f"daily shape   busiest hour {peak:02d}:00 UTC ({shares[peak]:.1%} of requests)")
    if f.shape_prior is not None:
        print(f"              the day's shape on {f.shape_prior:.0%} of past days")


def _refit(args: argparse.Namespace) -> int:
    from cheaptokens.worker import repricing

    if not 1 <= args.days <= 90:
        print("error: --days must be between 1 and 90", file=sys.stderr)
        return 2
    with open_shop() as shop:
        configured = repricing.forecast_of(shop.settings)
        now = shop.clock()
        if args.dry_run:
            learned, data = repricing.refit(
                db=shop.db, forecast=configured, now=now, days=args.days
            )
            print(f"learned from {len(data['days'])} days (not stored)")
            _print_forecast(learned)
            return 0
        version = repricing.nightly_refit(db=shop.db, forecast=configured, now=now, days=args.days)
        if version is None:
            print("nothing stored: today's forecast is learned already, or there is no history")
            return 0
        with shop.db.read() as session:
            stored = forecasts.get(session, version)
        assert stored is not None
        print(
            f"stored forecast version {version} (days {stored.window_start}..{stored.window_end})"
        )
        _print_forecast(stored.forecast)
    return 0


def _pin(args: argparse.Namespace) -> int:
    with open_shop() as shop:
        with shop.db.read() as session:
            if args.version is None:
                found = forecasts.latest(session)
                missing = "no learned forecast to pin yet"
            else:
                found = forecasts.get(session, args.version)
                missing = f"no forecast version {args.version}"
        if found is None:
            print(f"error: {missing}", file=sys.stderr)
            return 1
        version = found.version
        _audited(
            shop, "pin_forecast", str(version), lambda s, now: forecasts.pin(s, version, now=now)
        )
        print(f"pinned forecast version {version}")
    return 0


def _unpin(_args: argparse.Namespace) -> int:
    with open_shop() as shop:
        with shop.db.read() as session:
            if forecasts.pinned(session) is None:
                print("nothing pinned")  # nothing changes: no audit row
                return 0
        _audited(shop, "unpin_forecast", None, lambda s, _now: forecasts.unpin(s))
        print("unpinned: the newest learned forecast is in force")
    return 0


def _audited(
    shop: Shop, action: str, target: str | None, change: Callable[[Any, datetime], object]
) -> None:
    """An operator's change of the forecast in force, in one transaction with its audit row
    (``cli:<user>``); ``change`` gets that transaction's session (typed Any: the CLI names no
    SQLAlchemy type, tests/unit/test_architecture.py)."""
    now = shop.clock()
    with (
        operators.audited(
            shop.db, user=shell_user(), action=action, target=target, detail=None, now=now
        ) as db,
        db.begin() as session,
    ):
        change(session, now)


def _forecast(_args: argparse.Namespace) -> int:
    from cheaptokens.worker import repricing

    with open_shop() as shop:
        found = repricing.forecast_in_force(
            shop.db,
            configured=repricing.forecast_of(shop.settings),
            learning=shop.settings.forecast_learning,
        )
        if found.version is None:
            print("source        configured (CHEAPTOKENS_FORECAST_*)")
        else:
            print(f"source        version {found.version}{' (pinned)' if found.pinned else ''}")
        _print_forecast(found.forecast)
    return 0
