"""Upkeep with 1, 10 and 50 Venice accounts: does per-account work stay flat?

    .venv/bin/python bench/accounts/run.py [--latency-ms 200] [--counts 1,10,50] [--parallel 64]
                                           [--rounds 3] [--db sqlite|postgres]

The Venice sandbox runs as its own process (``cheaptokens sandbox``, real HTTP) with N
accounts and adds ``--latency-ms`` to every call; the shop (``--db``) has a live key on each
account. Each upkeep task that talks to Venice per account — the watch (key list and
balance), balances, reconciliation, the warm pool's first refill — is timed on its own, median
of ``--rounds``; then ``GET /admin`` (the dashboard, which must not call Venice). Printed as a
table and one JSON line; the ratio column is N accounts over 1 account, the last one the
shop process's CPU (all its threads) in the same median round, for each N.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from contextlib import nullcontext
from decimal import Decimal

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from starlette.testclient import TestClient  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.shop import build_shop  # noqa: E402
from cheaptokens.web.app import create_app  # noqa: E402
from cheaptokens.worker import maintenance, pool  # noqa: E402
from cheaptokens.worker.runner import Worker  # noqa: E402
from support.databases import postgres_database  # noqa: E402
from support.procs import sandbox as sandbox_process  # noqa: E402
from support.shopkit import paid_order  # noqa: E402

PASSWORD = "bench-password-not-secret"  # noqa: S105 (a throw-away dashboard login)


def timed(fn, rounds: int) -> tuple[float, float]:
    """The median round's (wall, CPU) seconds; CPU is the shop process's, all its threads."""
    times = []
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return sorted(times)[len(times) // 2]


def measure(
    n: int, latency_ms: int, parallel: int, rounds: int, db: str
) -> dict[str, tuple[float, float]]:
    admins = [f"VENICE_ADMIN_KEY_accounts_bench_{i:03d}_not_real" for i in range(n)]
    # The sandbox in a process of its own, as Venice is: in this one it would share the GIL
    # with the shop and its CPU would count as the shop's.
    accounts = [f"{a}:100" for a in admins]
    extra = ("--seconds-per-million-tokens", "0")
    with tempfile.TemporaryDirectory() as tmp, sandbox_process(*accounts, extra=extra) as venice:
        if db == "postgres":
            database = postgres_database()
        else:
            migrate.upgrade(f"sqlite:///{tmp}/shop.db")
            database = nullcontext(f"sqlite:///{tmp}/shop.db")
        with database as url:
            return _measure(n, url, pathlib.Path(tmp), venice, admins, latency_ms, parallel, rounds)


def _measure(
    n: int,
    url: str,
    tmp: pathlib.Path,
    venice: str,
    admins: list[str],
    latency_ms: int,
    parallel: int,
    rounds: int,
) -> dict[str, tuple[float, float]]:
    settings = Settings(
        database_url=url,
        data_dir=tmp,
        venice_base_url=venice,
        venice_admin_keys=",".join(f"a{i:03d}={k}" for i, k in enumerate(admins)),
        pool_size=2,
        repricing=False,
        venice_parallel_accounts=parallel,
        admin_password=PASSWORD,
        max_held_share=Decimal(1),
        orders_per_minute=100_000,
        quotes_per_minute=100_000,
    )
    shop = build_shop(settings)
    worker = Worker.for_shop(shop)
    maintenance.refresh_accounts(
        db=shop.db, gateways=shop.gateways, clock=shop.clock, parallel=parallel
    )
    for _ in range(n):  # a live key on every account (the roomiest takes each sale)
        paid_order(shop, 100)
    worker.drain()
    httpx.post(
        venice.removesuffix("/api/v1") + "/_sandbox/faults",
        json={"path": "/api/v1/*", "latency_ms": latency_ms, "count": None},
    ).raise_for_status()
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
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = p.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    timings = {n: measure(n, args.latency_ms, args.parallel, args.rounds, args.db) for n in counts}
    results = {n: {task: wall for task, (wall, _) in t.items()} for n, t in timings.items()}
    cpu = {n: {task: c for task, (_, c) in t.items()} for n, t in timings.items()}
    base = results[counts[0]]
    print(f"{'task':20}" + "".join(f"{n:>10} acc" for n in counts) + "   ratio   shop CPU")
    for task in base:
        row = "".join(f"{results[n][task] * 1000:>11.0f}ms" for n in counts)
        ratio = results[counts[-1]][task] / base[task]
        spent = " / ".join(f"{cpu[n][task] * 1000:.0f}" for n in counts)
        print(f"{task:20}{row}   {ratio:.2f}×   {spent} ms")
    print(
        json.dumps(
            {
                str(n): {k: round(v, 4) for k, v in r.items()}
                | {f"{k} CPU": round(v, 4) for k, v in cpu[n].items()}
                for n, r in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
