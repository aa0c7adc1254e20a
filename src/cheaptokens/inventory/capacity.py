"""Daily capacity per Venice account, and reservations against it.

Invariant (no oversell): for every (account, day), ``sold + reserved <= capacity``; new
sales also leave ``withheld`` untouched — the credit the live balance cannot cover
(docs/money-safety.md), which upkeep re-derives from Venice's balance on every tick.
It is kept by single conditional UPDATE statements (``... WHERE capacity - sold -
reserved >= :n``): the database re-checks the condition under its row lock, so any
number of web and worker processes can race for the last cents without a read-then-write
gap. Nothing here commits; callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from cheaptokens.db import upsert_insert
from cheaptokens.models import Account, AccountDay, table_of


@dataclass(frozen=True, slots=True)
class Supply:
    capacity_cents: int
    sold_cents: int
    reserved_cents: int
    #: (account, room left) for each account open that day, roomiest first
    rooms: tuple[tuple[str, int], ...] = ()
    #: credit kept off sale because the live balance cannot cover it
    withheld_cents: int = 0

    @property
    def remaining_cents(self) -> int:
        """What can be bought now: not sold, not held, not withheld."""
        unsold = self.capacity_cents - self.sold_cents - self.reserved_cents
        return max(0, unsold - self.withheld_cents)

    @property
    def unsold_cents(self) -> int:
        """What the price follows: not sold and not withheld; open holds are not sales, so
        they do not move the price (an unpaid hold cannot make everyone else pay more)."""
        return max(0, self.capacity_cents - self.sold_cents - self.withheld_cents)


#: What an account can still sell (the guarded UPDATEs re-check it under the row lock).
ROOM = (
    AccountDay.capacity_cents
    - AccountDay.sold_cents
    - AccountDay.reserved_cents
    - AccountDay.withheld_cents
)


def day_capacity(allocation_cents: int, *, sell_fraction: Decimal, margin_cents: int) -> int:
    """What may be sold of one account's allocation: ``floor(alloc × fraction) − margin``."""
    sellable = (Decimal(allocation_cents) * sell_fraction).to_integral_value(rounding=ROUND_DOWN)
    return max(0, int(sellable) - margin_cents)


