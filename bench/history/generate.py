"""Generate days of shop history straight into the tables, fast.

Each day has ``quotes`` quotes and ``orders`` orders (every order takes one of the quotes; the
rest lapse), the ledger rows the shop writes for each, the provider's webhook event and the
provisioning job of each paid order, a pool key per paid order (sold) plus a few that expired
unsold, the account's day and 25 published price sets (the day's default and one per hour).
The rows look as the shop leaves them at the end of the day: paid orders expired (their keys
deleted at 00:00 UTC), unpaid ones cancelled, lapsed quotes released.

``today_until`` adds the current day up to that moment: lapsed quotes and cancelled checkouts
only, so nothing generated holds capacity or has a key Venice would have to know.

Rows go in with SQLAlchemy Core ``executemany`` on SQLite and with ``COPY`` on PostgreSQL
(psycopg's ``copy``), a day at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection, Engine

from cheaptokens.models import (
    Account,
    AccountDay,
    Job,
    LedgerEntry,
    Order,
    PoolKey,
    PricingParamsRow,
    Quote,
    WebhookEvent,
)
from cheaptokens.orders.ids import new_quote_id
from cheaptokens.pricing.curve import default_params, params_hash, params_to_dict

LEDGER_COLS = (
    "at",
    "kind",
    "order_id",
    "quote_id",
    "account",
    "day",
    "credit_cents",
    "money_cents",
    "detail",
)


@dataclasses.dataclass
class Day:
    """The rows of one day, table by table (in the order foreign keys need)."""

    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)

    def count(self) -> int:
        return sum(len(r) for r in self.tables.values())


TABLES: dict[str, Table] = {
    "pricing_params": PricingParamsRow.__table__,  # type: ignore[dict-item]
    "account_days": AccountDay.__table__,  # type: ignore[dict-item]
    "quotes": Quote.__table__,  # type: ignore[dict-item]
    "orders": Order.__table__,  # type: ignore[dict-item]
    "ledger": LedgerEntry.__table__,  # type: ignore[dict-item]
    "pool_keys": PoolKey.__table__,  # type: ignore[dict-item]
    "webhook_events": WebhookEvent.__table__,  # type: ignore[dict-item]
    "jobs": Job.__table__,  # type: ignore[dict-item]
}


def _hex(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex


def _ledger(rows: Day, at: datetime, kind: str, **kw: Any) -> None:
    row = dict.fromkeys(LEDGER_COLS)
    row.update(at=at, kind=kind, credit_cents=0, money_cents=0)
    row.update(kw)
    rows.add("ledger", row)


def one_day(
    d: date,
    *,
    account: str,
    quotes: int,
    orders: int,
    rng: random.Random,
    until: datetime | None = None,
) -> Day:
    """The rows of day ``d`` (up to ``until`` if given: then only what holds nothing)."""
    out = Day()
    start = datetime.combine(d, time(0), tzinfo=UTC)
    end = start + timedelta(days=1)
    share = 1.0 if until is None else (until - start) / (end - start)
    quotes, orders = int(quotes * share), int(orders * share)
    capacity = 10_000_000
    base = default_params(capacity_cents=capacity, day=d)
    hashes = []
    windows = [(start, end)] + [
        (start + timedelta(hours=h), start + timedelta(hours=h + 1)) for h in range(24)
    ]
    for valid_from, valid_until in windows:
        if until is not None and valid_from > until:
            break
        p = dataclasses.replace(base, valid_from=valid_from, valid_until=valid_until)
        digest = params_hash(p)
        hashes.append(digest)
        out.add(
            "pricing_params",
            {
                "hash": digest,
                "day": d,
                "valid_from": valid_from,
                "valid_until": valid_until,
                "body": params_to_dict(p),
                "published_at": valid_from - timedelta(seconds=90),
            },
        )
    span = (until or end) - start
    times = sorted(start + span * rng.random() for _ in range(quotes))
    ordered = set(rng.sample(range(quotes), orders)) if quotes else set()
    sold = 0
    for i, at in enumerate(times):
        qid = new_quote_id(at)  # the shop's own ids, time-ordered like its quotes
        credit = rng.choice((100, 200, 500, 1000, 2000, 5000))
        price = credit * rng.randint(35, 90) // 100
        digest = hashes[min(at.hour + 1, len(hashes) - 1)]
        is_ordered = i in ordered
        out.add(
            "quotes",
            {
                "id": qid,
                "created_at": at,
                "valid_until": at + timedelta(minutes=5),
                "day": d,
                "account": account,
                "credit_cents": credit,
                "price_cents": price,
                "remaining_cents": capacity - sold,
                "params_hash": digest,
                "status": "ordered" if is_ordered else "released",
                "client": hashlib.sha256(str(rng.randint(0, 5000)).encode()).hexdigest(),
            },
        )
        _ledger(
            out,
            at,
            "quote_reserved",
            quote_id=qid,
            account=account,
            day=d,
            credit_cents=credit,
            detail={
                "price_cents": price,
                "remaining_cents": capacity - sold,
                "params_hash": digest,
            },
        )
        if not is_ordered:
            _ledger(
                out,
                at + timedelta(minutes=5),
                "quote_released",
                quote_id=qid,
                account=account,
                day=d,
                credit_cents=-credit,
            )
            continue
        oid = "ord_" + _hex(rng)
        placed = at + timedelta(seconds=rng.randint(1, 60))
        paid = until is None and rng.random() < 0.9
        row: dict[str, Any] = {
            "id": oid,
            "token_hash": hashlib.sha256(oid.encode()).hexdigest(),
            "quote_id": qid,
            "day": d,
            "account": account,
            "credit_cents": credit,
            "price_cents": price,
            "currency": "usd",
            "created_at": placed,
            "checkout_expires_at": placed + timedelta(minutes=30),
            "payment_provider": "sandbox",
            "payment_reference": "cs_" + _hex(rng),
            "checkout_url": f"http://shop.example/checkout/{_hex(rng)}",
            "client": None,
            "key_models": "private",
            "spent_before_cents": 0,
        }
        _ledger(out, placed, "order_placed", order_id=oid, quote_id=qid, account=account, day=d)
        if not paid:
            row.update(status="cancelled", holds="none", updated_at=placed + timedelta(minutes=30))
            _ledger(
                out,
                placed + timedelta(minutes=30),
                "order_cancelled",
                order_id=oid,
                account=account,
                day=d,
                credit_cents=-credit,
            )
            out.add("orders", row)
            continue
        sold += credit
        paid_at = placed + timedelta(seconds=rng.randint(5, 120))
        made = paid_at + timedelta(milliseconds=rng.randint(150, 900))
        key_id = _hex(rng)
        row.update(
            status="expired",
            holds="sold",
            updated_at=end,
            payment_ref="pi_" + _hex(rng),
            paid_cents=price,
            paid_at=paid_at,
            key_id=key_id,
            key_last6=key_id[-6:],
            key_expires_at=end,
            key_received_at=made + timedelta(seconds=2),
            key_deleted_at=end,
            fulfilled_at=made,
            used_cents=credit * rng.randint(0, 100) // 100,
            usage_checked_at=end - timedelta(seconds=rng.randint(1, 3600)),
        )
        out.add("orders", row)
        _ledger(out, paid_at, "payment_received", order_id=oid, account=account, money_cents=price)
        _ledger(out, paid_at, "credit_sold", order_id=oid, account=account, day=d)
        _ledger(out, made, "pool_key_claimed", order_id=oid, account=account)
        _ledger(out, made, "key_created", order_id=oid, account=account)
        _ledger(out, end, "key_expired", order_id=oid, account=account)
        out.add(
            "webhook_events",
            {
                "event_id": "evt_" + _hex(rng),
                "provider": "sandbox",
                "order_id": oid,
                "received_at": paid_at,
            },
        )
        out.add(
            "jobs",
            {
                "kind": "provision",
                "order_id": oid,
                "status": "done",
                "run_at": paid_at,
                "attempts": 1,
                "created_at": paid_at,
            },
        )
        out.add("pool_keys", _pool_key(rng, account, d, start, end, "sold", oid, made))
    if until is None:
        for _ in range(max(1, orders // 10)):  # made ahead and never sold
            out.add("pool_keys", _pool_key(rng, account, d, start, end, "deleted", None, None))
        out.add(
            "account_days",
            {
                "account": account,
                "day": d,
                "allocation_cents": capacity,
                "capacity_cents": capacity,
                "sold_cents": sold,
                "reserved_cents": 0,
                "withheld_cents": 0,
            },
        )
    return out


def _pool_key(
    rng: random.Random,
    account: str,
    d: date,
    start: datetime,
    end: datetime,
    status: str,
    order_id: str | None,
    claimed: datetime | None,
) -> dict[str, Any]:
    key_id = _hex(rng)
    return {
        "key_id": key_id,
        "account": account,
        "day": d,
        "secret": rng.randbytes(60),
        "last6": key_id[-6:],
        "created_at": start + timedelta(minutes=rng.randint(0, 60)),
        "expires_at": end,
        "status": status,
        "order_id": order_id,
        "claimed_at": claimed,
    }


def _for_copy(value: Any) -> Any:
    """A value as psycopg's COPY takes it (UTC columns hold naive UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return Json(value)
    return value


