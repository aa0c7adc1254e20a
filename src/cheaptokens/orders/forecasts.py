"""Learned demand forecasts: stored versions, the operator's pin, and per-day actuals.

The nightly refit (:mod:`cheaptokens.worker.repricing`) stores each forecast it learns as a
new version with the data it used; the newest version is in force unless the operator
pinned one. Per-day actuals come from one indexed range query per day (``quotes.created_at``,
``account_days.day``), so a refit over a bounded window costs the same whatever the
shop's total history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cheaptokens.config import Settings
from cheaptokens.models import AccountDay, PricingForecastRow, Quote
from cheaptokens.orders.views import ACCEPTED_STATUSES, order_status_of_days
from cheaptokens.pricing.forecast import Forecast


@dataclass(frozen=True)
class DayActual:
    """What one UTC day showed: requests, credit asked for and sold, and the supply."""

    day: date
    quotes: int
    requested_cents: int
    accepted: int
    sold_cents: int
    capacity_cents: int
    unsold_cents: int
    #: when the day's sales reached its capacity (None: credit went unsold)
    sold_out_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "quotes": self.quotes,
            "requested_cents": self.requested_cents,
            "accepted": self.accepted,
            "sold_cents": self.sold_cents,
            "capacity_cents": self.capacity_cents,
            "unsold_cents": self.unsold_cents,
            "sold_out_at": self.sold_out_at.isoformat() if self.sold_out_at else None,
        }


@dataclass(frozen=True)
class StoredForecast:
    version: int
    fitted_at: datetime
    window_start: date
    window_end: date
    forecast: Forecast
    data: dict[str, Any]
    pinned: bool


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def day_actual(session: Session, day: date) -> DayActual:
    """One day's actuals (indexed range queries on that day only)."""
    lo, hi = _start(day), _start(day + timedelta(days=1))
    quotes = session.execute(
        select(Quote.id, Quote.created_at, Quote.credit_cents)
        .where(Quote.created_at >= lo, Quote.created_at < hi)
        .order_by(Quote.created_at)
    ).all()
    orders = order_status_of_days(session, {day})  # a quote's day is the day it was made
    rows = [(created_at, credit, orders.get(qid)) for qid, created_at, credit in quotes]
    supply = session.execute(
        select(
            func.coalesce(func.sum(AccountDay.capacity_cents), 0),
            func.coalesce(func.sum(AccountDay.sold_cents), 0),
            func.coalesce(func.sum(AccountDay.withheld_cents), 0),
        ).where(AccountDay.day == day)
    ).one()
    capacity, sold_total, withheld = (int(x) for x in supply)
    unsold = max(0, capacity - sold_total - withheld)
    sellable = capacity - withheld
    sold = 0
    accepted = 0
    requested = 0
    sold_out_at = None
    for created_at, credit, order_status in rows:
        requested += credit or 0
        if order_status in ACCEPTED_STATUSES:
            accepted += 1
            sold += credit or 0
            if sold_out_at is None and sellable > 0 and sold >= sellable:
                sold_out_at = created_at
    return DayActual(
        day=day,
        quotes=len(rows),
        requested_cents=requested,
        accepted=accepted,
        sold_cents=sold,
        capacity_cents=capacity,
        unsold_cents=unsold,
        sold_out_at=sold_out_at if unsold == 0 else None,
    )


def first_quote_day(session: Session) -> date | None:
    """The day of the shop's first quote (None: a fresh shop)."""
    first = session.scalar(select(func.min(Quote.created_at)))
    return first.date() if first is not None else None


def store(
    session: Session,
    *,
    forecast: Forecast,
    window_start: date,
    window_end: date,
    data: dict[str, Any],
    now: datetime,
) -> int:
    """Store a learned forecast as a new version; its version number."""
    row = PricingForecastRow(
        fitted_at=now,
        window_start=window_start,
        window_end=window_end,
        body=forecast.to_dict(),
        data=data,
    )
    session.add(row)
    session.flush()
    return row.version


