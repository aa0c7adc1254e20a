"""Use cases that span transactions and outside calls (payments, Venice), for the web
handlers and the command line.

Each opens its own short transactions, so no database lock is held while a provider is on
the line, and takes exactly the collaborators it uses (the database, the rules, a payment
provider, ...), so its signature says what it touches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from sqlalchemy.orm import Session

from cheaptokens import failpoints, inventory
from cheaptokens.config import Settings
from cheaptokens.db import Database
from cheaptokens.errors import (
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from cheaptokens.models import Order, Quote, Topup
from cheaptokens.money import dollars_to_cents_up, format_usd
from cheaptokens.orders import (
    events,
    forecasts,
    history,
    published,
    quotes,
    retention,
    topups,
    transitions,
    views,
    webhooks,
)
from cheaptokens.orders import state as st
from cheaptokens.orders.ids import authorize, is_topup_id
from cheaptokens.orders.payment_events import record_payment_event
from cheaptokens.orders.rules import REISSUE_REASON, ShopRules
from cheaptokens.payments import PaymentEvent, PaymentProvider
from cheaptokens.payments.errors import PaymentError
from cheaptokens.pricing.curve import PricingParams, discount, params_to_dict, price_fraction
from cheaptokens.secretbox import SecretBox
from cheaptokens.times import Clock, next_midnight
from cheaptokens.venice import errors as venice_errors
from cheaptokens.venice.keys import KeyCount
from cheaptokens.venice.types import VeniceGateway

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- pricing
@dataclass(frozen=True, slots=True)
class PricingView:
    now: datetime
    params: PricingParams
    params_hash: str
    fraction: Decimal
    discount: Decimal
    capacity_cents: int
    sold_cents: int
    reserved_cents: int
    remaining_cents: int
    #: kept off sale: the accounts' live balances cannot cover it (docs/money-safety.md)
    withheld_cents: int = 0
    #: the price's x: neither sold nor withheld (open holds do not move the price)
    unsold_cents: int = 0


def pricing_now(*, db: Database, rules: ShopRules, now: datetime) -> PricingView:
    """The live price: a read-only look-up, except on the first call of a day (or of a
    parameter set), which opens the day and publishes the default curve."""
    with db.read() as session:
        supply = inventory.supply(session, day=now.date())
        found = published.find_in_force(session, now=now) if supply.capacity_cents else None
    if found is None:
        with db.begin() as session:
            supply = quotes.open_day(session, rules=rules, now=now)
            found = published.in_force(
                session, now=now, capacity_cents=supply.capacity_cents, rules=rules
            )
    params, digest = found
    remaining, unsold = supply.remaining_cents, supply.unsold_cents
    return PricingView(
        now=now,
        params=params,
        params_hash=digest,
        fraction=price_fraction(params, now=now, remaining_cents=unsold),
        discount=discount(params, now=now, remaining_cents=unsold),
        capacity_cents=supply.capacity_cents,
        sold_cents=supply.sold_cents,
        reserved_cents=supply.reserved_cents,
        remaining_cents=remaining,
        withheld_cents=supply.withheld_cents,
        unsold_cents=unsold,
    )


def first_hold_end(*, db: Database, now: datetime) -> datetime | None:
    """When the first open quote or unpaid checkout of today may lapse."""
    with db.read() as session:
        return quotes.earliest_hold_end(session, day=now.date(), now=now)


def params_body(*, db: Database, digest: str) -> dict[str, object]:
    with db.read() as session:
        params = published.by_hash(session, digest)
    if params is None:
        raise NotFound("no published parameter set with that hash", field="hash")
    return params_to_dict(params)


@dataclass(frozen=True, slots=True)
class Storefront:
    """What the home page shows: the price now, the day's sales, where the capacity comes
    from, and when held credit may return."""

    pricing: PricingView
    sales: list[views.Sale]
    capacity: inventory.Capacity
    holds_end: datetime | None


def storefront(*, db: Database, rules: ShopRules, now: datetime) -> Storefront:
    pricing = pricing_now(db=db, rules=rules, now=now)
    with db.read() as session:
        sales = views.sales_on(session, day=now.date())
        made = inventory.capacity(session, day=now.date(), sell_fraction=rules.sell_fraction)
        holds_end = quotes.earliest_hold_end(session, day=now.date(), now=now)
    return Storefront(pricing, sales, made, holds_end)


# ----------------------------------------------------------------------------- buying
def quote_rate(*, db: Database, quote: Quote) -> tuple[Decimal, int]:
    """The price fraction a quote was made at, and the list price in cents per dollar: the
    published curve at the quote's time and unsold credit (docs/pricing.md recomputes it)."""
    with db.read() as session:
        params = published.by_hash(session, quote.params_hash)
    if params is None:  # the quote's own transaction published it
        raise RuntimeError("a quote's parameter set is missing")
    fraction = price_fraction(params, now=quote.created_at, remaining_cents=quote.remaining_cents)
    return fraction, params.list_cents


