"""SVG geometry for the storefront's and the dashboard's charts (the templates only draw it).

Pure: the published curve, the day's sales and past days in, coordinates out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cheaptokens.orders.views import PastDay, Sale
from cheaptokens.pricing.curve import (
    PLAN_POINTS,
    PricingParams,
    planned_remaining_cents,
    price_fraction,
)


@dataclass(frozen=True, slots=True)
class Chart:
    """SVG geometry of one day's curve: ``viewBox="0 0 width height"``."""

    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    price_path: str  # the price per $1 if sales follow the plan
    plan_path: str  # planned share sold (dashed)
    sold_path: str  # actual share sold so far
    now_x: float
    now_y: float
    now_price_cents: str
    sales: tuple[tuple[float, float], ...]  # one dot per sale: (x, y of its price per $1)
    list_cents: int
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]


def _whole_day(params: PricingParams) -> PricingParams:
    start = params.day_start
    return dataclasses.replace(params, valid_from=start, valid_until=start + timedelta(days=1))


def build_chart(
    params: PricingParams,
    *,
    now: datetime,
    remaining_cents: int,
    sales: list[Sale],
    width: int = 640,
    height: int = 260,
) -> Chart:
    """The day's price curve on plan, the planned and actual share sold, and "now"."""
    left, top, right, bottom = 44, 12, 44, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    day = _whole_day(params)
    start = day.day_start
    list_c = Decimal(day.list_cents)

    def x(hours: float) -> float:
        return round(left + plot_w * hours / 24, 1)

    def y_price(cents: Decimal) -> float:
        return round(top + plot_h * (1 - float(cents / list_c)), 1)

    def y_share(share: float) -> float:
        return round(top + plot_h * (1 - share), 1)

    price_pts, plan_pts = [], []
    for q in range(24 * 4 + 1):
        t = start + timedelta(minutes=15 * q) - (timedelta(seconds=1) if q == 96 else timedelta())
        planned = planned_remaining_cents(day, now=t)
        frac = price_fraction(day, now=t, remaining_cents=max(1, int(planned)))
        price_pts.append(f"{x(q / 4)},{y_price(frac * list_c)}")
    for i in range(PLAN_POINTS):
        plan_pts.append(f"{x(i)},{y_share(1 - float(day.plan[i]))}")

    cap = max(1, day.capacity_cents)
    sold_pts = [f"{x(0)},{y_share(0)}"]
    cumulative = 0
    dots = []
    for sale in sorted(sales, key=lambda s: s.at):
        h = (sale.at - start).total_seconds() / 3600
        if not 0 <= h <= 24:
            continue
        sold_pts.append(f"{x(h)},{y_share(cumulative / cap)}")
        cumulative += sale.credit_cents
        sold_pts.append(f"{x(h)},{y_share(min(1.0, cumulative / cap))}")
        per_dollar = Decimal(sale.price_cents) * 100 / max(1, sale.credit_cents)
        dots.append((x(h), y_price(min(per_dollar, list_c))))
    now_h = max(0.0, min(24.0, (now - start).total_seconds() / 3600))
    sold_pts.append(f"{x(now_h)},{y_share(min(1.0, cumulative / cap))}")
    try:
        now_frac = price_fraction(day, now=now, remaining_cents=remaining_cents)
    except ValueError:
        now_frac = Decimal(1)
    now_cents = now_frac * list_c
    return Chart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        price_path="M" + " L".join(price_pts),
        plan_path="M" + " L".join(plan_pts),
        sold_path="M" + " L".join(sold_pts),
        now_x=x(now_h),
        now_y=y_price(now_cents),
        now_price_cents=format(now_cents.quantize(Decimal("0.01")), "f"),
        sales=tuple(dots),
        list_cents=day.list_cents,
        y_ticks=tuple((y_share(s / 4), f"{s * 25}%") for s in range(5)),
        x_ticks=tuple((x(h), f"{h:02d}:00") for h in range(0, 25, 6)),
    )


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    bars: tuple[tuple[float, float, float, float, float, str], ...]  # x, w, sold_y, cap_y, base


def past_chart(days: list[PastDay], *, width: int = 640, height: int = 200) -> BarChart:
    """Bars per day: capacity (light) with the sold part (dark) on top of it, oldest left."""
    ordered = list(reversed(days))
    top, bottom, left = 10, 24, 8
    plot_h = height - top - bottom
    peak = max([d.capacity_cents for d in ordered] + [1])
    slot = min(48.0, (width - 2 * left) / max(1, len(ordered)))  # thin bars for few days
    bars = []
    for i, d in enumerate(ordered):
        x = left + i * slot + slot * 0.15
        cap_y = top + plot_h * (1 - d.capacity_cents / peak)
        sold_y = top + plot_h * (1 - min(d.sold_cents, d.capacity_cents) / peak)
        bars.append(
            (
                round(x, 1),
                round(slot * 0.7, 1),
                round(sold_y, 1),
                round(cap_y, 1),
                float(top + plot_h),
                d.day.strftime("%m-%d"),
            )
        )
    return BarChart(width, height, tuple(bars))
