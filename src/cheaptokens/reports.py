"""Read-only views for the storefront and the operator dashboard (plus the refund action).

Every query the web pages need lives here, so ``web/`` stays free of SQL (DESIGN "thin
handlers"). The chart helpers turn the published curve and the day's sales into SVG
coordinates; the templates only draw them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from cheaptokens.errors import NotFound
from cheaptokens.models import AccountDay, Alert, Order
from cheaptokens.orders import service
from cheaptokens.orders import state as st
from cheaptokens.pricing.curve import (
    PLAN_POINTS,
    PricingParams,
    planned_remaining_cents,
    price_fraction,
)
from cheaptokens.shop import Shop
from cheaptokens.venice import errors as venice_errors

log = logging.getLogger(__name__)

#: Orders whose credit counts as sold (they hold capacity or did).
SOLD_STATUSES = (st.PAID, st.FULFILLED, st.EXPIRED, st.FAILED)
#: Venice's per-account limits (docs/venice-facts.md §6; DESIGN invariant 6).
ACTIVE_KEY_CAP = 500
CREATIONS_PER_MINUTE = 20


# --------------------------------------------------------------------------------- charts
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


@dataclass(frozen=True, slots=True)
class Sale:
    at: datetime
    credit_cents: int
    price_cents: int


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


# ----------------------------------------------------------------------------- the day
def sales_on(shop: Shop, day: date) -> list[Sale]:
    """Every paid sale of ``day`` (time of payment, credit, price), oldest first."""
    with shop.sessions() as session:
        rows = session.execute(
            select(Order.paid_at, Order.credit_cents, Order.price_cents)
            .where(Order.day == day, Order.status.in_(SOLD_STATUSES), Order.paid_at.is_not(None))
            .order_by(Order.paid_at)
        ).all()
    return [Sale(at=r[0], credit_cents=r[1], price_cents=r[2]) for r in rows if r[0] is not None]


@dataclass(frozen=True, slots=True)
class AccountToday:
    name: str
    allocation_cents: int
    capacity_cents: int
    sold_cents: int
    reserved_cents: int

    @property
    def left_cents(self) -> int:
        return self.capacity_cents - self.sold_cents - self.reserved_cents


@dataclass(frozen=True, slots=True)
class Today:
    day: date
    accounts: list[AccountToday]
    credit_sold_cents: int
    revenue_cents: int
    orders: int

    @property
    def average_discount_percent(self) -> str:
        if self.credit_sold_cents <= 0:
            return "—"
        share = 1 - Decimal(self.revenue_cents) / Decimal(self.credit_sold_cents)
        return format((share * 100).quantize(Decimal("0.1")), "f") + " %"


def today(shop: Shop) -> Today:
    """Capacity per account, credit sold, revenue and the average discount of today."""
    now = shop.clock()
    with shop.sessions.begin() as session:
        service.open_day(session, rules=shop.rules, now=now)
        rows = session.scalars(
            select(AccountDay).where(AccountDay.day == now.date()).order_by(AccountDay.account)
        ).all()
        accounts = [
            AccountToday(
                r.account, r.allocation_cents, r.capacity_cents, r.sold_cents, r.reserved_cents
            )
            for r in rows
        ]
        credit, revenue, count = session.execute(
            select(
                func.coalesce(func.sum(Order.credit_cents), 0),
                func.coalesce(func.sum(Order.price_cents), 0),
                func.count(Order.id),
            ).where(Order.day == now.date(), Order.status.in_(SOLD_STATUSES))
        ).one()
    return Today(now.date(), accounts, int(credit), int(revenue), int(count))


@dataclass(frozen=True, slots=True)
class PastDay:
    day: date
    capacity_cents: int
    sold_cents: int
    revenue_cents: int

    @property
    def wasted_cents(self) -> int:
        return max(0, self.capacity_cents - self.sold_cents)


def past_days(shop: Shop, *, days: int = 14) -> list[PastDay]:
    """The last ``days`` days (today included), newest first: capacity, sold and revenue."""
    since = shop.clock().date() - timedelta(days=days - 1)
    with shop.sessions() as session:
        cap = session.execute(
            select(
                AccountDay.day, func.sum(AccountDay.capacity_cents), func.sum(AccountDay.sold_cents)
            )
            .where(AccountDay.day >= since)
            .group_by(AccountDay.day)
        ).all()
        money = dict(
            session.execute(
                select(Order.day, func.sum(Order.price_cents))
                .where(Order.day >= since, Order.status.in_(SOLD_STATUSES))
                .group_by(Order.day)
            ).all()
        )
    out = [PastDay(d, int(c or 0), int(s or 0), int(money.get(d) or 0)) for d, c, s in cap]
    return sorted(out, key=lambda p: p.day, reverse=True)


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


# ------------------------------------------------------------------------ orders, alerts
@dataclass(frozen=True, slots=True)
class OrderRow:
    id: str
    status: str
    created_at: datetime
    credit_cents: int
    price_cents: int
    account: str
    key_last6: str | None
    failure_reason: str | None

    @property
    def refundable(self) -> bool:
        return self.status in (st.PAID, st.FULFILLED, st.FAILED)


def recent_orders(shop: Shop, *, limit: int = 50) -> list[OrderRow]:
    with shop.sessions() as session:
        rows = session.scalars(select(Order).order_by(Order.created_at.desc()).limit(limit)).all()
        return [
            OrderRow(
                o.id,
                o.status,
                o.created_at,
                o.credit_cents,
                o.price_cents,
                o.account,
                o.key_last6,
                o.failure_reason,
            )
            for o in rows
        ]


@dataclass(frozen=True, slots=True)
class AlertRow:
    at: datetime
    kind: str
    account: str | None
    order_id: str | None
    message: str


def recent_alerts(shop: Shop, *, limit: int = 50) -> list[AlertRow]:
    with shop.sessions() as session:
        rows = session.scalars(select(Alert).order_by(Alert.at.desc()).limit(limit)).all()
        return [AlertRow(a.at, a.kind, a.account, a.order_id, a.message) for a in rows]


@dataclass(frozen=True, slots=True)
class KeyCount:
    account: str
    active: int | None  # None: Venice could not be asked
    created_last_minute: int | None
    error: str | None = None
    cap: int = ACTIVE_KEY_CAP
    per_minute: int = CREATIONS_PER_MINUTE


def key_counts(shop: Shop) -> list[KeyCount]:
    """Live INFERENCE keys against the 500 cap, and creations in the last minute."""
    now = shop.clock()
    out = []
    for name, gateway in sorted(shop.gateways.items()):
        try:
            keys = gateway.list_keys()
        except venice_errors.VeniceError as exc:
            log.info("key count for %s: Venice unavailable (%s)", name, type(exc).__name__)
            out.append(KeyCount(name, None, None, "Venice did not answer; try again shortly"))
            continue
        live = [k for k in keys if k.expires_at is None or k.expires_at > now]
        recent = [k for k in keys if now - k.created_at < timedelta(minutes=1)]
        out.append(KeyCount(name, len(live), len(recent)))
    return out


def refund_order(shop: Shop, *, order_id: str, reason: str) -> None:
    """The operator's refund: queue it in one transaction (the worker deletes the key and
    refunds the payment). Raises ``InvalidInput`` if the order cannot be refunded."""
    with shop.sessions.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        if order is None:
            raise NotFound("no such order", field="order_id")
        service.request_refund(session, order=order, reason=reason, now=shop.clock())
