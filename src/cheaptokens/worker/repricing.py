"""The hourly re-plan: feed the day's quotes to the pricing engine and publish its curve.

At 00:00 UTC and at the top of every hour (checked on the worker's upkeep timer) the
engine is rebuilt from the database — the day's capacity, the operator's forecast and
every settled quote of the day so far (a quote that became a paid order was *accepted*;
one that lapsed, or whose checkout was declined or expired, was *declined*; quotes still
open are left for the next hour) — and re-solves the fluid problem from the live
remaining credit. The resulting parameter set is valid for that hour and published under
its hash, so every quote stays recomputable from the published formula.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cheaptokens.config import Settings
from cheaptokens.db import Database
from cheaptokens.orders import published, quotes, views
from cheaptokens.orders.rules import ShopRules
from cheaptokens.pricing.engine import EngineConfig, PricingEngine
from cheaptokens.pricing.forecast import Forecast, refit_forecast
from cheaptokens.times import day_start

log = logging.getLogger(__name__)

#: how long before hh:00 the next hour's parameters are published
PUBLISH_AHEAD = timedelta(seconds=90)


def hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def forecast_of(settings: Settings) -> Forecast:
    """The operator's forecast of a day's demand, from the settings."""
    return Forecast(
        n=float(settings.forecast_arrivals),
        v=float(settings.forecast_willingness),
        q_med_cents=float(settings.forecast_request_cents),
    )


def refit(*, db: Database, forecast: Forecast, now: datetime, days: int = 7) -> Forecast:
    """The nightly refit: the configured forecast moved towards the last ``days`` days."""
    end = day_start(now)
    with db.read() as session:
        records = views.settled_quotes(session, since=end - timedelta(days=days), until=end)
    return refit_forecast(records, forecast)


def published_this_hour(db: Database, now: datetime) -> bool:
    start = hour_start(now)
    with db.read() as session:
        return published.is_published(
            session, valid_from=start, valid_until=start + timedelta(hours=1)
        )


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
    with db.begin() as session:
        supply = quotes.open_day(session, rules=rules, now=now)
        if supply.capacity_cents <= 0:
            return None
        records = views.settled_quotes(session, since=day_start(now), until=now)
    engine = PricingEngine(EngineConfig(floor=rules.price_floor, beta=rules.price_beta))
    engine.start_day(day_start(now), supply.capacity_cents, forecast)
    for r in records:
        engine.observe(r.at, r.requested_cents, r.price_fraction, r.accepted)
    params = engine.replan(now, remaining_cents=supply.unsold_cents)
    with db.begin() as session:
        digest = published.publish(session, params=params, now=now)
    log.info(
        "published hour %s curve %s (arrivals≈%.0f, willingness≈%.3f)",
        hour_start(now).strftime("%H:%M"),
        digest[:12],
        engine.arrival_estimate,
        engine.willingness_estimate,
    )
    return digest
