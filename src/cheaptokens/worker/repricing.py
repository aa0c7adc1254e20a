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
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cheaptokens.models import Order, PricingParamsRow, Quote
from cheaptokens.orders import published, service
from cheaptokens.orders import state as st
from cheaptokens.pricing.curve import day_start
from cheaptokens.pricing.engine import EngineConfig, PricingEngine
from cheaptokens.pricing.forecast import Forecast, QuoteRecord, refit_forecast
from cheaptokens.shop import Shop

log = logging.getLogger(__name__)

#: how long before hh:00 the next hour's parameters are published
PUBLISH_AHEAD = timedelta(seconds=90)

ACCEPTED = (st.PAID, st.FULFILLED, st.EXPIRED, st.REFUNDED, st.FAILED)


def hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def forecast_of(shop: Shop) -> Forecast:
    s = shop.settings
    return Forecast(
        n=float(s.forecast_arrivals),
        v=float(s.forecast_willingness),
        q_med_cents=float(s.forecast_request_cents),
    )


def settled_quotes(session: Session, *, since: datetime, until: datetime) -> list[QuoteRecord]:
    """Quotes in ``[since, until)`` whose outcome is known: accepted if they became a paid
    order, declined if they lapsed or their checkout was declined or expired."""
    rows = session.execute(
        select(Quote.created_at, Quote.credit_cents, Quote.price_cents, Quote.status, Order.status)
        .outerjoin(Order, Order.quote_id == Quote.id)
        .where(Quote.created_at >= since, Quote.created_at < until)
        .order_by(Quote.created_at)
    ).all()
    records = []
    for created_at, credit, price, quote_status, order_status in rows:
        if quote_status == "open" or order_status == st.AWAITING_PAYMENT or not credit:
            continue  # not settled yet
        records.append(
            QuoteRecord(
                at=created_at,
                requested_cents=credit,
                price_fraction=Decimal(price) / Decimal(credit),
                accepted=order_status in ACCEPTED,
            )
        )
    return records


def refit(shop: Shop, *, days: int = 7, now: datetime | None = None) -> Forecast:
    """The nightly refit: the configured forecast moved towards the last ``days`` days."""
    now = now or shop.clock()
    end = day_start(now)
    with shop.readonly() as session:
        records = settled_quotes(session, since=end - timedelta(days=days), until=end)
    return refit_forecast(records, forecast_of(shop))


def published_this_hour(shop: Shop, now: datetime) -> bool:
    start = hour_start(now)
    with shop.readonly() as session:
        return (
            session.scalar(
                select(PricingParamsRow.hash).where(
                    PricingParamsRow.valid_from == start,
                    PricingParamsRow.valid_until == start + timedelta(hours=1),
                )
            )
            is not None
        )


def replan(shop: Shop, *, now: datetime | None = None, force: bool = False) -> str | None:
    """Publish this hour's engine parameters (once per hour unless ``force``); their hash."""
    now = now or shop.clock()
    if not force and published_this_hour(shop, now):
        return None
    with shop.sessions.begin() as session:
        supply = service.open_day(session, rules=shop.rules, now=now)
        if supply.capacity_cents <= 0:
            return None
        records = settled_quotes(session, since=day_start(now), until=now)
    rules = shop.rules
    engine = PricingEngine(EngineConfig(floor=rules.price_floor, beta=rules.price_beta))
    engine.start_day(day_start(now), supply.capacity_cents, forecast_of(shop))
    for r in records:
        engine.observe(r.at, r.requested_cents, r.price_fraction, r.accepted)
    params = engine.replan(now, remaining_cents=supply.remaining_cents)
    with shop.sessions.begin() as session:
        digest = published.publish(session, params=params, now=now)
    log.info(
        "published hour %s curve %s (arrivals≈%.0f, willingness≈%.3f)",
        hour_start(now).strftime("%H:%M"),
        digest[:12],
        engine.arrival_estimate,
        engine.willingness_estimate,
    )
    return digest
