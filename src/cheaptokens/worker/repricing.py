"""The hourly re-plan: feed the day's quotes to the pricing engine and publish its curve.

At 00:00 UTC and at the top of every hour (checked on the worker's upkeep timer) the
engine is rebuilt from the database — the day's capacity, the forecast in force and every
quote of the day so far (a quote that became a paid order was *accepted*; one that lapsed,
or whose checkout was declined or expired, was *declined*; quotes still open count as
requests, their size included, with no outcome yet) — and re-solves the fluid problem from
the live remaining credit. The resulting parameter set is valid for that hour and published
under its hash, so every quote stays recomputable from the published formula.

Between the tops of the hours, :func:`replan_on_drift` (same timer) re-plans when the unsold
credit or the estimated credit demand has drifted from what the set in force planned for: a
new set valid from then to the next top of the hour, at most one per ``replan_every_minutes``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cheaptokens.config import Settings
from cheaptokens.db import Database
from cheaptokens.orders import forecasts, published, quotes, views
from cheaptokens.orders.rules import ShopRules
from cheaptokens.pricing.curve import PricingParams
from cheaptokens.pricing.engine import EngineConfig, PricingEngine, plan_drift
from cheaptokens.pricing.forecast import Forecast, QuoteRecord, refit_forecast
from cheaptokens.times import day_start

log = logging.getLogger(__name__)

#: how long before hh:00 the next hour's parameters are published
PUBLISH_AHEAD = timedelta(seconds=90)


def hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def forecast_of(settings: Settings) -> Forecast:
    """The operator's configured forecast of a day's demand, from the settings."""
    return forecasts.configured(settings)


#: days of history the nightly refit learns from (its cost does not grow with the history)
REFIT_DAYS = 28


@dataclass(frozen=True)
class ForecastInForce:
    """The forecast the engine uses today, and where it came from."""

    forecast: Forecast
    #: the stored version (None: the configured forecast, CHEAPTOKENS_FORECAST_*)
    version: int | None
    pinned: bool


def forecast_in_force(
    db: Database, *, configured: Forecast, learning: bool = True
) -> ForecastInForce:
    """The operator's pinned version, else the newest learned one (if ``learning``), else
    the configured forecast (a fresh shop starts from it)."""
    with db.read() as session:
        found = forecasts.pinned(session)
        if found is None and learning:
            found = forecasts.latest(session)
    if found is None:
        return ForecastInForce(configured, None, False)
    return ForecastInForce(found.forecast, found.version, found.pinned)


def refit(
    *, db: Database, forecast: Forecast, now: datetime, days: int = REFIT_DAYS
) -> tuple[Forecast, dict[str, Any]]:
    """Learn a forecast from the last ``days`` whole days before ``now`` (one indexed query
    per day), starting from ``forecast``; the forecast and the data it used."""
    end = day_start(now).date()
    records: list[QuoteRecord] = []
    actuals: list[forecasts.DayActual] = []
    with db.read() as session:
        first = forecasts.first_quote_day(session)
        start = end - timedelta(days=days)
        if first is not None:
            start = max(start, first)
        day = start
        while day < end:
            lo = datetime.combine(day, time(0), tzinfo=UTC)
            records += views.settled_quotes(session, since=lo, until=lo + timedelta(days=1))
            actuals.append(forecasts.day_actual(session, day))
            day += timedelta(days=1)
    learned = refit_forecast(
        records,
        forecast,
        days=len(actuals),
        learn_shape=True,
        sold_out={a.day: a.sold_out_at for a in actuals if a.sold_out_at is not None},
    )
    data = {
        "window": [start.isoformat(), end.isoformat()],
        "days": [a.to_dict() for a in actuals],
        "settled_quotes": len(records),
        "declined_quotes": sum(1 for r in records if r.accepted is False),
        "prior": forecast.to_dict(),
    }
    return learned, data


def nightly_refit(
    *, db: Database, forecast: Forecast, now: datetime, days: int = REFIT_DAYS
) -> int | None:
    """Once a day: learn from the last ``days`` days and store it as a new version (its
    number); None if today's refit is done already or there is no history yet."""
    end = day_start(now).date()
    with db.read() as session:
        if forecasts.fitted_for(session, end) or forecasts.first_quote_day(session) in (None, end):
            return None
    learned, data = refit(db=db, forecast=forecast, now=now, days=days)
    if not data["days"]:
        return None
    with db.begin() as session:
        if forecasts.fitted_for(session, end):  # another worker got there first
            return None
        version = forecasts.store(
            session,
            forecast=learned,
            window_start=date.fromisoformat(data["window"][0]),
            window_end=end,
            data=data,
            now=now,
        )
    log.info(
        "learned forecast v%d from %d days: %.0f requests/day, willingness %.3f, median %.0f¢",
        version,
        len(data["days"]),
        learned.n,
        learned.v,
        learned.q_med_cents,
    )
    return version


