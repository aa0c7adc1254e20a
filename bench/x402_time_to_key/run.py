"""x402 time to key: from the paid request to the 200 with a usable key.

    .venv/bin/python bench/x402_time_to_key/run.py [--purchases 60] [--latency-ms 200]
                                                   [--pool 20] [--accounts 2]
                                                   [--db sqlite|postgres]

The Venice sandbox (with its x402 facilitator) runs as a process of its own (``cheaptokens
sandbox``, real HTTP), as Venice and a facilitator are: in the shop's process its CPU (the
facilitator checks every EIP-712 signature) would share the GIL with the shop and count as
the shop's. The shop serves under uvicorn; ``--latency-ms`` is added to every Venice call and
every facilitator call (the sandbox's latency fault on ``/api/v1/*`` and ``/x402/*``). Each
purchase is an agent with a fresh, funded throw-away wallet: ``POST /api/buy`` (402, not
timed), then the same request with the payment signed by the SDK's own EIP-3009 signing (timed
until the 200 arrives with the key), then one chat call with the key to prove it usable (not
timed). The warm pool holds ``--pool`` ready keys per account, made ahead of time (out of
Venice's one-minute creation window, as in production); the worker's upkeep runs beside the
shop on its own timers (the pool refilled every second), as ``cheaptokens worker`` runs it.
The process's warm-up (the app's start-up with the facilitator's ``/supported``, the worker's
first upkeep round) is over before the first purchase, and one purchase runs the paid path
once before the timed ones (its time is printed as ``warm_up_s``, not counted).
Prints p50/p99/max, how many purchases took a pool key, and one JSON line.

One account hands out at most its pool plus Venice's 20 new keys a minute: past that a
purchase waits for the creation budget (``--accounts`` spreads the sales).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from datetime import UTC, datetime

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import openai  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from cheaptokens import migrate  # noqa: E402
from cheaptokens.config import Settings  # noqa: E402
from cheaptokens.inventory.pool import ready_count  # noqa: E402
from cheaptokens.models import LedgerEntry  # noqa: E402
from cheaptokens.sandbox.clock import Clock  # noqa: E402
from cheaptokens.shop import build_shop  # noqa: E402
from cheaptokens.venice.limits import CREATION_WINDOW  # noqa: E402
from cheaptokens.web.app import create_app  # noqa: E402
from cheaptokens.worker.maintenance import refresh_accounts  # noqa: E402
from cheaptokens.worker.pool import refill  # noqa: E402
from cheaptokens.worker.runner import Worker  # noqa: E402
from support.agents import new_wallet, required_of, sign  # noqa: E402
from support.databases import postgres_database  # noqa: E402
from support.live import serve  # noqa: E402
from support.procs import free_port  # noqa: E402
from support.procs import sandbox as sandbox_process  # noqa: E402


def admin_keys(accounts: int) -> list[str]:
    return [f"VENICE_ADMIN_KEY_bench_x402_{i}_not_real" for i in range(accounts)]


class Venice:
    """The sandbox process's control routes, and the shop's clock kept with its clock."""

    def __init__(self, api: str, clock: Clock) -> None:
        self.control = api.removesuffix("/api/v1") + "/_sandbox"
        self.clock = clock
        self.http = httpx.Client(timeout=30)

    def advance(self, seconds: float) -> None:
        self.http.post(
            f"{self.control}/clock", json={"advance_seconds": seconds}
        ).raise_for_status()
        self.clock.advance(seconds)

    def fund(self, address: str, usdc: str) -> None:
        self.http.post(
            f"{self.control}/x402/wallets", json={"address": address, "usdc": usdc}
        ).raise_for_status()

    def latency(self, ms: int) -> None:
        self.http.post(
            f"{self.control}/faults",
            json=[
                {"path": "/api/v1/*", "latency_ms": ms, "count": None},
                {"path": "/x402/*", "latency_ms": ms, "count": None},
            ],
        ).raise_for_status()


def prefill(shop, venice: Venice, size: int) -> None:
    """Fill each account's pool, moving both clocks a minute whenever Venice's creation
    budget is spent, then a minute more: the pool is made ahead of time in production too."""
    if size <= 0:
        return
    while True:
        refill(db=shop.db, gateways=shop.gateways, box=shop.box, rules=shop.rules, clock=shop.clock)
        with shop.db.read() as s:
            counts = [ready_count(s, account=a, now=shop.clock()) for a in shop.gateways]
        venice.advance(CREATION_WINDOW.total_seconds() + 1)
        if min(counts) >= size:
            return


def run_upkeep(worker: Worker, stop: threading.Event) -> None:
    """The worker's upkeep on its own timers (the pool's every second), as ``cheaptokens
    worker`` runs it: refilling competes with the requests for the cores and the database."""
    while not stop.wait(0.2):
        worker.upkeep()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--purchases",
        type=int,
        default=60,
        help="timed sequential purchases (one account hands out its pool + 20 new keys a minute)",
    )
    ap.add_argument("--accounts", type=int, default=2, help="Venice accounts (pool on each)")
    ap.add_argument("--latency-ms", type=int, default=200)
    ap.add_argument("--pool", type=int, default=20, help="ready keys kept (0: create each key)")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()

    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    keys = admin_keys(args.accounts)
    shop_port = free_port()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="x402-ttk-"))
    times: list[float] = []
    sandbox_args = ("--now", today.isoformat(), "--seconds-per-million-tokens", "0")
    with sandbox_process(*(f"{k}:100000" for k in keys), extra=sandbox_args) as api:
        venice = Venice(api, Clock(today, frozen=False))
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
                venice_base_url=api,
                venice_admin_keys=",".join(f"a{i}={k}" for i, k in enumerate(keys)),
                venice_parallel_accounts=args.accounts,
                pool_size=args.pool,
                repricing=False,
                quotes_per_minute=100_000,
                orders_per_minute=100_000,
                max_held_share=1,
            )
            shop = build_shop(settings, clock=venice.clock.now)
            worker = Worker.for_shop(shop)
            try:
                refresh_accounts(db=shop.db, gateways=shop.gateways, clock=shop.clock)
                prefill(shop, venice, args.pool)
                venice.latency(args.latency_ms)
                worker.upkeep()  # its first round (every task at once) is the process's warm-up
                stop = threading.Event()
                upkeep = threading.Thread(target=run_upkeep, args=(worker, stop), daemon=True)
                upkeep.start()
                with (
                    serve(create_app(shop), shop_port),
                    httpx.Client(base_url=settings.public_url, timeout=30) as http,
                ):
                    time.sleep(1.0)  # the app's start-up (the facilitator's /supported) is over
                    warm_up = -1.0
                    for n in range(args.purchases + 1):
                        wallet = new_wallet()
                        venice.fund(wallet.address, "25.00")
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
                        if n == 0:  # the paid path's first run in this process
                            warm_up = elapsed
                        else:
                            times.append(elapsed)
                stop.set()
                upkeep.join(timeout=30)
                with shop.db.read() as s:
                    from_pool = int(
                        s.scalar(
                            select(func.count())
                            .select_from(LedgerEntry)
                            .where(LedgerEntry.kind == "pool_key_claimed")
                        )
                        or 0
                    )
            finally:
                shop.close()
    result = {
        "purchases": len(times),
        "latency_ms": args.latency_ms,
        "pool": args.pool,
        "accounts": args.accounts,
        "db": args.db,
        "p50_s": round(statistics.median(times), 3),
        "p99_s": round(percentile(times, 0.99), 3),
        "max_s": round(max(times), 3),
        "warm_up_s": round(warm_up, 3),
        "first_s": round(times[0], 3),
        "slowest_at": times.index(max(times)),
        "from_pool": from_pool,
    }
    print(
        f"paid request -> 200 with a key, {len(times)} purchases, +{args.latency_ms} ms per "
        f"Venice/facilitator call: p50 {result['p50_s']:.3f} s, p99 {result['p99_s']:.3f} s, "
        f"max {result['max_s']:.3f} s; {from_pool} of {len(times) + 1} from the pool; "
        f"warm-up purchase {result['warm_up_s']:.3f} s",
        flush=True,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