def new_quote(
    *,
    db: Database,
    rules: ShopRules,
    credit_cents: int,
    now: datetime,
    client: str | None = None,
) -> Quote:
    with db.begin() as session:
        return quotes.create_quote(
            session, rules=rules, credit_cents=credit_cents, now=now, client=client
        )


def new_order(
    *,
    db: Database,
    rules: ShopRules,
    payments: PaymentProvider,
    token_key: bytes,
    public_url: str,
    clock: Clock,
    quote_id: str | None,
    credit_cents: int | None,
    idempotency_key: str | None,
    client: str | None,
    key_models: str = "private",
    webhook_url: str | None = None,
    webhook_policy: webhooks.UrlPolicy | None = None,
    box: SecretBox | None = None,
) -> transitions.Placed:
    """Place the order, then open the provider's checkout (outside the transaction).

    With ``webhook_url`` (checked against ``webhook_policy`` first, outside the transaction)
    the order gets a webhook, registered in the order's own transaction; its signing secret
    is in the result once (``Placed.webhook_secret``), never on an idempotent replay."""
    if webhook_url is not None:
        if webhook_policy is None or box is None:
            raise InvalidInput("this shop does not take webhooks here", field="webhook_url")
        webhooks.check(webhook_url, webhook_policy)
    secret = None
    with db.begin() as session:
        placed = transitions.place_order(
            session,
            rules=rules,
            token_key=token_key,
            provider=payments.name,
            now=clock(),
            quote_id=quote_id,
            credit_cents=credit_cents,
            idempotency_key=idempotency_key,
            client=client,
            key_models=key_models,
        )
        order = placed.order
        if placed.created and webhook_url is not None and box is not None:
            secret = events.register(
                session, order_id=order.id, url=webhook_url, box=box, now=clock()
            )
        elif not placed.created and events.webhook_url(session, order_id=order.id) != webhook_url:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used with a different request",
                field="Idempotency-Key",
            )
        if not placed.created and order.checkout_url:
            return placed
        order_id, price, expires = order.id, order.price_cents, order.checkout_expires_at
        credit = order.credit_cents
    failpoints.hit("checkout.after_order_commit")
    try:
        checkout = payments.create_checkout(
            order_id=order_id,
            amount_cents=price,
            currency=rules.currency,
            description=f"{format_usd(credit)} of Venice.ai credit, valid until 00:00 UTC",
            # The token rides in the fragment: browsers never send it to a server, and keep
            # it across the redirect from /checkout/return to the order page.
            success_url=(
                f"{public_url}/checkout/return?order={order_id}"
                f"&session_id={{CHECKOUT_SESSION_ID}}#token={placed.token}"
            ),
            cancel_url=f"{public_url}/?cancelled={order_id}",
            expires_at=expires,
        )
    except PaymentError as exc:
        with db.begin() as session:
            o = session.get(Order, order_id, with_for_update=True)
            if o is not None:
                transitions.cancel(session, order=o, now=clock(), reason="checkout failed")
        raise ServiceUnavailable(
            "the payment provider could not open a checkout; nothing was charged, try again"
        ) from exc
    with db.begin() as session:
        transitions.attach_checkout(session, order, checkout=checkout, now=clock())
    return transitions.Placed(order, placed.token, placed.created, webhook_secret=secret)


def apply_payment_event(*, db: Database, provider: str, event: PaymentEvent, now: datetime) -> None:
    with db.begin() as session:
        record_payment_event(session, event=event, provider=provider, now=now)
        failpoints.hit("payment.before_commit")
    failpoints.hit("payment.after_commit")


