"""Flat cost as history grows: every request path and upkeep task, empty vs 15 days vs a year.

    .venv/bin/python bench/history/run.py [--days 365] [--quotes 5000] [--orders 1000]
                                          [--db sqlite,postgres] [--rounds 5]

For each database it builds three shops on fresh databases (a SQLite file, a new PostgreSQL
database on the local server): **empty**; **15 days** of history before today (more than the
14 days the dashboard shows, the 7 the refit reads and the prune keeps); **year**, ``--days``
days of history. Each day has ``--quotes`` quotes and ``--orders`` orders with their ledger
rows, webhook events, jobs, pool keys and published price sets (``generate.py``, bulk inserts
through the bare driver: ``executemany`` on SQLite, ``COPY`` on PostgreSQL); the 15 days and
the year also hold the same first half of today (lapsed quotes, cancelled checkouts). On each
shop 20 paid orders with real sandbox keys are then made through the shop's own flow (the
live keys the watch reads), and each task below is timed in this process (median of
``--rounds`` after one warm-up): the HTTP ones through the real app (Starlette's TestClient),
the upkeep ones by calling what the worker calls. The Venice sandbox runs in-process with a
frozen clock. The nightly prune is the median of three nights after a first catch-up.

The target is year ÷ 15 days within 1.5×: the dashboard reads its 14 days, the re-plan
today's quotes and the refit the last 7 days' by design, and a night's prune forgets one
day's worth, so against an empty database they cost what those days hold; none may grow
with older history. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench" / "history"))

from generate import generate  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.orders import flows, published  # noqa: E402
from cheaptokens.worker import maintenance, pool, repricing  # noqa: E402
from support.databases import postgres_database  # noqa: E402
from support.shopkit import Kit, make_kit, paid_order  # noqa: E402

warnings.filterwarnings("ignore", message="You should not use the 'timeout'")  # TestClient's

PASSWORD = "bench-password-not-secret"  # noqa: S105 (a throw-away dashboard login)
#: the moment every shop lives at (the sandbox's clock is frozen there)
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
ACCOUNT = "sandbox-1"  # the name make_kit gives the sandbox's first account
LIVE_ORDERS = 20


@contextmanager
def fresh_database(kind: str, tmp: pathlib.Path, name: str) -> Iterator[str]:
    if kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        url = f"sqlite:///{tmp / f'{name}.db'}"
        migrate.upgrade(url)
        yield url


def timed(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm up: compiled statements, caches, the first page render
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def login(kit: Kit) -> None:
    page = kit.web.get("/admin/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = kit.web.post(
        "/admin/login", data={"csrf_token": token, "username": "admin", "password": PASSWORD}
    )
    assert r.status_code in (200, 303), r.text


def measure(kit: Kit, rounds: int) -> dict[str, float]:
    shop, worker = kit.shop, kit.worker
    for _ in range(LIVE_ORDERS):  # live keys for the watch, sold stock for the dashboard
        paid_order(shop, 100)
    worker.drain()
    login(kit)
    forecast = repricing.forecast_of(shop.settings)
    policy = flows.retention_of(shop.settings)

    def ok(status: int, r: object) -> None:
        assert getattr(r, "status_code", None) == status, getattr(r, "text", r)

    def params_lookup() -> None:
        with shop.db.read() as session:
            assert published.find_in_force(session, now=NOW) is not None

    # The nightly prune of a shop pruned every night: catch up first (the history's backlog,
    # once; on PostgreSQL autovacuum's work after it is done at once), then three nights, each
    # forgetting one day's worth; their median.
    flows.prune(db=shop.db, policy=policy, now=NOW - timedelta(days=3))
    vacuum(shop.settings.database_url)
    nights = []
    for back in (2, 1, 0):
        start = time.perf_counter()
        flows.prune(db=shop.db, policy=policy, now=NOW - timedelta(days=back))
        nights.append(time.perf_counter() - start)
    prune_s = statistics.median(nights)

    return {
        "GET /admin": timed(lambda: ok(200, kit.web.get("/admin")), rounds),
        "GET /api/supply": timed(lambda: ok(200, kit.web.get("/api/supply")), rounds),
        "POST /api/orders": timed(
            lambda: ok(201, kit.web.post("/api/orders", json={"credit_cents": 100})), rounds
        ),
        "usage watch tick": timed(worker.watch_now, rounds),
        "hourly re-plan": timed(
            lambda: repricing.replan(
                db=shop.db, rules=shop.rules, forecast=forecast, now=NOW, force=True
            ),
            rounds,
        ),
        "nightly refit": timed(
            lambda: repricing.refit(db=shop.db, forecast=forecast, now=NOW), rounds
        ),
        "price params lookup": timed(params_lookup, rounds),
        "pool expiry": timed(
            lambda: pool.expire(db=shop.db, gateways=shop.gateways, clock=shop.clock), rounds
        ),
        "key expiry": timed(
            lambda: maintenance.expire_keys(db=shop.db, gateways=shop.gateways, clock=shop.clock),
            rounds,
        ),
        "sweep lapsed holds": timed(worker.sweep, rounds),
        "db prune (nightly)": prune_s,
    }


def one(kind: str, days: int, args: argparse.Namespace, tmp: pathlib.Path) -> dict:
    with fresh_database(kind, tmp, f"{kind}-{days}") as url:
        rows, gen_s = 0, 0.0
        if days >= 0:
            engine = create_engine(url)
            start = time.perf_counter()
            rows = generate(
                engine,
                account=ACCOUNT,
                days=days,
                quotes=args.quotes,
                orders=args.orders,
                today_until=NOW,
            )
            gen_s = time.perf_counter() - start
            engine.dispose()
        size = database_size(kind, url)
        with make_kit(
            tmp / f"{kind}-{days}-data",
            database_url=url,
            now=NOW,
            diem=Decimal("1000000"),
            admin_password=PASSWORD,
            max_order_cents=100_000,
        ) as kit:
            times = measure(kit, args.rounds)
    print(
        f"  {kind} {max(days, 0)} days: {rows:,} rows in {gen_s:.1f} s, {size / 2**20:,.0f} MiB",
        file=sys.stderr,
    )
    return {"rows": rows, "generate_s": round(gen_s, 1), "bytes": size, "times": times}


def vacuum(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def database_size(kind: str, url: str) -> int:
    if kind == "postgres":
        engine = create_engine(url)
        with engine.connect() as conn:
            size = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())
        engine.dispose()
        return size
    path = pathlib.Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365, help="days of history in the large shop")
    ap.add_argument("--quotes", type=int, default=5000, help="quotes a day")
    ap.add_argument("--orders", type=int, default=1000, help="orders a day")
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    out: dict = {"days": args.days, "quotes": args.quotes, "orders": args.orders}
    scales = {"empty": -1, "days15": 15, "year": args.days}
    with tempfile.TemporaryDirectory(prefix="history-") as tmpdir:
        tmp = pathlib.Path(tmpdir)
        for kind in args.db.split(","):
            out[kind] = {name: one(kind, days, args, tmp) for name, days in scales.items()}
    print(
        f"{args.days} days × {args.quotes:,} quotes and {args.orders:,} orders a day; "
        f"median of {args.rounds}"
    )
    for kind in args.db.split(","):
        res = out[kind]
        sizes = " / ".join(f"{res[s]['bytes'] / 2**20:,.0f} MiB" for s in scales)
        print(f"\n{kind} (empty / 15 days / {args.days} days: {sizes})")
        head = f"{'15 d ms':>10}{f'{args.days} d ms':>10}{'ratio':>9}"
        print(f"  {'what':22}{'empty ms':>10}{head}   (ratio: {args.days} days ÷ 15 days)")
        for task in res["empty"]["times"]:
            e, w, y = (res[s]["times"][task] * 1000 for s in scales)
            print(f"  {task:22}{e:10.1f}{w:10.1f}{y:10.1f}{y / w:10.2f}×")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