def ensure_day(session: Session, *, day: date, sell_fraction: Decimal, margin_cents: int) -> None:
    """Open ``day`` for every enabled account that has no row yet (safe to race).

    The pooled safety margin is split across accounts in proportion to nothing fancy:
    evenly, the remainder on the first account.
    """
    accounts = session.scalars(
        select(Account).where(Account.enabled.is_(True)).order_by(Account.name)
    ).all()
    if not accounts:
        return
    have = set(session.scalars(select(AccountDay.account).where(AccountDay.day == day)).all())
    share, extra = divmod(margin_cents, len(accounts))
    rows = []
    for i, acct in enumerate(accounts):
        if acct.name in have:
            continue
        margin = share + (extra if i == 0 else 0)
        rows.append(
            {
                "account": acct.name,
                "day": day,
                "allocation_cents": acct.diem_allocation_cents,
                "capacity_cents": day_capacity(
                    acct.diem_allocation_cents, sell_fraction=sell_fraction, margin_cents=margin
                ),
                "sold_cents": 0,
                "reserved_cents": 0,
            }
        )
    if rows:
        insert = upsert_insert(session)
        session.execute(insert(AccountDay).values(rows).on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class Capacity:
    """Where a day's capacity comes from: ``Σ floor(allocation × fraction) − margin``."""

    accounts: int
    allocation_cents: int  # the accounts' daily DIEM allocations, in cents (1 DIEM = $1)
    sellable_cents: int  # Σ floor(allocation × sell_fraction), before the safety margin
    capacity_cents: int

    @property
    def margin_cents(self) -> int:
        """What the safety margin took (the configured margin, unless an account had less)."""
        return self.sellable_cents - self.capacity_cents


def capacity(session: Session, *, day: date, sell_fraction: Decimal) -> Capacity:
    """How ``day``'s capacity was made from the accounts' allocations (read-only)."""
    rows = session.execute(
        select(AccountDay.allocation_cents, AccountDay.capacity_cents).where(AccountDay.day == day)
    ).all()
    sellable = sum(day_capacity(a, sell_fraction=sell_fraction, margin_cents=0) for a, _ in rows)
    return Capacity(len(rows), sum(a for a, _ in rows), sellable, sum(c for _, c in rows))


_DAYS = table_of(AccountDay).c
#: built once: every quote and order runs these two
_SUPPLY = select(
    _DAYS.account,
    _DAYS.capacity_cents,
    _DAYS.sold_cents,
    _DAYS.reserved_cents,
    _DAYS.withheld_cents,
).where(_DAYS.day == bindparam("day"))
_RESERVE = (
    update(table_of(AccountDay))
    .where(
        _DAYS.account == bindparam("on_account"),
        _DAYS.day == bindparam("on_day"),
        bindparam("credit")
        <= _DAYS.capacity_cents - _DAYS.sold_cents - _DAYS.reserved_cents - _DAYS.withheld_cents,
    )
    .values(reserved_cents=_DAYS.reserved_cents + bindparam("credit"))
)


def supply(session: Session, *, day: date) -> Supply:
    rows = session.execute(_SUPPLY, {"day": day}).all()
    rooms = sorted(
        ((r[0], r[1] - r[2] - r[3] - r[4]) for r in rows), key=lambda ar: (-ar[1], ar[0])
    )
    return Supply(
        capacity_cents=sum(r[1] for r in rows),
        sold_cents=sum(r[2] for r in rows),
        reserved_cents=sum(r[3] for r in rows),
        rooms=tuple(rooms),
        withheld_cents=sum(min(r[4], max(0, r[1] - r[2] - r[3])) for r in rows),
    )


def reserve(
    session: Session,
    *,
    day: date,
    credit_cents: int,
    supply: Supply | None = None,
    account: str | None = None,
) -> str | None:
    """Hold ``credit_cents`` on one account that has room; its name, or None if none has.

    A key draws on one account, so the whole amount must fit on a single account;
    the roomiest is tried first (or only ``account``, for a top-up of a key that lives
    there). ``supply`` (read in the same transaction) saves a query; the UPDATE re-checks
    the room either way.
    """
    if account is not None:
        candidates: Sequence[str] = [account]
    elif supply is not None and supply.rooms:
        candidates = [a for a, r in supply.rooms if r >= credit_cents]
    else:
        candidates = session.scalars(
            select(AccountDay.account)
            .where(AccountDay.day == day, credit_cents <= ROOM)
            .order_by(ROOM.desc(), AccountDay.account)
        ).all()
    for name in candidates:
        result = session.execute(
            _RESERVE, {"on_account": name, "on_day": day, "credit": credit_cents}
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return name
    return None


def _move(
    session: Session, *, account: str, day: date, reserved: int, sold: int, guard: bool = False
) -> bool:
    stmt = update(AccountDay).where(AccountDay.account == account, AccountDay.day == day)
    if guard:
        stmt = stmt.where(sold + reserved <= ROOM)
    result = session.execute(
        stmt.values(
            reserved_cents=AccountDay.reserved_cents + reserved,
            sold_cents=AccountDay.sold_cents + sold,
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release(session: Session, *, account: str, day: date, credit_cents: int) -> None:
    """Give back a reservation that will not be paid (quote or checkout expired)."""
    _move(session, account=account, day=day, reserved=-credit_cents, sold=0)


def sell(session: Session, *, account: str, day: date, credit_cents: int) -> None:
    """A reservation was paid for: it becomes sold."""
    _move(session, account=account, day=day, reserved=-credit_cents, sold=credit_cents)


def sell_unreserved(session: Session, *, account: str, day: date, credit_cents: int) -> bool:
    """Sell without a reservation (a payment that arrived after its hold lapsed), if room."""
    return _move(session, account=account, day=day, reserved=0, sold=credit_cents, guard=True)


def unsell(session: Session, *, account: str, day: date, credit_cents: int) -> None:
    """A sale was refunded before its key could draw on it: the credit is free again."""
    _move(session, account=account, day=day, reserved=0, sold=-credit_cents)


def record_allocation(
    session: Session,
    *,
    account: str,
    allocation_cents: int | None,
    now: datetime,
    error: str | None = None,
) -> None:
    """Store what ``/billing/balance`` said of an account (its DIEM allocation), or why it
    could not be read (``error``; the last known allocation then stays in place)."""
    acct = session.get(Account, account)
    if acct is None:
        acct = Account(name=account, enabled=True, diem_allocation_cents=0)
        session.add(acct)
    if error is not None:
        acct.last_error = error[:500]
        return
    assert allocation_cents is not None
    acct.diem_allocation_cents = allocation_cents
    acct.balance_checked_at = now
    acct.last_error = None


def record_balance(session: Session, *, account: str, diem_cents: int, now: datetime) -> None:
    """Store the account's live DIEM balance (what is left of today's allocation)."""
    acct = session.get(Account, account)
    if acct is not None:
        acct.diem_balance_cents = diem_cents
        acct.balance_checked_at = now


def record_key_counts(
    session: Session, *, account: str, live: int, created_last_minute: int, now: datetime
) -> None:
    """What Venice's key list showed: the account's live keys (the operator's own too) and
    those created in the last minute — the dashboard shows them against Venice's limits."""
    acct = session.get(Account, account)
    if acct is not None:
        acct.venice_live_keys = live
        acct.venice_keys_last_minute = created_last_minute
        acct.keys_read_at = now


def follow_balance(
    session: Session,
    *,
    account: str,
    day: date,
    balance_cents: int,
    liability_cents: int,
    reserve_cents: int,
) -> int:
    """Keep off sale whatever the live balance cannot cover; returns the credit withheld.

    What the books still offer is ``capacity − sold − reserved``. What the account can still
    serve is its live DIEM balance minus the unspent credit of its live keys (the shop's
    liability), the overshoot reserve and the open holds (they may still be paid). The
    difference, when the books offer more, is withheld until the balance says otherwise.
    """
    row = session.get(AccountDay, (account, day), with_for_update=True)
    if row is None:
        return 0
    offered = max(0, row.capacity_cents - row.sold_cents - row.reserved_cents)
    coverable = max(0, balance_cents - liability_cents - reserve_cents - row.reserved_cents)
    row.withheld_cents = max(0, offered - coverable)
    return row.withheld_cents
