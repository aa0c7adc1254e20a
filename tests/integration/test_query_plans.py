"""The queries every request and upkeep tick makes use an index: none scans a whole table
that grows with history (quotes, orders, ledger, published prices, pool keys, account days).

The statements are the real ones: captured while the functions run against a SQLite file,
then explained with ``EXPLAIN QUERY PLAN``.
"""

from __future__ import annotations

import pathlib
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg.sql
import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session

from cheaptokens import migrate
from cheaptokens.db import open_database
from cheaptokens.inventory import keyroom, pool, supply
from cheaptokens.models import Order, Quote
from cheaptokens.orders import (
    abuse,
    forecasts,
    history,
    live_keys,
    published,
    quotes,
    retention,
    standing,
    topups,
    transitions,
    views,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GROWING = (
    "quotes",
    "orders",
    "ledger",
    "pricing_params",
    "pool_keys",
    "account_days",
    "alerts",
    "standing_orders",
    "webhook_events",
    "jobs",
    "topups",
)

QUERIES: dict[str, Callable[[Session], Any]] = {
    "price in force": lambda s: published.find_in_force(s, now=NOW),
    "recent orders": lambda s: views.recent_orders(s, limit=50),
    "today's settled quotes": lambda s: views.settled_quotes(
        s, since=NOW.replace(hour=0), until=NOW
    ),
    "today's supply": lambda s: supply(s, day=NOW.date()),
    "pool keys due": lambda s: pool.due_for_deletion(s, now=NOW),
    "creations this minute": lambda s: keyroom.creations_in_window(s, "a", NOW),
    "live keys of an account": lambda s: keyroom.live_order_keys(s, "a", NOW),
    "live keys": lambda s: live_keys.live(s, now=NOW),
    "held by a client": lambda s: quotes.held_by(s, client="c", now=NOW),
    "strikes of a client": lambda s: abuse.strikes(s, client="c", since=NOW - timedelta(hours=1)),
    "past days": lambda s: views.past_days(s, today=date(2026, 11, 25)),
    "waiting standing orders": lambda s: standing.candidates(s, now=NOW, list_cents=100),
    "a day's actuals (nightly refit)": lambda s: forecasts.day_actual(s, date(2026, 11, 24)),
    "first quote day (refit window)": lambda s: forecasts.first_quote_day(s),
    "a day's published curve (price history)": lambda s: history.history_day(s, date(2026, 11, 24)),
    "lapsed holds": lambda s: (
        transitions.sweep_expired(s, now=NOW) + topups.sweep_expired(s, now=NOW)
    ),
    "keys due to expire": lambda s: live_keys.due_for_expiry(s, now=NOW),
    "the nightly prune": lambda s: retention.prune_batch(
        s, policy=retention.Retention(7, 7, 7, 7, 90, 7), now=NOW, dry_run=True
    ),
}


@contextmanager
def statements(engines: Any, keep: Callable[[str], bool]) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their parameters) the engines run inside the block, those ``keep``
    accepts."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_a: Any) -> None:
        if keep(statement):
            seen.append((statement, params))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'shop.db'}"
    migrate.upgrade(url)
    database, engines = open_database(url)
    yield database, engines
    for e in engines:
        e.dispose()


@pytest.mark.parametrize("name", list(QUERIES))
def test_uses_an_index(name: str, db: Any) -> None:
    database, engines = db
    with (
        statements(engines, lambda st: st.lstrip().upper().startswith("SELECT")) as seen,
        database.read() as session,
    ):
        QUERIES[name](session)
    assert seen, "the function ran no query"
    with engines[0].connect() as conn:
        for statement, params in seen:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            details = [row[-1] for row in plan]
            full_scans = [
                d
                for d in details
                if d.startswith("SCAN ") and d.split()[1] in GROWING and "USING" not in d
            ]
            assert full_scans == [], (name, details)