# ----------------------------------------------------------------------------- the key
def order_for(*, db: Database, order_id: str, token: str) -> Order:
    with db.read() as session:
        return authorize(session, order_id=order_id, token=token)


def reveal_key(*, box: SecretBox, order: Order) -> str | None:
    """The buyer's key in clear, while the shop still holds it."""
    if order.key_secret is None:
        return None
    return box.open(order.key_secret, context=order.id)


def confirm_receipt(*, db: Database, order_id: str, token: str, now: datetime) -> Order:
    with db.begin() as session:
        order = authorize(session, order_id=order_id, token=token)
        transitions.confirm_receipt(session, order=order, now=now)
        return order


def new_topup(
    *,
    db: Database,
    rules: ShopRules,
    payments: PaymentProvider,
    public_url: str,
    clock: Clock,
    order_id: str,
    token: str,
    credit_cents: int,
    idempotency_key: str | None,
    client: str | None,
) -> topups.PlacedTopup:
    """More credit on the same key: reserve it on the key's account at today's price, then
    open the provider's checkout (outside the transaction). Paying it raises the key's cap."""
    with db.begin() as session:
        order = authorize(session, order_id=order_id, token=token)
        session.refresh(order, with_for_update=True)
        placed = topups.place_topup(
            session,
            order=order,
            rules=rules,
            credit_cents=credit_cents,
            provider=payments.name,
            now=clock(),
            idempotency_key=idempotency_key,
            client=client,
        )
        topup = placed.topup
        if not placed.created and topup.checkout_url:
            return placed
        topup_id, price, expires = topup.id, topup.price_cents, topup.checkout_expires_at
    try:
        checkout = payments.create_checkout(
            order_id=topup_id,
            amount_cents=price,
            currency=rules.currency,
            description=f"{format_usd(credit_cents)} more Venice.ai credit on your key, "
            "valid until 00:00 UTC",
            success_url=f"{public_url}/orders/{order_id}?topup={topup_id}#token={token}",
            cancel_url=f"{public_url}/orders/{order_id}#token={token}",
            expires_at=expires,
        )
    except PaymentError as exc:
        with db.begin() as session:
            t = session.get(Topup, topup_id, with_for_update=True)
            if t is not None:
                topups.cancel(session, topup=t, now=clock(), reason="checkout failed")
        raise ServiceUnavailable(
            "the payment provider could not open a checkout; nothing was charged, try again"
        ) from exc
    with db.begin() as session:
        t = session.get(Topup, topup_id)
        assert t is not None
        topups.attach_checkout(t, checkout=checkout, now=clock())
    return topups.PlacedTopup(t, placed.created)


def order_paid_for(*, db: Database, payment_for: str) -> str:
    """The order a payment was for: itself, or the order a top-up adds credit to."""
    if not is_topup_id(payment_for):
        return payment_for
    with db.read() as session:
        topup = session.get(Topup, payment_for)
        return topup.order_id if topup is not None else payment_for


def topups_of(*, db: Database, order_id: str) -> list[Topup]:
    with db.read() as session:
        return topups.of_order(session, order_id=order_id)


#: How many times a day one order's key may be reissued.
REISSUES_PER_DAY = 3


def reissue(*, db: Database, order_id: str, token: str, now: datetime) -> Order:
    """The buyer lost the key: the worker deletes it first, then makes a new one with the
    unspent credit (cap − usage at the moment of deletion), shown once like the first."""
    with db.begin() as session:
        order = authorize(session, order_id=order_id, token=token)
        session.refresh(order, with_for_update=True)
        begin_reissue(session, order=order, now=now)
        return order


def begin_reissue(session: Session, *, order: Order, now: datetime) -> None:
    """The checks of a reissue (a live key, at most :data:`REISSUES_PER_DAY` a day), then the
    replacement: for the order token's holder, or for the wallet that paid (x402)."""
    if order.status != st.FULFILLED or order.key_id is None or order.key_deleted_at:
        raise InvalidInput(
            f"only a live key can be reissued (this order is {order.status})", field="status"
        )
    if views.reissues_today(session, order_id=order.id, now=now) >= REISSUES_PER_DAY:
        raise RateLimited(
            f"this key was reissued {REISSUES_PER_DAY} times today already; keep the "
            "last one, or buy a new key",
            retry_after=max(1, int((next_midnight(now) - now).total_seconds())),
        )
    transitions.begin_replacement(session, order=order, reason=REISSUE_REASON, now=now)


