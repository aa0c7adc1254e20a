"""Past days' prices for buyers: the published curves, the parameter sets in force, and
when each day sold out (or how much went unsold).

One indexed query per day (``pricing_params.day``, ``quotes.created_at``,
``account_days.day``), for a bounded number of days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens.models import Order, PricingParamsRow, Quote
from cheaptokens.orders import published
from cheaptokens.orders.forecasts import DayActual, day_actual
from cheaptokens.orders.views import ACCEPTED_STATUSES
from cheaptokens.pricing.curve import PricingParams, price_fraction

#: the most days one history request may ask for
MAX_DAYS = 31


@dataclass(frozen=True)
class PublishedSet:
    hash: str
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True)
class HistoryDay:
    actual: DayActual
    #: price per $1 of credit at each hh:00 (24 values, fraction of list; None: no set)
    hourly_fraction: tuple[Decimal | None, ...]
    list_cents: int
    sets: tuple[PublishedSet, ...]


def _in_force(sets: list[tuple[str, PricingParams]], at: datetime) -> PricingParams | None:
    """The latest-starting set valid at ``at`` (the shop's rule: see published.find_in_force)."""
    best = None
    for _, params in sets:
        if params.valid_from <= at < params.valid_until and (
            best is None or params.valid_from >= best.valid_from
        ):
            best = params
    return best


def history_day(session: Session, day: date) -> HistoryDay:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    rows = session.execute(
        select(PricingParamsRow.hash, PricingParamsRow.body)
        .where(PricingParamsRow.day == day)
        .order_by(PricingParamsRow.valid_from, PricingParamsRow.published_at)
    ).all()
    sets = [(digest, published.from_stored(digest, body)) for digest, body in rows]
    actual = day_actual(session, day)
    # credit sold by each moment (sales counted at their quote's time)
    sales = session.execute(
        select(Quote.created_at, Quote.credit_cents)
        .join(Order, Order.quote_id == Quote.id)
        .where(
            Quote.created_at >= start,
            Quote.created_at < start + timedelta(days=1),
            Order.status.in_(ACCEPTED_STATUSES),
        )
        .order_by(Quote.created_at)
    ).all()
    sellable = actual.unsold_cents + actual.sold_cents
    hourly: list[Decimal | None] = []
    list_cents = 100
    i = 0
    sold = 0
    for hour in range(24):
        at = start + timedelta(hours=hour)
        while i < len(sales) and sales[i][0] < at:
            sold += sales[i][1] or 0
            i += 1
        params = _in_force(sets, at)
        if params is None:
            hourly.append(None)
            continue
        list_cents = params.list_cents
        hourly.append(price_fraction(params, now=at, remaining_cents=max(0, sellable - sold)))
    return HistoryDay(
        actual=actual,
        hourly_fraction=tuple(hourly),
        list_cents=list_cents,
        sets=tuple(
            PublishedSet(digest, params.valid_from, params.valid_until) for digest, params in sets
        ),
    )


def past_days(session: Session, *, today: date, days: int) -> list[HistoryDay]:
    """The ``days`` days before ``today``, newest first (days the shop did not trade are
    left out)."""
    out = []
    for back in range(1, days + 1):
        h = history_day(session, today - timedelta(days=back))
        if h.sets or h.actual.quotes or h.actual.capacity_cents:
            out.append(h)
    return out