def test_a_clients_holds_read_only_open_quotes(db: Any) -> None:
    """A client's held credit is read from the index of open quotes only: the full index of
    every quote by client was the one the nightly prune scattered its deletes over."""
    database, engines = db
    with statements(engines, lambda st: "FROM quotes" in st) as seen, database.read() as session:
        quotes.held_by(session, client="c", now=NOW)
    assert len(seen) == 1
    with engines[0].connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + seen[0][0], seen[0][1]).all()
    details = " | ".join(row[-1] for row in plan)
    assert "USING INDEX ix_quotes_client_open (client=? AND valid_until>?)" in details, details


@pytest.mark.postgres
def test_a_clients_holds_read_only_open_quotes_in_postgres_generic_plans(pg_url: str) -> None:
    """The same on PostgreSQL, in the generic plan it settles on for a statement run often: a
    bound 'open' there could not be matched to the partial index."""
    database, engines = open_database(pg_url)
    try:
        with (
            statements(engines, lambda st: "FROM quotes" in st) as seen,
            database.read() as session,
        ):
            quotes.held_by(session, client="c", now=NOW)
        ((statement, params),) = seen
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
        numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", statement)
        with engines[0].connect() as conn:
            raw = conn.connection.driver_connection
            arguments = ", ".join(psycopg.sql.Literal(params[n]).as_string(raw) for n in names)
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql("PREPARE held AS " + numbered)
            plan = conn.exec_driver_sql(f"EXPLAIN EXECUTE held({arguments})").scalars().all()
    finally:
        for e in engines:
            e.dispose()
    assert "Index Scan using ix_quotes_client_open" in " | ".join(plan), plan


def test_past_days_read_only_their_days(db: Any) -> None:
    """The dashboard's last 14 days find their sold orders by status *and* day: by status
    alone they would read every sold order ever made (still a "SEARCH", not a scan)."""
    database, engines = db
    with statements(engines, lambda st: "FROM orders" in st) as seen, database.read() as session:
        views.past_days(session, today=date(2026, 11, 25))
    assert len(seen) == 1
    with engines[0].connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + seen[0][0], seen[0][1]).all()
    details = " | ".join(row[-1] for row in plan)
    assert "day>" in details, details


@pytest.mark.parametrize("name", ["today's settled quotes", "a day's actuals (nightly refit)"])
def test_a_days_quotes_find_their_orders_among_the_days_orders(name: str, tmp_path: Any) -> None:
    """A day's quotes find the orders they became among that day's orders (one range of the
    orders' day index), not by one search of the orders' quote index per quote, which slowed as
    the orders kept for good grew (bench/README.md, History). The shop's history is the
    benchmark's generator (bench/history/generate.py); the answer is the join's."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench" / "history"))
    from generate import generate

    url = f"sqlite:///{tmp_path / 'history.db'}"
    migrate.upgrade(url)
    generate(create_engine(url), account="a", days=2, quotes=50, orders=10, today_until=NOW)
    database, engines = open_database(url)
    with statements(engines, lambda st: "orders" in st) as seen, database.read() as session:
        found = QUERIES[name](session)
    day = date(2026, 11, 25) if name.startswith("today") else date(2026, 11, 24)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    until = min(NOW, start + timedelta(days=1))
    with database.read() as session:
        joined = session.execute(
            select(Quote.created_at, Order.status)
            .outerjoin(Order, Order.quote_id == Quote.id)
            .where(Quote.created_at >= start, Quote.created_at < until)
        ).all()
    with engines[0].connect() as conn:
        plans = [conn.exec_driver_sql("EXPLAIN QUERY PLAN " + st, p).all() for st, p in seen]
    for engine in engines:
        engine.dispose()
    assert any(status is not None for _, status in joined), "the day has orders"
    sold = sum(1 for _, status in joined if status in views.ACCEPTED_STATUSES)
    if name.startswith("today"):  # (today's orders so far are cancelled checkouts)
        assert [r.accepted for r in found] == [
            status in views.ACCEPTED_STATUSES for _, status in sorted(joined)
        ]
    else:
        assert sold, "the generated day has sales"
        assert (found.quotes, found.accepted) == (len(joined), sold)
    assert len(seen) == 1, seen
    assert "JOIN" not in seen[0][0], seen
    (detail,) = [row[-1] for row in plans[0]]
    assert detail.startswith("SEARCH orders USING "), detail
    assert detail.endswith("(day=?)"), detail
