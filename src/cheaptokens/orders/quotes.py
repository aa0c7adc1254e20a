"""The day's supply and quotes: a price locked for a moment, with the credit reserved.

Every function takes the session of the caller's transaction and the time (``now``); none
commits. Capacity moves through :mod:`cheaptokens.inventory`; each move has its ledger row.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, literal_column, select, text
from sqlalchemy.orm import Session

from cheaptokens import inventory, ledger
from cheaptokens.db import dialect_name
from cheaptokens.errors import HeldOut, HoldLimit, InvalidInput, SoldOut
from cheaptokens.models import Order, Quote, table_of
from cheaptokens.money import format_usd
from cheaptokens.orders import published
from cheaptokens.orders import state as st
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
        f"sold out for today: {remaining} cents ({format_usd(remaining)}) of credit left, "
        f"new credit at {iso_z(back)}",
        available_cents=remaining,
        returns_at=back,
    )


def unavailable(
    session: Session, *, supply: inventory.Supply, credit_cents: int, now: datetime
) -> SoldOut:
    """Why ``credit_cents`` cannot be had now: sold out until 00:00 UTC, or — when open
    quotes and checkouts hold what is left — held out until the first hold may lapse."""
    if supply.unsold_cents < credit_cents:
        return sold_out(now, supply.remaining_cents)
    held_until = earliest_hold_end(session, day=now.date(), now=now)
    if held_until is None:
        # Nothing is held: what is left is split over accounts, and a key draws on one.
        largest = max((room for _, room in supply.rooms), default=0)
        return SoldOut(
            f"{supply.remaining_cents} cents of credit are left today, spread over accounts: a "
            f"key draws on one, so {largest} cents is the most one order can have now",
            available_cents=largest,
            returns_at=next_midnight(now),
        )
    back = held_until
    return HeldOut(
        f"{supply.remaining_cents} cents of credit are free now; the rest is held by open quotes "
        f"and checkouts that have not been paid: some may return at {iso_z(back)}",
        available_cents=supply.remaining_cents,
        returns_at=back,
    )


def earliest_hold_end(session: Session, *, day: date, now: datetime) -> datetime | None:
    """When the first open quote or unpaid checkout of ``day`` lapses (if any is open)."""
    quote_end = session.scalar(
        select(func.min(Quote.valid_until)).where(
            Quote.day == day, Quote.status == "open", Quote.valid_until > now
        )
    )
    order_end = session.scalar(
        select(func.min(Order.checkout_expires_at)).where(
            Order.day == day,
            Order.status == st.AWAITING_PAYMENT,
            Order.checkout_expires_at > now,
        )
    )
    ends = [e for e in (quote_end, order_end) if e is not None]
    return min(ends) if ends else None


# Statements of every quote and order, built once (Core, on the tables): building them per
# call was a good part of a quote's CPU (bench/README.md, "Throughput").
_QUOTES = table_of(Quote).c
_ORDERS = table_of(Order).c
_QUOTES_HELD = select(
    func.coalesce(func.sum(_QUOTES.credit_cents), 0), func.min(_QUOTES.valid_until)
).where(
    _QUOTES.client == bindparam("client"),
    # Spelled out, not a bound parameter: PostgreSQL's generic plan (used once a statement has
    # run a few times) cannot match a bound value to the partial index of open quotes.
    _QUOTES.status == literal_column("'open'"),
    _QUOTES.valid_until > bindparam("now"),
)
_ORDERS_HELD = select(
    func.coalesce(func.sum(_ORDERS.credit_cents), 0), func.min(_ORDERS.checkout_expires_at)
).where(
    _ORDERS.client == bindparam("client"),
    _ORDERS.status == st.AWAITING_PAYMENT,
    _ORDERS.checkout_expires_at > bindparam("now"),
)
_INSERT_QUOTE = insert(table_of(Quote))
_LOCK_CLIENT = text("SELECT pg_advisory_xact_lock(:key)")


def lock_client_holds(session: Session, *, client: str) -> None:
    """Until this transaction ends, no other one checks or adds to ``client``'s holds.

    Without it, concurrent quotes of one client on PostgreSQL (several web processes, or
    one process's threads) each read the holds before any of them committed and all passed
    the cap: 24 at once held 90 % of the day against a 50 % cap. A transaction-scoped
    advisory lock keyed by the client queues them. SQLite's writers are one at a time
    already (``BEGIN IMMEDIATE``).
    """
    if dialect_name(session) != "postgresql":
        return
    digest = hashlib.sha256(b"hold-cap\x00" + client.encode()).digest()
    session.execute(_LOCK_CLIENT, {"key": int.from_bytes(digest[:8], "big", signed=True)})


def held_by(session: Session, *, client: str, now: datetime) -> tuple[int, datetime | None]:
    """Credit ``client`` holds in open quotes and unpaid checkouts, and when the first lapses."""
    args = {"client": client, "now": now}
    quotes_held, quotes_end = session.execute(_QUOTES_HELD, args).one()
    orders_held, orders_end = session.execute(_ORDERS_HELD, args).one()
    ends = [e for e in (quotes_end, orders_end) if e is not None]
    return int(quotes_held) + int(orders_held), (min(ends) if ends else None)


def check_hold_cap(
    session: Session,
    *,
    client: str,
    credit_cents: int,
    capacity_cents: int,
    rules: ShopRules,
    now: datetime,
) -> None:
    """One client may hold at most ``max_held_share`` of the day's capacity unpaid (but
    always one order of the minimum size), so one buyer cannot hold the whole day. The
    client's concurrent checks queue (:func:`lock_client_holds`), so they cannot all pass."""
    lock_client_holds(session, client=client)
    cap = max(
        rules.min_order_cents,
        int(Decimal(capacity_cents) * rules.max_held_share),
    )
    held, first_end = held_by(session, client=client, now=now)
    if held + credit_cents > cap:
        wait = int((first_end - now).total_seconds()) + 1 if first_end else 60
        raise HoldLimit(
            f"this client already holds {held} cents in unpaid quotes and checkouts (at most "
            f"{cap} at once): pay or let one lapse, or ask for less",
            retry_after=max(1, wait),
        )


