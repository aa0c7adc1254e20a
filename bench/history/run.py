"""Flat cost as history grows: every request path and upkeep task, empty vs 15 days vs a year.

    .venv/bin/python bench/history/run.py [--days 365] [--quotes 5000] [--orders 1000]
                                          [--db sqlite,postgres] [--rounds 9] [--fast-rounds 25]
                                          [--also 30] [--store DIR] [--generate-only]

For each database it builds four shops: **empty**; **15 days** of history before today (more
than the 14 days the dashboard shows and the 7 the prune keeps); **30 days** (``--also``; more
than the 28 days the nightly refit reads, ``REFIT_DAYS`` in ``worker/repricing.py``);
**year**, ``--days`` days of history. Each day has ``--quotes`` quotes and ``--orders`` orders
with their ledger rows, webhook events, jobs, pool keys and published price sets
(``generate.py``, bulk inserts through the bare driver: ``executemany`` on SQLite, ``COPY`` on
PostgreSQL); all but the empty shop also hold the same first half of today (lapsed quotes,
cancelled checkouts).

Generating a year takes tens of minutes, so the generated databases can be kept: with
``--store DIR`` each generated history is kept as generated (SQLite: ``DIR/<db>-<days>d.db``;
PostgreSQL: a database named in ``DIR/<db>-<days>d.json``, which also records the rows and
the generation time) and a later run with the same ``--store``, ``--quotes`` and ``--orders``
reuses it instead of generating again. Every run measures on a copy (a file copy; on
PostgreSQL ``CREATE DATABASE … TEMPLATE``), brought to the current migration head, since
measuring changes a shop (its orders, the prune). ``--generate-only`` generates what the store
lacks and stops (run it under ``nice``; the measurement can come later). Without ``--store``
everything lives in a temporary directory and throw-away PostgreSQL databases.

The history's backlog is pruned once, as a shop pruned every night until three nights ago
would have it (right after generating, so a stored history is kept so; on PostgreSQL ``VACUUM
ANALYZE`` after it, autovacuum's work done at once). On each shop 20 paid orders with real
sandbox keys are then made through the shop's own flow (the live keys the watch reads) and the
last three nights are pruned, each forgetting one day's worth: the prune's time is the median
of those nights, and every other task below runs on that pruned shop, as on a shop pruned
every night. The HTTP tasks go through the real app (Starlette's TestClient), the upkeep ones
call what the worker calls; the Venice sandbox runs in-process with a frozen clock. The shops
are open at once and measured **interleaved** so that load from elsewhere on the machine hits
them alike: for each task, one warm-up call
on each shop, then rounds of one call on each shop, the order of the shops rotating from
round to round (the nights of the prune alike); each time is the median of its rounds:
``--rounds``, or ``--fast-rounds`` for a task whose second warm-up call took under 10 ms on
the 15-day shop.

The target is year ÷ 15 days (the ratio of the medians) within 1.5×: the dashboard reads its
14 days, the re-plan today's quotes and the refit the last 28 days' by design, and a night's
prune forgets one day's worth, so against an empty database they cost what those days hold;
none may grow with older history. The refit's window is longer than 15 days, so the table also
gives year ÷ 30 days, where every window is full in both shops. Prints a table, the load
average during the measurement and one JSON line (with every round's time).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench" / "history"))

from generate import generate  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.db import open_database  # noqa: E402
from cheaptokens.orders import flows, published  # noqa: E402
from cheaptokens.worker import maintenance, pool, repricing  # noqa: E402
from support.databases import PG_ADMIN_URL  # noqa: E402
from support.shopkit import Kit, make_kit, paid_order  # noqa: E402

warnings.filterwarnings("ignore", message="You should not use the 'timeout'")  # TestClient's

PASSWORD = "bench-password-not-secret"  # noqa: S105 (a throw-away dashboard login)
#: the moment every shop lives at (the sandbox's clock is frozen there)
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
ACCOUNT = "sandbox-1"  # the name make_kit gives the sandbox's first account
LIVE_ORDERS = 20
CAUGHT_UP = NOW - timedelta(days=3)  # the nightly prune's backlog is cleared up to here
FAST_S = 0.010  # tasks quicker than this get --fast-rounds


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def pg_admin(sql: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(sql))
    admin.dispose()


def pg_exists(name: str) -> bool:
    admin = create_engine(PG_ADMIN_URL)
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        exists = found.first() is not None
    admin.dispose()
    return exists


class Store:
    """Where generated histories live: kept in ``--store`` DIR, or thrown away at the end."""

    def __init__(self, directory: pathlib.Path, *, keep: bool) -> None:
        self.dir, self.keep = directory, keep
        self.dropped: list[str] = []  # throw-away PostgreSQL databases

    def _meta(self, kind: str, days: int) -> pathlib.Path:
        return self.dir / f"{kind}-{days}d.json"

    def source(self, kind: str, days: int, args: argparse.Namespace) -> dict:
        """The generated history (generating it unless the store holds it): its url, rows and
        generation time."""
        meta_path = self._meta(kind, days)
        want = {"days": days, "quotes": args.quotes, "orders": args.orders, "now": NOW.isoformat()}
        if self.keep and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if {k: meta.get(k) for k in want} == want and self._present(kind, meta):
                print(f"  {kind} {days} days: reusing {meta['url']}", file=sys.stderr)
                return self._caught_up(meta, meta_path)
            raise SystemExit(f"{meta_path} holds another history; pick another --store")
        if kind == "postgres":
            name = f"ct_history_{days}d_{uuid.uuid4().hex[:8]}"
            pg_admin(f'CREATE DATABASE "{name}"')
            if not self.keep:
                self.dropped.append(name)
            url = pg_url(name)
        else:
            url = f"sqlite:///{self.dir / f'{kind}-{days}d.db'}"
        migrate.upgrade(url)
        engine = create_engine(url)
        start = time.perf_counter()

        def progress(done: int, rows: int) -> None:
            if done % 30 == 0:
                rate = rows / (time.perf_counter() - start)
                print(
                    f"    {kind} {done}/{days} days, {rows:,} rows, {rate:,.0f} rows/s",
                    file=sys.stderr,
                    flush=True,
                )

        rows = generate(
            engine,
            account=ACCOUNT,
            days=days,
            quotes=args.quotes,
            orders=args.orders,
            today_until=NOW,
            progress=progress,
        )
        gen_s = time.perf_counter() - start
        engine.dispose()
        meta = {**want, "url": url, "rows": rows, "generate_s": round(gen_s, 1)}
        meta["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["load_avg_after"] = os.getloadavg()
        meta["bytes"] = database_size(url)
        if self.keep:
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        print(
            f"  {kind} {days} days: {rows:,} rows in {gen_s:.1f} s ({rows / gen_s:,.0f} rows/s)",
            file=sys.stderr,
        )
        return self._caught_up(meta, meta_path)

    def _caught_up(self, meta: dict, meta_path: pathlib.Path) -> dict:
        """The history's backlog pruned, as by a shop pruned every night until three nights
        ago (what ``measure`` would do first; done here once, so it is kept in the store)."""
        meta.setdefault("bytes", database_size(meta["url"]))  # as generated
        if meta.get("pruned_until"):
            return meta
        url = meta["url"]
        database, engines = open_database(url)
        policy = flows.retention_of(Settings(database_url=url, data_dir=self.dir))
        start = time.perf_counter()
        gone = flows.prune(db=database, policy=policy, now=CAUGHT_UP)
        for engine in engines:
            engine.dispose()
        vacuum(url)
        meta["pruned_until"] = CAUGHT_UP.isoformat()
        meta["pruned_rows"] = sum(gone.values())
        meta["prune_s"] = round(time.perf_counter() - start, 1)
        if self.keep:
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        print(
            f"  {url}: backlog pruned, {meta['pruned_rows']:,} rows in {meta['prune_s']} s",
            file=sys.stderr,
        )
        return meta

    @staticmethod
    def _present(kind: str, meta: dict) -> bool:
        if kind == "postgres":
            return pg_exists(meta["url"].rsplit("/", 1)[1])
        return pathlib.Path(meta["url"].removeprefix("sqlite:///")).exists()

    @contextmanager
    def working_copy(self, kind: str, source_url: str | None, work: pathlib.Path) -> Iterator[str]:
        """A database to measure on: a copy of the source (or an empty one if None), migrated."""
        if kind == "postgres":
            name = f"ct_history_work_{uuid.uuid4().hex[:8]}"
            if source_url is None:
                pg_admin(f'CREATE DATABASE "{name}"')
            else:
                pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{source_url.rsplit("/", 1)[1]}"')
            url = pg_url(name)
            try:
                migrate.upgrade(url)
                yield url
            finally:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        target = work / f"work-{uuid.uuid4().hex[:8]}.db"
        if source_url is not None:
            src = pathlib.Path(source_url.removeprefix("sqlite:///"))
            for part in src.parent.glob(src.name + "*"):  # the file, and any -wal / -shm
                shutil.copyfile(part, target.parent / (target.name + part.name[len(src.name) :]))
        url = f"sqlite:///{target}"
        try:
            migrate.upgrade(url)
            yield url
        finally:
            for part in target.parent.glob(target.name + "*"):
                part.unlink()

    def close(self) -> None:
        for name in self.dropped:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def login(kit: Kit) -> None:
    page = kit.web.get("/admin/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = kit.web.post(
        "/admin/login", data={"csrf_token": token, "username": "admin", "password": PASSWORD}
    )
    assert r.status_code in (200, 303), r.text


def tasks_of(kit: Kit) -> dict[str, Callable[[], object]]:
    shop, worker = kit.shop, kit.worker
    forecast = repricing.forecast_of(shop.settings)

    def ok(status: int, r: object) -> None:
        assert getattr(r, "status_code", None) == status, getattr(r, "text", r)

    def params_lookup() -> None:
        with shop.db.read() as session:
            assert published.find_in_force(session, now=NOW) is not None

    return {
        "GET /admin": lambda: ok(200, kit.web.get("/admin")),
        "GET /api/supply": lambda: ok(200, kit.web.get("/api/supply")),
        "POST /api/orders": lambda: ok(
            201, kit.web.post("/api/orders", json={"credit_cents": 100})
        ),
        "usage watch tick": worker.watch_now,
        "hourly re-plan": lambda: repricing.replan(
            db=shop.db, rules=shop.rules, forecast=forecast, now=NOW, force=True
        ),
        "nightly refit": lambda: repricing.refit(db=shop.db, forecast=forecast, now=NOW),
        "price params lookup": params_lookup,
        "pool expiry": lambda: pool.expire(db=shop.db, gateways=shop.gateways, clock=shop.clock),
        "key expiry": lambda: maintenance.expire_keys(
            db=shop.db, gateways=shop.gateways, clock=shop.clock
        ),
        "sweep lapsed holds": worker.sweep,
    }


def clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rotated(names: list[str], r: int) -> list[str]:
    return names[r % len(names) :] + names[: r % len(names)]


def measure(kits: dict[str, Kit], args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Every task on every shop, interleaved; scale → task → the rounds' times in seconds."""
    names = list(kits)
    out: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for kit in kits.values():  # live keys for the watch, sold stock for the dashboard
        for _ in range(LIVE_ORDERS):
            paid_order(kit.shop, 100)
        kit.worker.drain()
        login(kit)

    # The nightly prune of a shop pruned every night: catch up first (the history's backlog,
    # once), then three nights, each forgetting one day's worth, the shops in turn.
    for kit in kits.values():  # (a history from the Store is caught up already)
        policy = flows.retention_of(kit.shop.settings)
        flows.prune(db=kit.shop.db, policy=policy, now=CAUGHT_UP)
        vacuum(kit.shop.settings.database_url)
    nights: dict[str, list[float]] = {name: [] for name in names}
    for r, back in enumerate((2, 1, 0)):
        for name in rotated(names, r):
            shop = kits[name].shop
            policy = flows.retention_of(shop.settings)
            night = NOW - timedelta(days=back)
            nights[name].append(
                clock(lambda: flows.prune(db=shop.db, policy=policy, now=night))  # noqa: B023
            )

    tasks = {name: tasks_of(kit) for name, kit in kits.items()}
    for task in tasks[names[0]]:
        for name in names:  # warm up: compiled statements, caches, the first page render
            tasks[name][task]()
        second = {name: clock(tasks[name][task]) for name in names}
        rounds = args.fast_rounds if second["days15"] < FAST_S else args.rounds
        for r in range(rounds):
            for name in rotated(names, r):
                out[name].setdefault(task, []).append(clock(tasks[name][task]))
    for name in names:
        out[name]["db prune (nightly)"] = nights[name]
    return out


