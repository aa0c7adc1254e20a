"""Read-only views of orders and capacity for the pages, the dashboard and the CLI.

Every query the web pages and the command line need lives here (``web/`` and ``cli/`` run
no SQL). Each function takes a session the caller opened for reading and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cheaptokens.models import Account, AccountDay, Alert, LedgerEntry, Order, Quote
from cheaptokens.orders import state as st
from cheaptokens.orders.rules import REISSUE_REASON
from cheaptokens.pricing.forecast import QuoteRecord
from cheaptokens.venice.keys import KeyCount

#: Orders whose credit counts as sold (they hold capacity or did).
SOLD_STATUSES = (st.PAID, st.FULFILLED, st.EXPIRED, st.FAILED)
#: Quotes that became a paid order were accepted by the buyer (the engine learns from it).
ACCEPTED_STATUSES = (st.PAID, st.FULFILLED, st.EXPIRED, st.REFUNDED, st.FAILED)


# ----------------------------------------------------------------------------- the day
@dataclass(frozen=True, slots=True)
class Sale:
    at: datetime
    credit_cents: int
    price_cents: int


def sales_on(session: Session, *, day: date) -> list[Sale]:
    """Every paid sale of ``day`` (time of payment, credit, price), oldest first."""
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


def accounts_on(session: Session, *, day: date) -> list[AccountToday]:
    rows = session.scalars(
        select(AccountDay).where(AccountDay.day == day).order_by(AccountDay.account)
    ).all()
    return [
        AccountToday(
            r.account, r.allocation_cents, r.capacity_cents, r.sold_cents, r.reserved_cents
        )
        for r in rows
    ]


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


def today(session: Session, *, day: date) -> Today:
    """Capacity per account, credit sold, revenue and the average discount of ``day``."""
    credit, revenue, count = session.execute(
        select(
            func.coalesce(func.sum(Order.credit_cents), 0),
            func.coalesce(func.sum(Order.price_cents), 0),
            func.count(Order.id),
        ).where(Order.day == day, Order.status.in_(SOLD_STATUSES))
    ).one()
    return Today(day, accounts_on(session, day=day), int(credit), int(revenue), int(count))


@dataclass(frozen=True, slots=True)
class PastDay:
    day: date
    capacity_cents: int
    sold_cents: int
    revenue_cents: int

    @property
    def wasted_cents(self) -> int:
        return max(0, self.capacity_cents - self.sold_cents)


def past_days(session: Session, *, today: date, days: int = 14) -> list[PastDay]:
    """The last ``days`` days (today included), newest first: capacity, sold and revenue."""
    since = today - timedelta(days=days - 1)
    cap = session.execute(
        select(AccountDay.day, func.sum(AccountDay.capacity_cents), func.sum(AccountDay.sold_cents))
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


def recent_orders(
    session: Session, *, limit: int = 50, status: str | None = None
) -> list[OrderRow]:
    stmt = select(Order).order_by(Order.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(Order.status == status)
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
        for o in session.scalars(stmt)
    ]


@dataclass(frozen=True, slots=True)
class LedgerRow:
    at: datetime
    kind: str
    credit_cents: int
    money_cents: int


@dataclass(frozen=True, slots=True)
class OrderDetail:
    order: Order
    ledger: list[LedgerRow]


def order_detail(session: Session, *, order_id: str) -> OrderDetail | None:
    """One order with its ledger rows, oldest first (the operator's view; no secrets)."""
    order = session.get(Order, order_id)
    if order is None:
        return None
    rows = session.scalars(
        select(LedgerEntry).where(LedgerEntry.order_id == order_id).order_by(LedgerEntry.id)
    )
    return OrderDetail(
        order, [LedgerRow(e.at, e.kind, e.credit_cents, e.money_cents) for e in rows]
    )


@dataclass(frozen=True, slots=True)
class AlertRow:
    at: datetime
    kind: str
    account: str | None
    order_id: str | None
    message: str


def recent_alerts(session: Session, *, limit: int = 50) -> list[AlertRow]:
    rows = session.scalars(select(Alert).order_by(Alert.at.desc()).limit(limit)).all()
    return [AlertRow(a.at, a.kind, a.account, a.order_id, a.message) for a in rows]


# ----------------------------------------------------------------------------- demand
def order_status_of_days(session: Session, days: set[date]) -> dict[str, str]:
    """quote id → the status of the order it became, for the quotes of ``days``.

    An order is made from a quote of its own day and keeps it (``Order.day`` is the quote's
    ``day``, ``orders/transitions.py``), so a day's quotes find their orders among that day's
    orders: one range of the orders' ``day`` index, as long as the day's sales. Searching the
    ``quote_id`` index once per quote instead slowed with every order kept for good, its pages
    no longer in cache (``bench/README.md``, History)."""
    rows = session.execute(
        select(Order.quote_id, Order.status).where(Order.day.in_(sorted(days)))
    ).all()
    return {quote_id: status for quote_id, status in rows}


def settled_quotes(
    session: Session, *, since: datetime, until: datetime, pending: bool = False
) -> list[QuoteRecord]:
    """Quotes in ``[since, until)`` whose outcome is known: accepted if they became a paid
    order, declined if they lapsed or their checkout was declined or expired. With
    ``pending`` the quotes still open (or awaiting payment) come too, ``accepted=None``:
    they count as requests (arrival and size) but say nothing of willingness yet."""
    rows = session.execute(
        select(
            Quote.id,
            Quote.day,
            Quote.created_at,
            Quote.credit_cents,
            Quote.price_cents,
            Quote.status,
        )
        .where(Quote.created_at >= since, Quote.created_at < until)
        .order_by(Quote.created_at)
    ).all()
    orders = order_status_of_days(session, {r[1] for r in rows})
    records = []
    for quote_id, _, created_at, credit, price, quote_status in rows:
        order_status = orders.get(quote_id)
        if not credit:
            continue
        settled = quote_status != "open" and order_status != st.AWAITING_PAYMENT
        if not settled and not pending:
            continue  # not settled yet
        records.append(
            QuoteRecord(
                at=created_at,
                requested_cents=credit,
                price_fraction=Decimal(price) / Decimal(credit),
                accepted=order_status in ACCEPTED_STATUSES if settled else None,
            )
        )
    return records


def reissues_today(session: Session, *, order_id: str, now: datetime) -> int:
    """How often the buyer had ``order_id``'s key replaced on request since 00:00 UTC."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = session.scalars(
        select(LedgerEntry.detail).where(
            LedgerEntry.order_id == order_id,
            LedgerEntry.kind == "replacement_started",
            LedgerEntry.at >= start,
        )
    ).all()
    return sum(1 for d in rows if (d or {}).get("reason") == REISSUE_REASON)


def key_counts(session: Session) -> list[KeyCount]:
    """Each account's live keys and creations in the last minute, as the watch last read
    Venice's key list (the dashboard never calls Venice itself)."""
    out = []
    for acct in session.scalars(select(Account).order_by(Account.name)):
        if acct.keys_read_at is None or acct.venice_live_keys is None:
            error = acct.last_error and "Venice did not answer the last look; try again shortly"
            out.append(KeyCount(acct.name, None, None, error or "not read yet"))
        else:
            out.append(KeyCount(acct.name, acct.venice_live_keys, acct.venice_keys_last_minute))
    return out
