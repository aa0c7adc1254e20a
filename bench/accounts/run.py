"""Upkeep with 1, 10 and 50 Venice accounts: does per-account work stay flat?

    .venv/bin/python bench/accounts/run.py [--latency-ms 200] [--counts 1,10,50] [--parallel 64]

The Venice sandbox runs under uvicorn (real HTTP) with N accounts and adds ``--latency-ms`` to
every call; the shop (SQLite) has a live key on each account. Each upkeep task that talks to
Venice per account — the watch (key list and balance), balances, reconciliation, the warm pool's
first refill — is timed on its own, median of ``--rounds``; then ``GET /admin`` (the dashboard,
which must not call Venice). Printed as a table and one JSON line; the ratio column is N accounts
over 1 account.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from starlette.testclient import TestClient  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.sandbox import AccountSpec, Sandbox  # noqa: E402
from cheaptokens.shop import build_shop  # noqa: E402
from cheaptokens.web.app import create_app  # noqa: E402
from cheaptokens.worker import maintenance, pool  # noqa: E402
from cheaptokens.worker.runner import Worker  # noqa: E402
from support.live import serve  # noqa: E402
from support.procs import free_port  # noqa: E402
from support.shopkit import paid_order  # noqa: E402

PASSWORD = "bench-password-not-secret"  # noqa: S105 (a throw-away dashboard login)


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n: int, latency_ms: int, parallel: int, rounds: int) -> dict[str, float]:
    admins = [f"VENICE_ADMIN_KEY_accounts_bench_{i:03d}_not_real" for i in range(n)]
    sandbox = Sandbox(
        [AccountSpec(admin_key=a, diem=Decimal(100)) for a in admins],
        frozen=False,
        seconds_per_million_tokens=0,
    )
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, serve(sandbox.app, port):
        url = f"sqlite:///{tmp}/shop.db"
        migrate.upgrade(url)
        settings = Settings(
            database_url=url,
            data_dir=pathlib.Path(tmp),
            venice_base_url=f"http://127.0.0.1:{port}/api/v1",
            venice_admin_keys=",".join(f"a{i:03d}={k}" for i, k in enumerate(admins)),
            pool_size=2,
            repricing=False,
            venice_parallel_accounts=parallel,
            admin_password=PASSWORD,
            max_held_share=Decimal(1),
            orders_per_minute=100_000,
            quotes_per_minute=100_000,
        )
        shop = build_shop(settings, clock=sandbox.clock.now)
        worker = Worker.for_shop(shop)
        maintenance.refresh_accounts(
            db=shop.db, gateways=shop.gateways, clock=shop.clock, parallel=parallel
        )
        for _ in range(n):  # a live key on every account (the roomiest takes each sale)
            paid_order(shop, 100)
        worker.drain()
        sandbox.faults.add({"path": "/api/v1/*", "latency_ms": latency_ms, "count": None})
        out = {
            "first pool refill": timed(
                lambda: pool.refill(
                    db=shop.db,
                    gateways=shop.gateways,
                    box=shop.box,
                    rules=shop.rules,
                    clock=shop.clock,
                    parallel=parallel,
                ),
                1,
            ),
            "watch": timed(worker.watch_now, rounds),
            "balances": timed(
                lambda: maintenance.refresh_accounts(
                    db=shop.db, gateways=shop.gateways, clock=shop.clock, parallel=parallel
                ),
                rounds,
            ),
            "reconcile": timed(
                lambda: maintenance.reconcile(
                    db=shop.db, gateways=shop.gateways, clock=shop.clock, parallel=parallel
                ),
                rounds,
            ),
        }
        with TestClient(create_app(shop)) as web:
            page = web.get("/admin/login")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            web.post(
                "/admin/login",
                data={"csrf_token": token, "username": "admin", "password": PASSWORD},
            )
            out["GET /admin"] = timed(lambda: web.get("/admin").raise_for_status(), rounds)
        shop.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency-ms", type=int, default=200)
    p.add_argument("--counts", default="1,10,50")
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    results = {n: measure(n, args.latency_ms, args.parallel, args.rounds) for n in counts}
    base = results[counts[0]]
    print(f"{'task':20}" + "".join(f"{n:>10} acc" for n in counts) + "   ratio")
    for task in base:
        row = "".join(f"{results[n][task] * 1000:>11.0f}ms" for n in counts)
        print(f"{task:20}{row}   {results[counts[-1]][task] / base[task]:.2f}×")
    print(json.dumps({str(n): {k: round(v, 4) for k, v in r.items()} for n, r in results.items()}))


if __name__ == "__main__":
    main()