def vacuum(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def database_size(url: str) -> int:
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            size = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())
        engine.dispose()
        return size
    path = pathlib.Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def one_database(
    kind: str, scales: dict[str, int], args: argparse.Namespace, store: Store, work: pathlib.Path
) -> dict:
    sources = {s: store.source(kind, d, args) if d >= 0 else None for s, d in scales.items()}
    if args.generate_only:
        return {}
    res: dict = {}
    with ExitStack() as stack:
        kits = {}
        for s, src in sources.items():
            url = stack.enter_context(store.working_copy(kind, src and src["url"], work))
            res[s] = {
                "rows": src["rows"] if src else 0,
                "generate_s": src["generate_s"] if src else 0.0,
                "bytes": src["bytes"] if src else database_size(url),  # as generated
                "backlog_pruned_rows": src["pruned_rows"] if src else 0,
            }
            kits[s] = stack.enter_context(
                make_kit(
                    work / f"{kind}-{s}-data",
                    database_url=url,
                    now=NOW,
                    diem=Decimal("1000000"),
                    admin_password=PASSWORD,
                    max_order_cents=100_000,
                )
            )
        load_before = os.getloadavg()
        start = time.perf_counter()
        times = measure(kits, args)
        res["measure_s"] = round(time.perf_counter() - start, 1)
        res["load_avg"] = {"before": load_before, "after": os.getloadavg()}
    for s in scales:
        res[s]["rounds"] = times[s]
        res[s]["times"] = {task: statistics.median(ts) for task, ts in times[s].items()}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365, help="days of history in the large shop")
    ap.add_argument("--quotes", type=int, default=5000, help="quotes a day")
    ap.add_argument("--orders", type=int, default=1000, help="orders a day")
    ap.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    ap.add_argument("--rounds", type=int, default=9, help="rounds of each task on each shop")
    ap.add_argument(
        "--fast-rounds",
        type=int,
        default=25,
        help="rounds of a task under 10 ms on the 15-day shop",
    )
    ap.add_argument(
        "--also",
        type=int,
        default=30,
        help="days of history in a fourth shop, measured beside (0: none)",
    )
    ap.add_argument(
        "--store",
        type=pathlib.Path,
        help="keep generated histories in this directory and reuse those it holds",
    )
    ap.add_argument(
        "--generate-only", action="store_true", help="generate what the store lacks, then stop"
    )
    args = ap.parse_args()
    if args.generate_only and args.store is None:
        ap.error("--generate-only needs --store")
    out: dict = {"days": args.days, "quotes": args.quotes, "orders": args.orders}
    scales = {"empty": -1, "days15": 15, "year": args.days}
    if args.also > 0:  # measured beside, after the 15 days
        scales = {"empty": -1, "days15": 15, f"days{args.also}": args.also, "year": args.days}
    kinds = args.db.split(",")
    with tempfile.TemporaryDirectory(prefix="history-") as tmpdir:
        work = pathlib.Path(tmpdir)
        if args.store is not None:
            args.store.mkdir(parents=True, exist_ok=True)
        store = Store(args.store or work, keep=args.store is not None)
        try:
            for kind in kinds:
                out[kind] = one_database(kind, scales, args, store, work)
        finally:
            store.close()
    if args.generate_only:
        return 0
    print(
        f"{args.days} days × {args.quotes:,} quotes and {args.orders:,} orders a day; "
        f"median of {args.rounds} rounds ({args.fast_rounds} for tasks under 10 ms), interleaved"
    )
    for kind in kinds:
        res = out[kind]
        sizes = " / ".join(f"{res[s]['bytes'] / 2**20:,.0f} MiB" for s in scales)
        labels = " / ".join("empty" if d < 0 else f"{d} days" for d in scales.values())
        load = res["load_avg"]
        print(f"\n{kind} ({labels}: {sizes})")
        print(
            f"  measured in {res['measure_s']:.0f} s; load average before "
            f"{'/'.join(f'{x:.1f}' for x in load['before'])}, after "
            f"{'/'.join(f'{x:.1f}' for x in load['after'])}"
        )
        head = "".join(f"{'empty' if d < 0 else f'{d} d':>8} ms" for d in scales.values())
        ratios = f"{'÷ 15 d':>9}" + (f"{f'÷ {args.also} d':>9}" if args.also > 0 else "")
        print(f"  {'what':22}{head}{ratios}   (ratios: {args.days} days ÷ …)")
        for task in res["empty"]["times"]:
            ms = {s: res[s]["times"][task] * 1000 for s in scales}
            cells = "".join(f"{v:11.1f}" for v in ms.values())
            r = f"{ms['year'] / ms['days15']:8.2f}×"
            if args.also > 0:
                r += f"{ms['year'] / ms[f'days{args.also}']:8.2f}×"
            n = len(res["empty"]["rounds"][task])
            print(f"  {task:22}{cells}{r}  ({n} rounds)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