@dataclass(frozen=True, slots=True)
class Usage:
    used_cents: int
    remaining_cents: int
    credit_cents: int
    expires_at: datetime | None
    seconds_left: int
    checked_at: datetime | None
    live: bool
    #: the order's average spend per hour since its key was made (None: too early to say)
    burn_cents_per_hour: int | None = None
    #: at that rate, when the key's credit runs out — None when it lasts until it expires
    runs_out_at: datetime | None = None


#: The burn rate is not estimated from less than this much time (the key just made).
MIN_BURN_WINDOW = timedelta(seconds=1)


def burn(
    *,
    used_cents: int,
    remaining_cents: int,
    since: datetime | None,
    now: datetime,
    expires_at: datetime | None,
) -> tuple[int | None, datetime | None]:
    """Spend per hour (rounded up) since ``since``, and when ``remaining_cents`` runs out at
    that rate (None if not before ``expires_at``)."""
    if since is None or used_cents <= 0 or now - since < MIN_BURN_WINDOW:
        return None, None
    hours = Decimal((now - since).total_seconds()) / 3600
    rate = Decimal(used_cents) / hours
    per_hour = int(rate.to_integral_value(rounding=ROUND_CEILING))
    runs_out = now + timedelta(hours=float(Decimal(remaining_cents) / rate))
    if expires_at is not None and runs_out >= expires_at:
        return per_hour, None
    return per_hour, runs_out


def usage(
    *,
    db: Database,
    gateways: Mapping[str, VeniceGateway],
    order_id: str,
    token: str,
    now: datetime,
) -> Usage:
    """What the order's key has spent: read from Venice now, or the last reading."""
    order = order_for(db=db, order_id=order_id, token=token)
    used, checked, live = order.used_cents or 0, order.usage_checked_at, False
    gateway = gateways.get(order.account)
    if order.status == st.FULFILLED and order.key_id and gateway is not None:
        try:
            key = gateway.get_key(order.key_id)
            used = dollars_to_cents_up(key.period_usage)
            checked, live = now, True
        except venice_errors.VeniceError:
            log.info("usage for %s: Venice unavailable, showing the last reading", order_id)
    expires = order.key_expires_at
    left = max(0, int((expires - now).total_seconds())) if expires else 0
    cap = order.key_cap_cents  # the current key's cap (lower after a replacement)
    remaining = max(0, cap - used) if order.status == st.FULFILLED else 0
    rate, runs_out = (None, None)
    if order.status == st.FULFILLED:
        rate, runs_out = burn(
            used_cents=order.spent_before_cents + used,
            remaining_cents=remaining,
            since=order.fulfilled_at,
            now=now,
            expires_at=expires,
        )
    return Usage(
        used_cents=used,
        remaining_cents=remaining,
        credit_cents=cap,
        expires_at=expires,
        seconds_left=left,
        checked_at=checked,
        live=live,
        burn_cents_per_hour=rate,
        runs_out_at=runs_out,
    )


# ----------------------------------------------------------------------------- webhooks
#: Orders whose webhook may still be set (their key is coming, live or being replaced).
WEBHOOK_STATUSES = (st.AWAITING_PAYMENT, st.PAID, st.FULFILLED, st.REPLACING)


def set_webhook(
    *,
    db: Database,
    box: SecretBox,
    policy: webhooks.UrlPolicy,
    order_id: str,
    token: str,
    url: str,
    now: datetime,
) -> str:
    """Set (or replace) the order's webhook; returns the new signing secret, shown once.
    The URL is checked before the transaction (a look-up is I/O)."""
    with db.read() as session:
        authorize(session, order_id=order_id, token=token)
    webhooks.check(url, policy)
    with db.begin() as session:
        order = authorize(session, order_id=order_id, token=token)
        if order.status not in WEBHOOK_STATUSES:
            raise InvalidInput(
                f"an order that is {order.status} sends no more events", field="status"
            )
        return events.register(session, order_id=order.id, url=url, box=box, now=now)


def webhook_of(*, db: Database, order_id: str) -> str | None:
    """The order's webhook URL (no secret), None without one."""
    with db.read() as session:
        return events.webhook_url(session, order_id=order_id)