def _stored(row: PricingForecastRow) -> StoredForecast:
    return StoredForecast(
        version=row.version,
        fitted_at=row.fitted_at,
        window_start=row.window_start,
        window_end=row.window_end,
        forecast=Forecast.from_dict(row.body),
        data=row.data,
        pinned=row.pinned_at is not None,
    )


def get(session: Session, version: int) -> StoredForecast | None:
    row = session.get(PricingForecastRow, version)
    return _stored(row) if row is not None else None


def latest(session: Session) -> StoredForecast | None:
    row = session.scalars(
        select(PricingForecastRow).order_by(PricingForecastRow.version.desc()).limit(1)
    ).first()
    return _stored(row) if row is not None else None


def pinned(session: Session) -> StoredForecast | None:
    row = session.scalars(
        select(PricingForecastRow)
        .where(PricingForecastRow.pinned_at.is_not(None))
        .order_by(PricingForecastRow.pinned_at.desc(), PricingForecastRow.version.desc())
        .limit(1)
    ).first()
    return _stored(row) if row is not None else None


def fitted_for(session: Session, window_end: date) -> bool:
    """Has a forecast already been learned from the days before ``window_end``?"""
    return (
        session.scalar(
            select(PricingForecastRow.version).where(PricingForecastRow.window_end == window_end)
        )
        is not None
    )


def in_force_on(session: Session, day: date) -> StoredForecast | None:
    """The newest version fitted by that day's 00:00 UTC (what the engine used that day,
    unless a pin was in place)."""
    row = session.scalars(
        select(PricingForecastRow)
        .where(PricingForecastRow.window_end <= day)
        .order_by(PricingForecastRow.version.desc())
        .limit(1)
    ).first()
    return _stored(row) if row is not None else None


def pin(session: Session, version: int, *, now: datetime) -> bool:
    """Pin ``version`` (only one is pinned at a time); False if there is no such version."""
    if session.get(PricingForecastRow, version) is None:
        return False
    session.execute(update(PricingForecastRow).values(pinned_at=None))
    session.execute(
        update(PricingForecastRow)
        .where(PricingForecastRow.version == version)
        .values(pinned_at=now)
    )
    return True


def unpin(session: Session) -> int:
    """Back to automatic (the newest version); how many pins were lifted."""
    result = session.execute(
        update(PricingForecastRow)
        .where(PricingForecastRow.pinned_at.is_not(None))
        .values(pinned_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def configured(settings: Settings) -> Forecast:
    """The operator's forecast of a day's demand (CHEAPTOKENS_FORECAST_*): a fresh shop's."""
    return Forecast(
        n=float(settings.forecast_arrivals),
        v=float(settings.forecast_willingness),
        q_med_cents=float(settings.forecast_request_cents),
    )


@dataclass(frozen=True)
class ForecastDay:
    """A past day's forecast beside what happened (the dashboard's table)."""

    day: date
    #: the learned version in force that day (None: the configured forecast)
    version: int | None
    forecast_requests: float
    requests: int
    forecast_requested_cents: int
    requested_cents: int
    sold_cents: int
    capacity_cents: int


def forecast_vs_actual(
    session: Session, *, configured: Forecast, today: date, days: int = 14
) -> list[ForecastDay]:
    """The last ``days`` days before ``today``, newest first: forecast against actual."""
    out = []
    for back in range(1, days + 1):
        day = today - timedelta(days=back)
        actual = day_actual(session, day)
        if actual.quotes == 0 and actual.capacity_cents == 0:
            continue
        stored = in_force_on(session, day)
        fc = stored.forecast if stored is not None else configured
        out.append(
            ForecastDay(
                day=day,
                version=stored.version if stored is not None else None,
                forecast_requests=fc.n,
                requests=actual.quotes,
                forecast_requested_cents=round(fc.n * fc.mean_request_cents),
                requested_cents=actual.requested_cents,
                sold_cents=actual.sold_cents,
                capacity_cents=actual.capacity_cents,
            )
        )
    return out