def validate_amount(credit_cents: object, *, rules: ShopRules, field: str = "credit_cents") -> int:
    if isinstance(credit_cents, bool) or not isinstance(credit_cents, int):
        raise InvalidInput("credit_cents must be a whole number of cents", field=field)
    if credit_cents < rules.min_order_cents:
        low = rules.min_order_cents
        raise InvalidInput(f"credit_cents must be at least {low} ({format_usd(low)})", field=field)
    if credit_cents > rules.max_order_cents:
        high = rules.max_order_cents
        raise InvalidInput(f"credit_cents must be at most {high} ({format_usd(high)})", field=field)
    return credit_cents


def create_quote(
    session: Session,
    *,
    rules: ShopRules,
    credit_cents: int,
    now: datetime,
    client: str | None = None,
    account: str | None = None,
    price_cents: int | None = None,
) -> Quote:
    """Lock a price for ``credit_cents`` for ``rules.quote_ttl`` and reserve the credit — on
    the roomiest account, or on ``account`` only (a top-up of a key that lives there).

    ``price_cents``: a price fixed beforehand (a standing order's authorization, see
    :mod:`cheaptokens.orders.standing`); never below the curve's price for the credit."""
    validate_amount(credit_cents, rules=rules)
    supply = open_day(session, rules=rules, now=now)
    if supply.remaining_cents < credit_cents:
        raise unavailable(session, supply=supply, credit_cents=credit_cents, now=now)
    if client is not None:
        try:
            check_hold_cap(
                session,
                client=client,
                credit_cents=credit_cents,
                capacity_cents=supply.capacity_cents,
                rules=rules,
                now=now,
            )
        except HoldLimit:
            # Holds committed since ``supply`` was read may have taken the rest of the stock
            # too: then the truth about stock (sold or held out) comes first.
            fresh = inventory.supply(session, day=now.date())
            if fresh.remaining_cents < credit_cents:
                raise unavailable(
                    session, supply=fresh, credit_cents=credit_cents, now=now
                ) from None
            raise
    remaining = supply.unsold_cents  # the price's x: open holds do not count
    params, digest = published.in_force(
        session, now=now, capacity_cents=supply.capacity_cents, rules=rules
    )
    account = inventory.reserve(
        session, day=now.date(), credit_cents=credit_cents, supply=supply, account=account
    )
    if account is None:
        fresh = inventory.supply(session, day=now.date())
        raise unavailable(session, supply=fresh, credit_cents=credit_cents, now=now)
    price = curve_price = quote_price_cents(
        params, now=now, remaining_cents=remaining, credit_cents=credit_cents
    )
    if price_cents is not None:
        if price_cents < price:
            raise ValueError("a fixed price may not undercut the curve")
        price = price_cents
    row = {
        "id": new_quote_id(now),
        "created_at": now,
        "valid_until": min(now + rules.quote_ttl, next_midnight(now)),
        "day": now.date(),
        "account": account,
        "credit_cents": credit_cents,
        "price_cents": price,
        "remaining_cents": remaining,
        "params_hash": digest,
        "status": "open",
        "client": client,
    }
    # A Core INSERT: the returned Quote is a plain value, not tracked by the session (the
    # unit of work's flush cost more than the rest of the quote). Later changes to the quote
    # go through UPDATE statements (place_order, release_quote loads it first).
    session.execute(_INSERT_QUOTE, row)
    quote = Quote(**row)
    ledger.record(
        session,
        kind="quote_reserved",
        now=now,
        quote_id=quote.id,
        account=account,
        day=quote.day,
        credit_cents=credit_cents,
        detail={
            "price_cents": price,
            "remaining_cents": remaining,
            "params_hash": digest,
            # a fixed price (a standing order's authorization) next to the curve's
            **({"curve_price_cents": curve_price} if price != curve_price else {}),
        },
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