def _aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def published_this_hour(db: Database, now: datetime) -> bool:
    start = hour_start(now)
    with db.read() as session:
        return published.is_published(
            session, valid_from=start, valid_until=start + timedelta(hours=1)
        )


def _engine_at(
    *, db: Database, rules: ShopRules, forecast: Forecast, now: datetime
) -> tuple[PricingEngine, int] | None:
    """The engine rebuilt from the database at ``now``, and the live unsold credit."""
    with db.begin() as session:
        supply = quotes.open_day(session, rules=rules, now=now)
        if supply.capacity_cents <= 0:
            return None
        records = views.settled_quotes(session, since=day_start(now), until=now, pending=True)
    engine = PricingEngine(EngineConfig(floor=rules.price_floor, beta=rules.price_beta))
    engine.start_day(day_start(now), supply.capacity_cents, forecast)
    for r in records:
        engine.observe(r.at, r.requested_cents, r.price_fraction, r.accepted)
    return engine, supply.unsold_cents


def _publish(db: Database, engine: PricingEngine, params: PricingParams, now: datetime) -> str:
    with db.begin() as session:
        digest = published.publish(session, params=params, now=now)
    log.info(
        "published curve %s from %s (arrivals≈%.0f, request≈%.0f¢, willingness≈%.3f)",
        digest[:12],
        params.valid_from.strftime("%H:%M:%S"),
        engine.arrival_estimate,
        engine.request_size_estimate,
        engine.willingness_estimate,
    )
    return digest


def replan(
    *,
    db: Database,
    rules: ShopRules,
    forecast: Forecast,
    now: datetime,
    force: bool = False,
) -> str | None:
    """Publish this hour's engine parameters (once per hour unless ``force``); their hash."""
    if not force and published_this_hour(db, now):
        return None
    built = _engine_at(db=db, rules=rules, forecast=forecast, now=now)
    if built is None:
        return None
    engine, unsold = built
    params = engine.replan(hour_start(now), remaining_cents=unsold)
    return _publish(db, engine, params, now)


def replan_on_drift(
    *, db: Database, rules: ShopRules, forecast: Forecast, now: datetime
) -> str | None:
    """Re-plan inside the hour when sales or demand drifted from the set in force.

    Only when the set in force is this hour's engine set (the hourly job ran), at least
    ``replan_every_minutes`` old, and the unsold credit or the estimated credit demand has
    moved more than ``replan_drift`` (log terms) from what it planned for. The new set is
    valid from ``now`` to the next top of the hour; its hash is returned (None: no re-plan).
    """
    cfg = EngineConfig()
    with db.read() as session:
        found = published.find_in_force(session, now=now)
        stored_at = published.published_at(session, found[1]) if found is not None else None
    if found is None or stored_at is None:
        return None
    params, _ = found
    this_hour = hour_start(now)
    if params.valid_from < this_hour or params.valid_until != this_hour + timedelta(hours=1):
        return None  # the day's default curve, or not this hour's: the hourly job's turn
    # planned when it was published (the hourly set may be published ahead or late)
    planned_at = min(now, max(_aware(stored_at), params.valid_from))
    if now - planned_at < timedelta(minutes=cfg.replan_every_minutes):
        return None
    built = _engine_at(db=db, rules=rules, forecast=forecast, now=now)
    if built is None:
        return None
    engine, unsold = built
    drift = plan_drift(params, now=now, remaining_cents=unsold)
    planned_n, planned_q = engine.demand_estimate(planned_at)
    n, q = engine.demand_estimate(now)
    volume_drift = abs(math.log((n * q) / max(planned_n * planned_q, 1e-9)))
    if max(drift, volume_drift) <= cfg.replan_drift:
        return None
    return _publish(db, engine, engine.replan(now, remaining_cents=unsold), now)
