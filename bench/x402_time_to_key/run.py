"""x402 time to key: from the paid request to the 200 with a usable key.

    .venv/bin/python bench/x402_time_to_key/run.py [--purchases 60] [--latency-ms 200]
                                                   [--pool 20] [--db sqlite|postgres]

The Venice sandbox (with its x402 facilitator) and the shop each run under uvicorn (real
HTTP); ``--latency-ms`` is added to every Venice call and every facilitator call (the
sandbox's latency fault on ``/api/v1/*`` and ``/x402/*``). Each purchase is an agent with a
fresh, funded throw-away wallet: ``POST /api/buy`` (402, not timed), then the same request
with the payment signed by the SDK's own EIP-3009 signing (timed until the 200 arrives with
the key), then one chat call with the key to prove it usable (not timed). The warm pool holds
``--pool`` ready keys, so a purchase PATCHes a key instead of creating one. Prints p50/p99/max
and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import openai  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.sandbox import AccountSpec, Sandbox  # noqa: E402
from cheaptokens.shop import build_shop  # noqa: E402
from cheaptokens.web.app import create_app  # noqa: E402
from cheaptokens.worker.maintenance import refresh_accounts  # noqa: E402
from cheaptokens.worker.runner import Worker  # noqa: E402
from support.agents import fund, new_wallet, required_of, sign  # noqa: E402
from support.databases import postgres_database  # noqa: E402
from support.live import serve  # noqa: E402
from support.procs import free_port  # noqa: E402

sys.path.insert(0, str(ROOT / "bench" / "time_to_key"))
from run import prefill  # noqa: E402

KEY = "VENICE_ADMIN_KEY_bench_x402_not_real"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--purchases", type=int, default=60)
    ap.add_argument("--latency-ms", type=int, default=200)
    ap.add_argument("--pool", type=int, default=20, help="ready keys kept (0: create each key)")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()

    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    sandbox = Sandbox([AccountSpec(admin_key=KEY, diem=Decimal(100_000))], now=today, frozen=False)
    sandbox_port, shop_port = free_port(), free_port()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="x402-ttk-"))
    times: list[float] = []
    with serve(sandbox.app, sandbox_port):
        if args.db == "postgres":
            db_cm = postgres_database()
        else:
            url = f"sqlite:///{tmp / 'shop.db'}"
            migrate.upgrade(url)
            db_cm = nullcontext(url)
        with db_cm as db_url:
            settings = Settings(
                database_url=db_url,
                data_dir=tmp,
                public_url=f"http://127.0.0.1:{shop_port}",
                venice_base_url=f"http://127.0.0.1:{sandbox_port}/api/v1",
                venice_admin_keys=f"a0={KEY}",
                pool_size=args.pool,
                repricing=False,
                quotes_per_minute=100_000,
                orders_per_minute=100_000,
                max_held_share=1,
            )
            shop = build_shop(settings, clock=sandbox.clock.now)
            worker = Worker.for_shop(shop)
            try:
                refresh_accounts(db=shop.db, gateways=shop.gateways, clock=shop.clock)
                prefill(shop, sandbox, args.pool)
                sandbox.faults.add(
                    {"path": "/api/v1/*", "latency_ms": args.latency_ms, "count": None},
                    {"path": "/x402/*", "latency_ms": args.latency_ms, "count": None},
                )
                with (
                    serve(create_app(shop), shop_port),
                    httpx.Client(base_url=settings.public_url, timeout=30) as http,
                ):
                    for i in range(args.purchases):
                        wallet = new_wallet()
                        fund(sandbox, wallet.address, "25.00")
                        first = http.post("/api/buy", json={"credit_cents": 500})
                        header = sign(wallet, required_of(first)["accepts"][0])
                        start = time.perf_counter()
                        paid = http.post(
                            "/api/buy",
                            json={"credit_cents": 500},
                            headers={"PAYMENT-SIGNATURE": header},
                        )
                        elapsed = time.perf_counter() - start
                        assert paid.status_code == 200, paid.text
                        key = paid.json()["key"]
                        chat = openai.OpenAI(api_key=key["api_key"], base_url=key["base_url"])
                        chat.chat.completions.create(  # the key is usable at once
                            model="llama-3.3-70b",
                            messages=[{"role": "user", "content": "hi"}],
                            max_tokens=8,
                        )
                        times.append(elapsed)
                        if i % 5 == 4:  # the worker's upkeep keeps the pool warm
                            worker.upkeep(force=True)
            finally:
                shop.close()
    result = {
        "purchases": len(times),
        "latency_ms": args.latency_ms,
        "pool": args.pool,
        "db": args.db,
        "p50_s": round(statistics.median(times), 3),
        "p99_s": round(percentile(times, 0.99), 3),
        "max_s": round(max(times), 3),
        "first_s": round(times[0], 3),
        "slowest_at": times.index(max(times)),
    }
    print(
        f"paid request -> 200 with a key, {len(times)} purchases, +{args.latency_ms} ms per "
        f"Venice/facilitator call: p50 {result['p50_s']:.3f} s, p99 {result['p99_s']:.3f} s, "
        f"max {result['max_s']:.3f} s",
        flush=True,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
