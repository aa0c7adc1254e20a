"""Use cases that span a transaction and an outside call (payments, Venice).

The web handlers call these; each opens its own short transactions so that no
database lock is held while a provider is on the line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from cheaptokens import failpoints, inventory
from cheaptokens.errors import InvalidInput, NotFound, ServiceUnavailable
from cheaptokens.models import AccountDay, Order, Quote
from cheaptokens.money import dollars_to_cents_up
from cheaptokens.orders import published, service
from cheaptokens.orders import state as st
from cheaptokens.payments import PaymentEvent
from cheaptokens.payments.errors import PaymentError
from cheaptokens.pricing.curve import (
    PricingParams,
    discount,
    params_to_dict,
    price_fraction,
)
from cheaptokens.shop import Shop
from cheaptokens.venice import errors as venice_errors

log = logging.getLogger(__name__)


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


def pricing_now(shop: Shop) -> PricingView:
    """The live price: a read-only look-up, except on the first call of a day (or of a
    parameter set), which opens the day and publishes the default curve."""
    now = shop.clock()
    with shop.readonly() as session:
        supply = inventory.supply(session, day=now.date())
        found = published.find_in_force(session, now=now) if supply.capacity_cents else None
    if found is None:
        with shop.sessions.begin() as session:
            supply = service.open_day(session, rules=shop.rules, now=now)
            found = published.in_force(
                session, now=now, capacity_cents=supply.capacity_cents, rules=shop.rules
            )
    params, digest = found
    remaining = supply.remaining_cents
    return PricingView(
        now=now,
        params=params,
        params_hash=digest,
        fraction=price_fraction(params, now=now, remaining_cents=remaining),
        discount=discount(params, now=now, remaining_cents=remaining),
        capacity_cents=supply.capacity_cents,
        sold_cents=supply.sold_cents,
        reserved_cents=supply.reserved_cents,
        remaining_cents=remaining,
    )


def params_body(shop: Shop, digest: str) -> dict[str, object]:
    with shop.sessions() as session:
        params = published.by_hash(session, digest)
    if params is None:
        raise NotFound("no published parameter set with that hash", field="hash")
    return params_to_dict(params)


def new_quote(shop: Shop, *, credit_cents: int) -> Quote:
    now = shop.clock()
    with shop.sessions.begin() as session:
        return service.create_quote(session, rules=shop.rules, credit_cents=credit_cents, now=now)


def new_order(
    shop: Shop,
    *,
    quote_id: str | None,
    credit_cents: int | None,
    idempotency_key: str | None,
    client: str | None,
) -> service.Placed:
    """Place the order, then open the provider's checkout (outside the transaction)."""
    now = shop.clock()
    with shop.sessions.begin() as session:
        placed = service.place_order(
            session,
            rules=shop.rules,
            token_key=shop.token_key,
            provider=shop.payments.name,
            now=now,
            quote_id=quote_id,
            credit_cents=credit_cents,
            idempotency_key=idempotency_key,
            client=client,
        )
        order = placed.order
        if not placed.created and order.checkout_url:
            return placed
        order_id, price, expires = order.id, order.price_cents, order.checkout_expires_at
        credit = order.credit_cents
    failpoints.hit("checkout.after_order_commit")
    base = shop.settings.public_url
    try:
        checkout = shop.payments.create_checkout(
            order_id=order_id,
            amount_cents=price,
            currency=shop.rules.currency,
            description=f"${credit / 100:.2f} of Venice.ai credit, valid until 00:00 UTC",
            # The token rides in the fragment: browsers never send it to a server, and keep
            # it across the redirect from /checkout/return to the order page.
            success_url=(
                f"{base}/checkout/return?order={order_id}"
                f"&session_id={{CHECKOUT_SESSION_ID}}#token={placed.token}"
            ),
            cancel_url=f"{base}/?cancelled={order_id}",
            expires_at=expires,
        )
    except PaymentError as exc:
        with shop.sessions.begin() as session:
            o = session.get(Order, order_id, with_for_update=True)
            if o is not None:
                service.cancel(session, order=o, now=shop.clock(), reason="checkout failed")
        raise ServiceUnavailable(
            "the payment provider could not open a checkout; nothing was charged, try again"
        ) from exc
    with shop.sessions.begin() as session:
        o = session.get(Order, order_id)
        assert o is not None
        service.attach_checkout(session, order=o, checkout=checkout, now=shop.clock())
    return service.Placed(o, placed.token, placed.created)


def apply_payment_event(shop: Shop, event: PaymentEvent) -> None:
    with shop.sessions.begin() as session:
        service.record_payment_event(
            session, event=event, provider=shop.payments.name, now=shop.clock()
        )
        failpoints.hit("payment.before_commit")
    failpoints.hit("payment.after_commit")


def order_for(shop: Shop, *, order_id: str, token: str) -> Order:
    with shop.sessions() as session:
        return service.authorize(session, order_id=order_id, token=token)


def reveal_key(shop: Shop, order: Order) -> str | None:
    """The buyer's key in clear, while the shop still holds it."""
    if order.key_secret is None:
        return None
    return shop.box.open(order.key_secret, context=order.id)


def confirm_receipt(shop: Shop, *, order_id: str, token: str) -> Order:
    with shop.sessions.begin() as session:
        order = service.authorize(session, order_id=order_id, token=token)
        if order.status not in (st.FULFILLED, st.EXPIRED):
            raise InvalidInput("the key is not ready yet", field="status")
        service.confirm_receipt(session, order=order, now=shop.clock())
        return order


@dataclass(frozen=True, slots=True)
class Usage:
    used_cents: int
    remaining_cents: int
    credit_cents: int
    expires_at: datetime | None
    seconds_left: int
    checked_at: datetime | None
    live: bool


def usage(shop: Shop, *, order_id: str, token: str) -> Usage:
    order = order_for(shop, order_id=order_id, token=token)
    now = shop.clock()
    used, checked, live = order.used_cents or 0, order.usage_checked_at, False
    gateway = shop.gateways.get(order.account)
    if order.status == st.FULFILLED and order.key_id and gateway is not None:
        try:
            key = gateway.get_key(order.key_id)
            used = dollars_to_cents_up(key.period_usage)
            checked, live = now, True
        except venice_errors.VeniceError:
            log.info("usage for %s: Venice unavailable, showing the last reading", order_id)
    expires = order.key_expires_at
    left = max(0, int((expires - now).total_seconds())) if expires else 0
    return Usage(
        used_cents=used,
        remaining_cents=max(0, order.credit_cents - used) if order.status == st.FULFILLED else 0,
        credit_cents=order.credit_cents,
        expires_at=expires,
        seconds_left=left,
        checked_at=checked,
        live=live,
    )


def accounts_today(shop: Shop) -> list[AccountDay]:
    now = shop.clock()
    with shop.sessions.begin() as session:
        service.open_day(session, rules=shop.rules, now=now)
        return list(session.scalars(select(AccountDay).where(AccountDay.day == now.date())).all())
