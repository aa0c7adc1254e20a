"""Time to key: from payment confirmation to the key being retrievable.

    .venv/bin/python bench/time_to_key/run.py [--db sqlite|postgres] [--pool 100] [--steady 60]
                                              [--burst 300] [--latency-ms 200] [--threads 8]

The Venice sandbox runs under uvicorn (real HTTP) with 3 accounts and adds ``--latency-ms``
to every Venice call. The shop (SQLite or PostgreSQL, warm pool of ``--pool`` keys per
account, a worker with ``--threads`` job threads) runs in this process with the sandbox's
clock. Payments are confirmed through the same use case the checkout and webhooks call;
the time to key of an order is ``fulfilled_at − paid_at`` from the database (both stamped
by the shop's clock at commit).

Phases: ``steady`` purchases at 1 per second, then a ``burst`` of purchases spread evenly
over one minute (300 = 5× the three accounts' combined creation budget of 60 a minute).
Purchases are $1–$10. Prints p50/p99/max per phase and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import select  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.models import Order  # noqa: E402
from cheaptokens.sandbox import AccountSpec, Sandbox  # noqa: E402
from cheaptokens.shop import build_shop  # noqa: E402
from cheaptokens.worker import pool  # noqa: E402
from cheaptokens.worker.maintenance import refresh_accounts  # noqa: E402
from cheaptokens.worker.runner import Worker  # noqa: E402
from support.databases import postgres_database  # noqa: E402
from support.live import serve  # noqa: E402
from support.procs import free_port  # noqa: E402
from support.shopkit import paid_order  # noqa: E402

KEYS = [f"VENICE_ADMIN_KEY_bench_{i}_not_real" for i in range(3)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def buy(shop, rng: random.Random) -> str:
    return paid_order(shop, rng.randint(1, 10) * 100)


def run_phase(shop, name: str, count: int, seconds: float, rng: random.Random) -> dict:
    ids: list[str] = []
    start = time.monotonic()
    for i in range(count):
        due = start + i * seconds / count
        time.sleep(max(0.0, due - time.monotonic()))
        ids.append(buy(shop, rng))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with shop.sessions() as s:
            rows = s.execute(
                select(Order.status, Order.paid_at, Order.fulfilled_at).where(Order.id.in_(ids))
            ).all()
        if all(r.status == "fulfilled" for r in rows) and len(rows) == len(ids):
            break
        time.sleep(0.2)
    waits = [(r.fulfilled_at - r.paid_at).total_seconds() for r in rows if r.fulfilled_at]
    result = {
        "phase": name,
        "purchases": count,
        "over_seconds": seconds,
        "fulfilled": len(waits),
        "p50_s": round(statistics.median(waits), 3),
        "p99_s": round(percentile(waits, 0.99), 3),
        "max_s": round(max(waits), 3),
    }
    print(
        f"{name:7} {count:4} purchases in {seconds:.0f} s: p50 {result['p50_s']:.3f} s, "
        f"p99 {result['p99_s']:.3f} s, max {result['max_s']:.3f} s "
        f"({len(waits)}/{count} fulfilled)",
        flush=True,
    )
    return result


def prefill(shop, sandbox: Sandbox, size: int) -> None:
    """Fill each account's pool, moving the (shared) clock a minute whenever Venice's
    creation budget is spent — the pool is made ahead of time in production too."""
    if size <= 0:
        return
    while True:
        pool.refill(shop)
        with shop.sessions() as s:
            counts = [pool.ready_count(s, account=a, now=shop.clock()) for a in shop.gateways]
        if min(counts) >= size:
            return
        sandbox.clock.advance(61)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pool", type=int, default=100, help="ready keys per account (0: none)")
    ap.add_argument("--steady", type=int, default=60, help="purchases at 1/s")
    ap.add_argument("--burst", type=int, default=300, help="purchases within one minute")
    ap.add_argument("--latency-ms", type=int, default=200, help="added to every Venice call")
    ap.add_argument("--threads", type=int, default=8, help="worker job threads")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    sandbox = Sandbox(
        [AccountSpec(admin_key=k, diem=Decimal(100_000)) for k in KEYS], now=today, frozen=False
    )
    port = free_port()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ttk-"))
    with serve(sandbox.app, port):
        if args.db == "postgres":
            db_cm = postgres_database()
        else:
            url = f"sqlite:///{tmp / 'shop.db'}"
            migrate.upgrade(url)
            from contextlib import nullcontext

            db_cm = nullcontext(url)
        with db_cm as db_url:
            settings = Settings(
                database_url=db_url,
                data_dir=tmp,
                venice_base_url=f"http://127.0.0.1:{port}/api/v1",
                venice_admin_keys=",".join(f"a{i}={k}" for i, k in enumerate(KEYS)),
                pool_size=args.pool,
                worker_threads=args.threads,
                worker_poll_seconds=0.02,
                max_order_cents=10_000,
                repricing=False,
            )
            shop = build_shop(settings, clock=sandbox.clock.now)
            try:
                refresh_accounts(shop)
                prefill(shop, sandbox, args.pool)
                sandbox.faults.add(
                    {"path": "/api/v1/*", "latency_ms": args.latency_ms, "count": None}
                )
                stop = threading.Event()
                worker = Worker(shop)
                thread = threading.Thread(
                    target=worker.run_forever,
                    args=(stop,),
                    kwargs={"poll": 0.02, "threads": args.threads},
                    daemon=True,
                )
                thread.start()
                rng = random.Random(args.seed)
                results = [
                    run_phase(shop, "steady", args.steady, float(args.steady), rng),
                    run_phase(shop, "burst", args.burst, 60.0, rng),
                ]
                stop.set()
                thread.join(timeout=30)
            finally:
                shop.close()
    print(
        json.dumps(
            {
                "db": args.db,
                "pool": args.pool,
                "latency_ms": args.latency_ms,
                "threads": args.threads,
                "results": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
