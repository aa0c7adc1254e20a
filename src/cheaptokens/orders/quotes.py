"""The day's supply and quotes: a price locked for a moment, with the credit reserved.

Every function takes the session of the caller's transaction and the time (``now``); none
commits. Capacity moves through :mod:`cheaptokens.inventory`; each move has its ledger row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cheaptokens import inventory, ledger
from cheaptokens.errors import InvalidInput, SoldOut
from cheaptokens.models import Quote
from cheaptokens.orders import published
from cheaptokens.orders.ids import new_quote_id
from cheaptokens.orders.rules import ShopRules
from cheaptokens.pricing.curve import quote_price_cents
from cheaptokens.times import iso_z, next_midnight


def open_day(session: Session, *, rules: ShopRules, now: datetime) -> inventory.Supply:
    """Today's supply, opening the day for every enabled account on its first request
    (an account enabled later in the day joins at the next 00:00 UTC)."""
    day = now.date()
    supply = inventory.supply(session, day=day)
    if supply.rooms:
        return supply
    inventory.ensure_day(
        session, day=day, sell_fraction=rules.sell_fraction, margin_cents=rules.margin_cents
    )
    return inventory.supply(session, day=day)


def sold_out(now: datetime, remaining: int) -> SoldOut:
    back = next_midnight(now)
    return SoldOut(
        f"sold out for today: {remaining} cents of credit left, new credit at {iso_z(back)}",
        available_cents=remaining,
        returns_at=back,
    )


def validate_amount(credit_cents: object, *, rules: ShopRules, field: str = "credit_cents") -> int:
    if isinstance(credit_cents, bool) or not isinstance(credit_cents, int):
        raise InvalidInput("credit_cents must be a whole number of cents", field=field)
    if credit_cents < rules.min_order_cents:
        raise InvalidInput(f"credit_cents must be at least {rules.min_order_cents}", field=field)
    if credit_cents > rules.max_order_cents:
        raise InvalidInput(f"credit_cents must be at most {rules.max_order_cents}", field=field)
    return credit_cents


def create_quote(session: Session, *, rules: ShopRules, credit_cents: int, now: datetime) -> Quote:
    """Lock a price for ``credit_cents`` for ``rules.quote_ttl`` and reserve the credit."""
    validate_amount(credit_cents, rules=rules)
    supply = open_day(session, rules=rules, now=now)
    remaining = supply.remaining_cents
    if remaining < credit_cents:
        raise sold_out(now, remaining)
    params, digest = published.in_force(
        session, now=now, capacity_cents=supply.capacity_cents, rules=rules
    )
    account = inventory.reserve(session, day=now.date(), credit_cents=credit_cents, supply=supply)
    if account is None:
        raise sold_out(now, inventory.supply(session, day=now.date()).remaining_cents)
    price = quote_price_cents(params, now=now, remaining_cents=remaining, credit_cents=credit_cents)
    quote = Quote(
        id=new_quote_id(),
        created_at=now,
        valid_until=min(now + rules.quote_ttl, next_midnight(now)),
        day=now.date(),
        account=account,
        credit_cents=credit_cents,
        price_cents=price,
        remaining_cents=remaining,
        params_hash=digest,
        status="open",
    )
    session.add(quote)
    ledger.record(
        session,
        kind="quote_reserved",
        now=now,
        quote_id=quote.id,
        account=account,
        day=quote.day,
        credit_cents=credit_cents,
        detail={"price_cents": price, "remaining_cents": remaining, "params_hash": digest},
    )
    return quote


def release_quote(session: Session, *, quote: Quote, now: datetime) -> None:
    """An open quote lapsed: its reservation goes back on sale."""
    if quote.status != "open":
        return
    quote.status = "released"
    inventory.release(
        session, account=quote.account, day=quote.day, credit_cents=quote.credit_cents
    )
    ledger.record(
        session,
        kind="quote_released",
        now=now,
        quote_id=quote.id,
        account=quote.account,
        day=quote.day,
        credit_cents=-quote.credit_cents,
    )