def _for_sqlite(value: Any) -> Any:
    """A value as SQLAlchemy stores it in SQLite (its DateTime text, JSON text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _write(conn: Connection, day: Day) -> None:
    for name, table in TABLES.items():
        rows = day.tables.get(name)
        if not rows:
            continue
        cols = list(dict.fromkeys(c for r in rows for c in r))  # every row gets every column
        raw = conn.connection.driver_connection
        assert raw is not None
        if conn.dialect.name == "postgresql":
            sql = f"COPY {name} ({', '.join(cols)}) FROM STDIN"
            with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
                for r in rows:
                    copy.write_row([_for_copy(r.get(c)) for c in cols])
        else:  # the bare driver: SQLAlchemy's per-value processing would triple the time
            marks = ", ".join("?" * len(cols))
            raw.executemany(  # type: ignore[attr-defined]
                f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})",  # noqa: S608 (our names)
                [[_for_sqlite(r.get(c)) for c in cols] for r in rows],
            )


def ensure_account(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if conn.scalar(select(Account.name).where(Account.name == name)) is None:
            conn.execute(insert(Account).values(name=name, enabled=True, diem_allocation_cents=0))


def days_before(today: date, days: int) -> Iterator[date]:
    for back in range(days, 0, -1):
        yield today - timedelta(days=back)


def generate(
    engine: Engine,
    *,
    account: str,
    days: int,
    quotes: int,
    orders: int,
    today_until: datetime,
    seed: int = 16,
    progress: Callable[[int, int], object] | None = None,
) -> int:
    """``days`` whole days before ``today_until``'s day, then that day up to ``today_until``;
    returns the number of rows written. ``progress(days done, rows written)`` is called after
    each day."""
    rng = random.Random(seed)
    ensure_account(engine, account)
    written = 0
    for d in days_before(today_until.date(), days):
        day = one_day(d, account=account, quotes=quotes, orders=orders, rng=rng)
        with engine.begin() as conn:
            _write(conn, day)
        written += day.count()
        if progress is not None:
            progress(d.toordinal() - today_until.date().toordinal() + days + 1, written)
    today = one_day(
        today_until.date(),
        account=account,
        quotes=quotes,
        orders=orders,
        rng=random.Random(seed + 1),  # the same "today" whatever the history before it
        until=today_until,
    )
    with engine.begin() as conn:
        _write(conn, today)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return written + today.count()