def deliveries(*, db: Database, order_id: str, token: str) -> events.DeliveryLog:
    """The order's webhook and the log of its events (the order token is required)."""
    with db.read() as session:
        authorize(session, order_id=order_id, token=token)
        return events.delivery_log(session, order_id=order_id)


# ----------------------------------------------------------------------------- operator
def refund_order(*, db: Database, order_id: str, reason: str, now: datetime) -> None:
    """The operator's refund: queued in one transaction, the order row locked (the worker
    deletes the key and refunds the payment). Raises InvalidInput if it cannot be refunded."""
    with db.begin() as session:
        order = session.get(Order, order_id, with_for_update=True)
        if order is None:
            raise NotFound("no such order", field="order_id")
        transitions.request_refund(session, order=order, reason=reason, now=now)


def accounts_today(*, db: Database, rules: ShopRules, now: datetime) -> list[views.AccountToday]:
    with db.begin() as session:
        quotes.open_day(session, rules=rules, now=now)
        return views.accounts_on(session, day=now.date())


@dataclass(frozen=True, slots=True)
class Dashboard:
    pricing: PricingView
    today: views.Today
    past: list[views.PastDay]
    sales: list[views.Sale]
    orders: list[views.OrderRow]
    alerts: list[views.AlertRow]
    keys: list[KeyCount]


def dashboard(*, db: Database, rules: ShopRules, now: datetime) -> Dashboard:
    """Everything the operator's dashboard shows of the shop's own records."""
    pricing = pricing_now(db=db, rules=rules, now=now)  # opens the day if it must
    with db.read() as session:
        return Dashboard(
            pricing=pricing,
            today=views.today(session, day=now.date()),
            past=views.past_days(session, today=now.date()),
            sales=views.sales_on(session, day=now.date()),
            orders=views.recent_orders(session),
            alerts=views.recent_alerts(session),
            keys=views.key_counts(session),
        )


def forecast_days(
    *, db: Database, settings: Settings, today: date, days: int = 14
) -> list[forecasts.ForecastDay]:
    """The dashboard's forecast-against-actual table for the last ``days`` days."""
    with db.read() as session:
        return forecasts.forecast_vs_actual(
            session, configured=forecasts.configured(settings), today=today, days=days
        )


_HISTORY: dict[int, tuple[Database, date, dict[int, list[history.HistoryDay]]]] = {}


def pricing_history(*, db: Database, today: date, days: int) -> list[history.HistoryDay]:
    """Past days' curves, sets and sell-outs (days before ``today``), computed once per
    database, day and ``days`` (past days do not change; a public page must not cost a
    month of queries per request)."""
    if not 1 <= days <= history.MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {history.MAX_DAYS}", field="days")
    entry = _HISTORY.get(id(db))
    if entry is None or entry[0] is not db or entry[1] != today:
        if len(_HISTORY) > 8:
            _HISTORY.clear()
        entry = (db, today, {})
        _HISTORY[id(db)] = entry
    found = entry[2].get(days)
    if found is None:
        with db.read() as session:
            found = history.past_days(session, today=today, days=days)
        entry[2][days] = found
    return found


def retention_of(settings: Settings) -> retention.Retention:
    return retention.Retention(
        quotes_days=settings.retain_quotes_days,
        webhook_events_days=settings.retain_webhook_events_days,
        jobs_days=settings.retain_jobs_days,
        pool_keys_days=settings.retain_pool_keys_days,
        alerts_days=settings.retain_alerts_days,
        sessions_days=settings.retain_sessions_days,
    )


def prune(
    *, db: Database, policy: retention.Retention, now: datetime, dry_run: bool = False
) -> dict[str, int]:
    """Forget what the retention policy says is of no more use, batch by batch."""
    total: dict[str, int] = {}
    while True:
        with db.begin() as session:
            gone = retention.prune_batch(session, policy=policy, now=now, dry_run=dry_run)
        for name, n in gone.items():
            total[name] = total.get(name, 0) + n
        if dry_run or not any(gone.values()):
            return total


def list_orders(*, db: Database, status: str | None, limit: int) -> list[views.OrderRow]:
    with db.read() as session:
        return views.recent_orders(session, limit=limit, status=status)


def order_detail(*, db: Database, order_id: str) -> views.OrderDetail | None:
    with db.read() as session:
        return views.order_detail(session, order_id=order_id)
